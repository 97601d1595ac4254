"""The order scip-python processes a tree's files in: a file after the files it imports.

Order matters to scip-python (0.6.6): it names a symbol once per run, at the first use
it meets, and a file whose symbol an earlier file already used gets no
``SymbolInformation`` for it (no documentation, no relationships); an external symbol's
hover text is taken at its first use. Indexing the files that define symbols before the
files that use them keeps their documentation; and one order, used by the full pass
and by every incremental run, is what lets ``incremental.py`` reproduce a full pass.

The import graph is read with ``ast`` (a file that does not parse has no edges); import
cycles are ordered by path, as is everything the graph leaves free. An approximate graph
costs documentation, never correctness: ``incremental.py`` works from the order given.
What a file imports depends on its bytes and path alone, so ``imported_names`` re-reads
only the files whose content hash changed (parsing all 1,783 files of the standard
library is ~28 s, most of an incremental update).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import networkx as nx


def module_names(uri: str) -> list[str]:
    """Return the dotted names ``uri`` is imported by: ``pkg/a.py`` is ``pkg.a``, a package's
    ``__init__.py`` the package; under ``src/`` also without the ``src.`` prefix."""
    module = uri.rsplit(".", 1)[0].replace("/", ".").removesuffix(".__init__")
    names = [module]
    if module.startswith("src."):
        names.append(module.removeprefix("src."))
    return names


# The version of what ``imported_names`` returns: stored names of another are read again.
NAMES_FORMAT = 1


def imported_names(
    repo_root: Path, files: Mapping[str, str], stored: Mapping[str, Sequence[Any]]
) -> tuple[dict[str, list[str]], int]:
    """Return the dotted names each of ``files`` (uri -> content hash) imports, and how
    many files were parsed for them: a file whose ``stored`` entry (``[hash, names]``)
    has its hash keeps those names."""
    names: dict[str, list[str]] = {}
    parsed = 0
    for uri, digest in files.items():
        entry = stored.get(uri)
        if entry is not None and entry[0] == digest:
            names[uri] = list(entry[1])
        else:
            names[uri] = sorted(_names(repo_root / uri, uri))
            parsed += 1
    return names, parsed


def processing_order(
    repo_root: Path, uris: Sequence[str], names: Mapping[str, Iterable[str]] | None = None
) -> list[str]:
    """Return ``uris`` with every file after the files it imports (cycles and ties by path).

    ``names`` (``imported_names``) are what each file imports; without them every file is
    parsed."""
    by_module: dict[str, str] = {}
    for uri in sorted(uris):
        for name in module_names(uri):
            by_module.setdefault(name, uri)
    graph = nx.DiGraph()
    graph.add_nodes_from(uris)
    for uri in uris:
        imports = names[uri] if names is not None else _names(repo_root / uri, uri)
        for imported in _resolve(imports, by_module):
            if imported != uri:
                graph.add_edge(imported, uri)
    condensed = nx.condensation(graph)
    members: Mapping[int, Iterable[str]] = condensed.graph["mapping"]
    first: dict[int, str] = {}
    for uri, component in members.items():
        first[component] = min(first.get(component, uri), uri)
    order: list[str] = []
    components = nx.lexicographical_topological_sort(condensed, key=lambda c: first[c])
    for component in components:
        order.extend(sorted(condensed.nodes[component]["members"]))
    return order


def _names(path: Path, uri: str) -> set[str]:
    """Return the dotted names the file at ``path`` imports (directly), relative imports
    made absolute; none when it does not parse."""
    try:
        tree = ast.parse(path.read_bytes(), filename=uri)
    except (OSError, SyntaxError, ValueError):
        return set()
    package = module_names(uri)[0].split(".")
    if not uri.endswith(("__init__.py", "__init__.pyi")):
        package = package[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1] if node.level > 1 else package
                base = ".".join([*anchor, *([base] if base else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" if base else alias.name for alias in node.names)
    return names


def _resolve(names: Iterable[str], by_module: Mapping[str, str]) -> set[str]:
    """Return the files of the tree that ``names`` import."""
    found = set()
    for name in names:
        parts = name.split(".")
        # The longest module of the tree the name starts with: `import a.b.c` also runs
        # a/__init__.py, but what the file uses is a.b.c's (an edge to every parent
        # package would tie each package to its submodules in one cycle).
        for end in range(len(parts), 0, -1):
            target = by_module.get(".".join(parts[:end]))
            if target is not None:
                found.add(target)
                break
    return found
