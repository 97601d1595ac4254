"""Modules: where the ``modules`` table is made, exported to and read from ``modules.jsonl``.

What a module is (every file belongs to exactly one, so every chunk maps to one):

* a Python file ``pkg/sub/mod.py`` is module ``pkg.sub.mod`` with ``uri_prefix``
  ``pkg/sub/mod.py``; a package ``pkg/__init__.py`` is module ``pkg`` with
  ``uri_prefix`` ``pkg/``. ``module_id`` is the dotted path from the repository root,
  so it is unique even when two source roots hold modules of the same import name.
* any other file (README, config, JavaScript...) belongs to its directory: to the
  package module when the directory is a Python package, otherwise to a directory
  module whose ``module_id`` is the directory path (``docs``, ``web/src``; ``.`` for
  the repository root, whose ``uri_prefix`` is the empty string) and whose
  ``uri_prefix`` is ``dir/``.
* ``module_id`` values are unique: when two modules would share one (``docs/`` beside
  ``docs.py``, ``pkg.py`` beside ``pkg/__init__.py``), packages and Python files keep
  the name, in that order, and the other module takes its ``uri_prefix`` as id.

Files and chunks are attributed to the module with the **longest** ``uri_prefix``
that prefixes their uri — in SQL the catalog's ``uri_modules`` macro — and the
columns are:

* ``language``: ``python`` for Python modules; the most common language of its files
  for a directory module (ties broken by name).
* ``size_loc``: non-blank lines of the module's files; ``file_count``: its files;
  ``chunk_count``: chunks of a given chunks table (0 when none is given).
* ``cyclomatic``: McCabe complexity summed over the module: 1 per function or method
  plus 1 per decision point anywhere in the file (``if``/``elif``, conditional
  expression, ``for``, ``while``, ``except`` clause, ``case``, each ``for`` and ``if``
  of a comprehension, and ``n - 1`` per ``and``/``or`` chain of ``n`` operands).
  Lambdas add their decision points, not a base 1; module-level code adds its
  decision points only.
* ``doc_cov``: documented share of the public definitions — the module itself plus
  classes and functions not starting with ``_``, reached through module and public
  class bodies (definitions nested in functions are not API).
* ``def_count``: functions, methods and classes at any depth.
* ``in_deg``/``out_deg``: distinct modules importing / imported by this one in the
  import graph, resolved from the AST (``import a.b``, ``from a import b``, relative
  imports against the file's package; an absolute name resolves by its path from the
  root or by its import name under the nearest non-package directory). Only edges
  between modules of the repository, no self-loops.
* ``centrality``: PageRank (networkx, damping 0.85) over that graph with every module
  as a node, so it sums to 1 over the table.

``cyclomatic``, ``doc_cov`` and ``def_count`` are null for a module without a
parseable Python file (directory modules, files with syntax errors).
"""

from __future__ import annotations

import ast
import json
import math
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import networkx as nx
import pyarrow as pa
import pyarrow.compute as pc

from codeintel_assets.core.errors import BadInputError
from codeintel_assets.core.jsonl import jsonl_records
from codeintel_assets.core.pyparse import parse_python
from codeintel_assets.core.schemas import MODULE_FILES, MODULES
from codeintel_assets.core.syntax import Diagnostic

ROOT_MODULE_ID = "."
T = TypeVar("T")

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
# Nodes that each add one path through the code.
_DECISIONS = (
    ast.If,
    ast.IfExp,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.ExceptHandler,
    ast.match_case,
)


@dataclass
class _Module:
    """One module under construction."""

    module_id: str
    uri_prefix: str
    language: str
    # Python modules only: the dotted package relative imports resolve against, the
    # import name under the nearest non-package directory, and the source file.
    package: str | None = None
    import_name: str | None = None
    source_uri: str | None = None
    files: list[tuple[str, str]] = field(default_factory=list)  # (uri, lang)
    size_loc: int = 0
    stats: _PythonStats | None = None


