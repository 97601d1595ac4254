"""The shape of the package: its import graph has no cycle, and the layers import downwards.

The graph is read from the source with ``ast`` (every ``import`` statement, at module top
or inside a function, ``TYPE_CHECKING`` blocks included): an import inside a function is
still a dependency, it only hides a cycle.
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


def import_graph() -> nx.DiGraph:
    """Return the graph module → the package modules it imports."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
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
