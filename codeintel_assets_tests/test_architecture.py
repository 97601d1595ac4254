"""The shape of the package: its import graph has no cycle, and the layers import downwards.

The graph is read from the source with ``ast``: every ``import`` statement, at module top
or inside a function (an import inside a function is still a dependency; it only hides a
cycle). Imports under ``if TYPE_CHECKING:`` are left out: they never run, they only name
types for annotations.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

import codeintel_assets

PACKAGE = Path(codeintel_assets.__file__).parent


def module_name(path: Path) -> str:
    """Return the dotted name of a source file of the package."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_only(tree: ast.Module) -> set[ast.AST]:
    """Return the nodes under ``if TYPE_CHECKING:`` blocks of ``tree``."""
    nodes: set[ast.AST] = set()
    for node in ast.walk(tree):
        test = getattr(node, "test", None)
        if isinstance(node, ast.If) and (
            (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
            or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
        ):
            nodes.update(n for stmt in node.body for n in ast.walk(stmt))
    return nodes


def import_graph() -> nx.DiGraph:
    """Return the graph module → the package modules it imports (at run time)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        type_only = _type_only(tree)
        for node in ast.walk(tree):
            if node in type_only:
                continue
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # ``from pkg import sub`` imports the submodule when there is one.
                targets = [
                    f"{node.module}.{alias.name}"
                    if f"{node.module}.{alias.name}" in modules
                    else node.module
                    for alias in node.names
                ]
            else:
                continue
            graph.add_edges_from((name, t) for t in targets if t in modules and t != name)
    return graph


def test_the_graph_is_read_from_the_source():
    graph = import_graph()
    assert graph.has_edge("codeintel_assets.core.channels", "codeintel_assets.core.lexical")
    assert graph.has_edge("codeintel_assets.core.lexical", "codeintel_assets.core.tokens")
    assert graph.number_of_nodes() > 50


def test_no_import_cycle():
    cycles = list(nx.simple_cycles(import_graph()))
    assert cycles == [], f"import cycles: {cycles}"


def test_no_core_module_imports_the_build_layer():
    graph = import_graph()
    offenders = [
        (module, target)
        for module, target in graph.edges
        if module.startswith("codeintel_assets.core.")
        and not module.startswith("codeintel_assets.core.stages")
        and target.startswith("codeintel_assets.core.stages")
    ]
    assert offenders == []


def test_the_cli_imports_no_stage():
    # The CLI calls core (which never reaches a stage, see above); `indexctl build` runs the
    # stages only through Dagster (runner → definitions), like any other Dagster run.
    imported = set(import_graph().successors("codeintel_assets.cli"))
    assert not {m for m in imported if m.startswith("codeintel_assets.core.stages")}
    assert "codeintel_assets.runner" in imported


def test_core_knows_nothing_of_dagster():
    offenders = []
    for path in (PACKAGE / "core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [(module_name(path), n) for n in names if n.split(".")[0] == "dagster"]
    assert offenders == []


def test_every_asset_has_its_stage_row_inputs_as_upstream():
    from codeintel_assets.assets import ALL_ASSETS
    from codeintel_assets.core.stages import STAGES

    assert [a.key.to_user_string() for a in ALL_ASSETS] == [s.name for s in STAGES]
    for assets_def, stage in zip(ALL_ASSETS, STAGES, strict=True):
        upstream = {key.to_user_string() for key in assets_def.asset_deps[assets_def.key]}
        assert upstream == set(stage.inputs), stage.name
        assert assets_def.code_versions_by_key[assets_def.key] == stage.code_version


def test_the_stage_table_is_in_build_order():
    from codeintel_assets.core.stages import STAGES

    seen: set[str] = set()
    for stage in STAGES:
        assert set(stage.inputs) <= seen, f"{stage.name} comes before one of {stage.inputs}"
        seen.add(stage.name)


def test_tests_share_helpers_only_through_support_modules():
    # Importing a test module from another runs its tests' collection twice and ties
    # unrelated files together: shared helpers live in the *_support modules, fixtures in
    # conftest (which nothing imports).
    tests = Path(__file__).parent
    offenders = []
    for path in tests.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            else:
                continue
            offenders += [
                (path.name, name)
                for name in names
                if name.rsplit(".", 1)[-1].startswith(("test_", "conftest"))
            ]
    assert offenders == []


def test_entry_points_reach_the_dagster_layer_only_through_runner_and_resources():
    graph = import_graph()
    entry = [
        m for m in graph if m == "codeintel_assets.cli" or m.startswith("codeintel_assets.server")
    ]
    reached = {
        target
        for module in entry
        for target in graph.successors(module)
        if not target.startswith(("codeintel_assets.core", "codeintel_assets.server"))
    }
    assert reached == {"codeintel_assets.runner", "codeintel_assets.resources"}