@dataclass(frozen=True)
class _PythonStats:
    """What the AST of one Python file says about it."""

    cyclomatic: int
    public_defs: int
    documented_defs: int
    def_count: int
    imports: tuple[tuple[int, str, tuple[str, ...]], ...]  # (level, module, names)


def modules_table(
    files: Iterable[tuple[str, str, bytes]], chunks: pa.Table | None = None
) -> tuple[pa.Table, list[Diagnostic]]:
    """Return the ``MODULES`` table of a repository's files ``(uri, lang, bytes)``.

    ``chunks`` (columns ``uri`` at least) fills ``chunk_count``. Rows are sorted by
    ``module_id``. Python files that are not UTF-8 or do not parse still get their
    module row (without AST metrics) and a ``Diagnostic``; nothing is raised for them.
    """
    facts, diagnostics = module_file_facts(files)
    return modules_from_facts(facts, chunks), diagnostics


def module_file_facts(
    files: Iterable[tuple[str, str, bytes]],
) -> tuple[pa.Table, list[Diagnostic]]:
    """Return what the modules table needs of each file ``(uri, lang, bytes)``, one
    ``MODULE_FILES`` row per file in input order, and the diagnostics of ``.py`` files that
    do not parse (their row has no AST metrics). Each row depends on its file alone."""
    rows = []
    diagnostics: list[Diagnostic] = []
    for uri, lang, data in files:
        stats = None
        if uri.endswith(".py"):
            stats, problem = _python_stats(uri, data)
            if problem is not None:
                diagnostics.append(problem)
        rows.append(
            {
                "uri": uri,
                "lang": lang,
                "size_loc": sum(1 for line in data.splitlines() if line.strip()),
                "parsed": stats is not None,
                "cyclomatic": stats.cyclomatic if stats else None,
                "public_defs": stats.public_defs if stats else None,
                "documented_defs": stats.documented_defs if stats else None,
                "def_count": stats.def_count if stats else None,
                "imports": [
                    {"level": level, "module": module, "names": list(names)}
                    for level, module, names in (stats.imports if stats else ())
                ],
            }
        )
    return pa.Table.from_pylist(rows, schema=MODULE_FILES), diagnostics


def modules_from_facts(facts: pa.Table, chunks: pa.Table | None = None) -> pa.Table:
    """Return the ``MODULES`` table from every file's ``MODULE_FILES`` row (see
    ``modules_table``): modules, import graph and PageRank span the repository."""
    files = facts.to_pylist()
    modules = _declare_modules([row["uri"] for row in files])
    by_prefix = {module.uri_prefix: module for module in modules}
    for row in files:
        owner = longest_prefix_owner(by_prefix, row["uri"])
        assert owner is not None  # every file declared its own module or directory module
        owner.files.append((row["uri"], row["lang"]))
        owner.size_loc += row["size_loc"]
        if row["parsed"] and row["uri"] == owner.source_uri:
            owner.stats = _PythonStats(
                row["cyclomatic"],
                row["public_defs"],
                row["documented_defs"],
                row["def_count"],
                tuple((i["level"], i["module"], tuple(i["names"])) for i in row["imports"]),
            )
    for module in modules:
        if module.source_uri is None:
            module.language = _majority_language(module.files)

    graph = _import_graph(modules)
    centrality = nx.pagerank(graph) if modules else {}
    chunk_counts = _chunk_counts(by_prefix, chunks)

    rows = []
    for index, module in enumerate(modules):
        stats = module.stats
        rows.append(
            {
                "module_id": module.module_id,
                "uri_prefix": module.uri_prefix,
                "language": module.language,
                "size_loc": module.size_loc,
                "cyclomatic": stats.cyclomatic if stats else None,
                "doc_cov": stats.documented_defs / stats.public_defs if stats else None,
                "in_deg": graph.in_degree(index),
                "out_deg": graph.out_degree(index),
                "centrality": centrality[index],
                "file_count": len(module.files),
                "def_count": stats.def_count if stats else None,
                "chunk_count": chunk_counts.get(module.uri_prefix, 0),
            }
        )
    rows.sort(key=lambda row: row["module_id"])
    return pa.Table.from_pylist(rows, schema=MODULES)


# -- which modules exist ----------------------------------------------------------------


def _declare_modules(uris: list[str]) -> list[_Module]:
    """Return one module per Python file and per directory holding other files."""
    # Sorted, so which of two colliding names is renamed never depends on input order.
    uris = sorted(uris)
    package_dirs = {uri.rsplit("/", 1)[0] for uri in uris if uri.endswith("/__init__.py")}
    python_modules = [_python_module(uri, package_dirs) for uri in uris if uri.endswith(".py")]
    # Packages first: like Python's import system, `pkg/` wins over `pkg.py` for the name.
    python_modules.sort(key=lambda module: not module.uri_prefix.endswith("/"))
    other_dirs = sorted({_directory(uri) for uri in uris if not uri.endswith(".py")} - package_dirs)
    modules = python_modules + [
        _Module(
            module_id=directory or ROOT_MODULE_ID,
            uri_prefix=f"{directory}/" if directory else "",
            language="text",
        )
        for directory in other_dirs
    ]
    taken: set[str] = set()
    for module in modules:
        # uri_prefix values are unique, so a colliding name falls back to its prefix.
        if module.module_id in taken:
            module.module_id = module.uri_prefix
        taken.add(module.module_id)
    return modules


def _python_module(uri: str, package_dirs: set[str]) -> _Module:
    """Return the module of one ``.py`` file (a package for a non-root ``__init__.py``)."""
    parts = uri[: -len(".py")].split("/")
    is_package = len(parts) > 1 and parts[-1] == "__init__"
    if is_package:
        parts.pop()
    # The import name starts below the nearest ancestor directory that is not a package.
    first = len(parts) - 1
    while first >= 1 and "/".join(parts[:first]) in package_dirs:
        first -= 1
    package_parts = parts if is_package else parts[:-1]
    return _Module(
        module_id=".".join(parts),
        uri_prefix="/".join(parts) + "/" if is_package else uri,
        language="python",
        package=".".join(package_parts),
        import_name=".".join(parts[first:]),
        source_uri=uri,
    )


def _directory(uri: str) -> str:
    return uri.rsplit("/", 1)[0] if "/" in uri else ""


def longest_prefix_owner(by_prefix: Mapping[str, T], uri: str) -> T | None:
    """Return the value (a module) whose ``uri_prefix`` key is the longest prefix of ``uri``,
    or None: the rule that attributes files and chunks to modules (in SQL ``uri_modules``)."""
    for length in range(len(uri), -1, -1):
        owner = by_prefix.get(uri[:length])
        if owner is not None:
            return owner
    return None


def _majority_language(files: list[tuple[str, str]]) -> str:
    """Return the most common language of ``files`` (ties by name), ``text`` when empty."""
    counts = Counter(lang for _, lang in files)
    if not counts:
        return "text"
    return min(counts, key=lambda lang: (-counts[lang], lang))


# -- python metrics ---------------------------------------------------------------------


def _python_stats(uri: str, data: bytes) -> tuple[_PythonStats | None, Diagnostic | None]:
    """Return the AST metrics of a Python file, or a diagnostic when it does not parse."""
    try:
        tree = parse_python(data.decode("utf-8-sig"), uri)
    except UnicodeDecodeError as exc:
        return None, Diagnostic(uri, "not_utf8", f"byte {exc.start}: {exc.reason}")
    except SyntaxError as exc:
        return None, Diagnostic(uri, "syntax_error", f"line {exc.lineno}: {exc.msg}")
    except ValueError as exc:
        return None, Diagnostic(uri, "syntax_error", str(exc))
    except (RecursionError, MemoryError) as exc:
        return None, Diagnostic(uri, "too_complex", f"{type(exc).__name__}: {exc}")
    except SystemError as exc:
        return None, Diagnostic(uri, "parser_error", f"{type(exc).__name__}: {exc}")

    cyclomatic = 0
    def_count = 0
    imports: list[tuple[int, str, tuple[str, ...]]] = []
    for node in ast.walk(tree):
        if isinstance(node, _FUNCTIONS):
            cyclomatic += 1
        if isinstance(node, _DEFINITIONS):
            def_count += 1
        if isinstance(node, _DECISIONS):
            cyclomatic += 1
        elif isinstance(node, ast.comprehension):
            cyclomatic += 1 + len(node.ifs)
        elif isinstance(node, ast.BoolOp):
            cyclomatic += len(node.values) - 1
        elif isinstance(node, ast.Import):
            imports.extend((0, alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names = tuple(alias.name for alias in node.names)
            imports.append((node.level, node.module or "", names))
    public, documented = _public_docstrings(tree)
    return _PythonStats(cyclomatic, public, documented, def_count, tuple(imports)), None


def _public_docstrings(tree: ast.Module) -> tuple[int, int]:
    """Return (public definitions including the module, those with a docstring)."""
    public = 1
    documented = 1 if ast.get_docstring(tree) else 0
    bodies: list[list[ast.stmt]] = [tree.body]
    while bodies:
        for node in bodies.pop():
            if isinstance(node, _DEFINITIONS) and not node.name.startswith("_"):
                public += 1
                documented += 1 if ast.get_docstring(node) else 0
                if isinstance(node, ast.ClassDef):
                    bodies.append(node.body)
    return public, documented


# -- import graph -----------------------------------------------------------------------


def _import_graph(modules: list[_Module]) -> nx.DiGraph:
    """Return the graph importer → imported over module indexes (every module a node)."""
    by_id: dict[str, int] = {}
    by_import_name: dict[str, list[int]] = {}
    for index, module in enumerate(modules):
        if module.import_name is not None:
            by_id[module.module_id] = index
            by_import_name.setdefault(module.import_name, []).append(index)

    graph = nx.DiGraph()
    graph.add_nodes_from(range(len(modules)))
    for index, module in enumerate(modules):
        if module.stats is None:
            continue
        resolver = _Resolver(modules, by_id, by_import_name, module)
        for level, name, names in module.stats.imports:
            for target in resolver.resolve(level, name, names):
                if target != index:
                    graph.add_edge(index, target)
    return graph


@dataclass(frozen=True)
class _Resolver:
    """Resolves the imports of one module to module indexes."""

    modules: list[_Module]
    by_id: dict[str, int]
    by_import_name: dict[str, list[int]]
    importer: _Module

    def resolve(self, level: int, name: str, names: tuple[str, ...]) -> set[int]:
        """Return the modules one import statement loads: ``from a import b, c`` loads the
        modules ``a.b`` and ``a.c`` when they exist, else ``a``; ``import a.b.c`` loads the
        deepest of ``a.b.c``, ``a.b``, ``a`` that exists."""
        if level:
            base = self._relative_base(level, name)
            if base is None:
                return set()
            lookup = self.by_id.get
        else:
            base, lookup = name, self._absolute
        targets = set()
        for member in names:
            target = lookup(_join(base, member)) if member != "*" else None
            if target is None:
                target = self._deepest(base, lookup)
            if target is not None:
                targets.add(target)
        if not names:
            target = self._deepest(base, lookup)
            if target is not None:
                targets.add(target)
        return targets

    @staticmethod
    def _deepest(dotted: str, lookup: Callable[[str], int | None]) -> int | None:
        """Return the module of the longest leading part of ``dotted`` that resolves."""
        parts = dotted.split(".")
        for length in range(len(parts), 0, -1):
            target = lookup(".".join(parts[:length]))
            if target is not None:
                return target
        return None

    def _relative_base(self, level: int, name: str) -> str | None:
        """Return the dotted module_id a relative import starts from, or None above the root."""
        package = self.importer.package or ""
        parts = package.split(".") if package else []
        if level - 1 > len(parts):
            return None
        parts = parts[: len(parts) - (level - 1)]
        return _join(".".join(parts), name)

    def _absolute(self, dotted: str) -> int | None:
        """Return the module of an absolute name: by its path from the root, else by import
        name, preferring the candidate whose file is closest to the importer's."""
        if dotted in self.by_id:
            return self.by_id[dotted]
        candidates = self.by_import_name.get(dotted)
        if not candidates:
            return None
        here = self.importer.source_uri or ""
        return min(
            candidates,
            key=lambda i: (
                -_common_dirs(here, self.modules[i].uri_prefix),
                self.modules[i].module_id,
            ),
        )


def _join(base: str, name: str) -> str:
    return f"{base}.{name}" if base and name else base or name


def _common_dirs(left: str, right: str) -> int:
    """Return how many leading directories two uris share."""
    return len(os.path.commonprefix([left.split("/")[:-1], right.split("/")[:-1]]))


def _chunk_counts(by_prefix: dict[str, _Module], chunks: pa.Table | None) -> dict[str, int]:
    """Return chunk counts per ``uri_prefix`` by longest prefix match."""
    if chunks is None or chunks.num_rows == 0:
        return {}
    counts: Counter[str] = Counter()
    per_uri = pc.value_counts(chunks.column("uri").cast(pa.string()))
    for item in per_uri.to_pylist():
        owner = longest_prefix_owner(by_prefix, item["values"])
        if owner is not None:
            counts[owner.uri_prefix] += item["counts"]
    return dict(counts)


# -- modules.jsonl ----------------------------------------------------------------------

_REQUIRED_FIELDS = ("module_id", "uri_prefix", "language")


def modules_jsonl(table: pa.Table) -> str:
    """Return ``table`` (schema ``MODULES``) as JSON Lines, one module per line."""
    lines = [json.dumps(row, ensure_ascii=False) for row in table.select(MODULES.names).to_pylist()]
    return "".join(line + "\n" for line in lines)


def read_modules_jsonl(path: Path) -> pa.Table:
    """Return the ``MODULES`` table of a user's ``modules.jsonl``.

    ``module_id``, ``uri_prefix`` and ``language`` are required strings; the other
    columns of ``MODULES`` are optional (null when absent) but must have the right type
    when present; unknown keys are ignored; blank lines are skipped. Raises
    ``BadInputError`` naming the file, the line and the field for a missing file, invalid
    JSON, a missing or wrongly typed field, or a duplicate ``module_id``/``uri_prefix``.
    """
    rows: list[dict[str, Any]] = []
    first_line: dict[tuple[str, str], int] = {}
    for number, record in jsonl_records(path):
        row = {
            name: _checked_field(path, number, record, schema_field)
            for name, schema_field in zip(MODULES.names, MODULES, strict=True)
        }
        for key in ("module_id", "uri_prefix"):
            seen_at = first_line.setdefault((key, row[key]), number)
            if seen_at != number:
                raise BadInputError(
                    f"{path}: line {number}: field '{key}' duplicates line {seen_at} ({row[key]!r})"
                )
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=MODULES)


def _checked_field(path: Path, number: int, record: dict[str, Any], schema_field: pa.Field) -> Any:
    """Return one field's value after checking presence and type against ``MODULES``."""
    name = schema_field.name
    value = record.get(name)
    if value is None:
        if name in _REQUIRED_FIELDS:
            raise BadInputError(f"{path}: line {number}: field '{name}' is missing")
        return None
    kind = schema_field.type
    if pa.types.is_string(kind):
        valid = isinstance(value, str)
        expected = "a string"
    elif pa.types.is_integer(kind):
        valid = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        expected = "a non-negative integer"
    else:
        valid = (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
        expected = "a number"
    if not valid:
        raise BadInputError(
            f"{path}: line {number}: field '{name}' must be {expected}, got {value!r}"
        )
    if name == "uri_prefix" and value.startswith("/"):
        raise BadInputError(
            f"{path}: line {number}: field 'uri_prefix' must be repository-relative, got {value!r}"
        )
    return value
