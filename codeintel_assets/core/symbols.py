"""The symbol graph: who calls, references, imports, inherits from or implements whom.

``symbol_edges_table`` reads the ``scip_occurrences`` and ``scip_symbols`` tables and
returns ``schemas.SYMBOL_EDGES`` rows, in two parts: ``file_edges_table`` counts the
reference edges of each file from that file alone (so a build keeps unchanged files'
counts), ``symbol_edges_of`` adds the relationship edges and every destination's file.

* every **reference** occurrence gives an edge from ``src_symbol`` — the innermost
  non-local definition whose enclosing lines contain it in the same file (scip-python
  sets enclosing ranges on functions and classes), else the file's module symbol — to
  the referenced symbol. The enclosing range of a definition starts at its decorators,
  but a decorator runs in the surrounding scope, so a reference on a line before the
  definition's name belongs to the next definition out. Its ``edge`` is ``import`` when the
  occurrence has the Import role or lies on an import statement, ``call`` when it is
  the callee of a call expression (``f`` in ``f(x)``, ``g`` in ``a.b.g(x)``), else
  ``reference``. Call sites and import lines come from Python's ``ast``
  (``python_syntax_sites``), because scip-python marks neither.
* every **relationship** of a symbol: ``is_implementation`` between two classes is
  ``inherits``, otherwise (an overriding method) ``implements``;
  ``is_type_definition`` is ``type_def``.

Local symbols (``local N``) and parameters (``f().(x)``) are left out at both ends.
``weight`` counts the occurrences (relationships count once); ``dst_uri`` is the file
holding the target's definition occurrence, null for symbols defined outside the index.
"""

from __future__ import annotations

import ast
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from codeintel_assets.core import schemas
from codeintel_assets.core.errors import BadInputError
from codeintel_assets.core.pyparse import PARSE_ERRORS, parse_python
from codeintel_assets.core.scip.proto.scip_pb2 import SymbolRole
from codeintel_assets.core.scip.symbol_names import infer_kind, is_local_symbol
from codeintel_assets.core.scip.tables import LINE_BREAK, TextReader

EDGE_KINDS = ("call", "reference", "import", "inherits", "implements", "type_def")
SYMBOL_GRAPH_FORMAT = "codeintel.symbol_graph"
SYMBOL_GRAPH_VERSION = 1
# Looked up once: attribute access on a generated enum goes through a Python __getattr__.
_IMPORT = SymbolRole.Import

# A call site or reference position: (uri, 0-based line, code-point column of the line).
Site = tuple[str, int, int]


@dataclass
class SyntaxSites:
    """Call sites and import-statement lines of a set of Python files."""

    calls: set[Site] = field(default_factory=set)
    import_lines: set[tuple[str, int]] = field(default_factory=set)
    unparsed: list[str] = field(default_factory=list)  # uris that are not valid Python


def _code_point_column(lines: list[str], line0: int, byte_col: int) -> int:
    """Convert ``ast``'s UTF-8 byte column to a code-point column of the line."""
    if line0 >= len(lines) or lines[line0].isascii():
        return byte_col
    return len(lines[line0].encode("utf-8")[:byte_col].decode("utf-8", errors="ignore"))


def _attribute_name_start(lines: list[str], node: ast.Attribute) -> tuple[int, int] | None:
    """Return (line0, code-point column) where the attribute name of ``node`` begins."""
    if node.end_lineno is None or node.end_col_offset is None:
        return None
    line0 = node.end_lineno - 1
    end = _code_point_column(lines, line0, node.end_col_offset)
    text = lines[line0] if line0 < len(lines) else ""
    start = end
    # Walk back over the identifier; ``node.attr`` is NFKC-normalized so its length can differ.
    while start > 0 and ("a" + text[start - 1]).isidentifier():
        start -= 1
    return line0, start


def _parse(text: str) -> tuple[ast.Module, list[str]]:
    return parse_python(text), LINE_BREAK.split(text)


def python_call_sites(text: str) -> set[tuple[int, int]]:
    """Return the (line0, code-point column) of every callee name in ``text``.

    For ``f(...)`` the position of ``f``; for ``a.b.g(...)`` the position of ``g``; calls
    of other expressions (``f()()``, ``x[0]()``) have no name and are skipped.
    Raises ``SyntaxError`` (and ``ValueError`` for NUL bytes) when ``text`` is not Python.
    """
    tree, lines = _parse(text)
    return _call_sites(tree, lines)


def _call_sites(tree: ast.Module, lines: list[str]) -> set[tuple[int, int]]:
    sites = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name):
            line0 = func.lineno - 1
            sites.add((line0, _code_point_column(lines, line0, func.col_offset)))
        elif isinstance(func, ast.Attribute):
            site = _attribute_name_start(lines, func)
            if site is not None:
                sites.add(site)
    return sites


def python_import_lines(text: str) -> set[int]:
    """Return the 0-based lines covered by ``import`` / ``from ... import`` statements.

    Raises ``SyntaxError`` (and ``ValueError`` for NUL bytes) when ``text`` is not Python.
    """
    tree, _ = _parse(text)
    return _import_lines(tree)


def _import_lines(tree: ast.Module) -> set[int]:
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            lines.update(range(node.lineno - 1, (node.end_lineno or node.lineno)))
    return lines


def python_syntax_sites(uris: Iterable[str], read_text: TextReader) -> SyntaxSites:
    """Return call sites and import lines of the Python files among ``uris``.

    Files that are missing are skipped; files that do not parse are listed in
    ``unparsed`` (their references then count as plain references).
    """
    sites = SyntaxSites()
    for uri in uris:
        if not uri.endswith((".py", ".pyi")):
            continue
        text = read_text(uri)
        if text is None:
            continue
        try:
            tree, lines = _parse(text)
        except PARSE_ERRORS:
            sites.unparsed.append(uri)
            continue
        sites.calls.update((uri, line, col) for line, col in _call_sites(tree, lines))
        sites.import_lines.update((uri, line) for line in _import_lines(tree))
    return sites


def syntax_site_rows(files: Iterable[tuple[str, str, bytes]]) -> tuple[pa.Table, list[str]]:
    """Return the call sites and import lines of ``files`` (uri, lang, bytes) as
    ``schemas.SYNTAX_SITES`` rows, file by file in the given order and each file's rows
    sorted, and the uris of the files that do not parse (``python_syntax_sites`` reads them
    the same way: bytes decoded as UTF-8 with replacement)."""
    rows: dict[str, list[Any]] = {name: [] for name in schemas.SYNTAX_SITES.names}
    unparsed = []
    for uri, _, data in files:
        try:
            tree, lines = _parse(data.decode("utf-8", errors="replace"))
        except PARSE_ERRORS:
            unparsed.append(uri)
            continue
        found = [("call", line, col) for line, col in _call_sites(tree, lines)]
        found += [("import", line, None) for line in _import_lines(tree)]
        found.sort(key=lambda site: (site[0], site[1], -1 if site[2] is None else site[2]))
        for site, line, col in found:
            rows["uri"].append(uri)
            rows["site"].append(site)
            rows["line"].append(line)
            rows["col"].append(col)
    return pa.table(rows, schema=schemas.SYNTAX_SITES), unparsed


def syntax_sites_of(table: pa.Table) -> SyntaxSites:
    """Return the ``SyntaxSites`` a ``schemas.SYNTAX_SITES`` table holds (``unparsed``
    left empty: the table does not record them)."""
    columns = table.to_pydict()
    sites = SyntaxSites()
    for uri, site, line, col in zip(
        columns["uri"], columns["site"], columns["line"], columns["col"], strict=True
    ):
        if site == "call":
            sites.calls.add((uri, line, col))
        else:
            sites.import_lines.add((uri, line))
    return sites


def _module_symbols(definitions: pa.Table) -> dict[str, str]:
    """Return the module symbol defined by each uri (the fallback source of edges)."""
    modules: dict[str, str] = {}
    rows = definitions.select(["symbol", "uri"]).to_pydict()
    for symbol, uri in zip(rows["symbol"], rows["uri"], strict=True):
        if uri not in modules and infer_kind(symbol) == "Module":
            modules[uri] = symbol
    return modules


def _is_parameter(symbol: str) -> bool:
    """Whether a symbol's last descriptor is a parameter ``(name)``: a function's own
    arguments (and keyword arguments at call sites) are not edges of the symbol graph."""
    return symbol.endswith(")")


# The ``scip_occurrences`` columns the reference edges of a file are counted from.
REFERENCE_COLUMNS = [
    "symbol",
    "uri",
    "role",
    "roles",
    "start_line",
    "start_char",
    "enclosing_start_line",
    "enclosing_end_line",
]


def _reference_edges(
    occurrences: pa.Table,
    modules: dict[str, str],
    call_sites: set[Site],
    import_lines: set[tuple[str, int]],
) -> Counter[tuple[str, str, str, str]]:
    """Count (src, dst, edge, uri) over the reference occurrences of whole files."""
    columns = occurrences.select(REFERENCE_COLUMNS).to_pydict()
    by_uri: dict[str, tuple[list[tuple[int, int, str, int]], list[tuple[int, int, int, str]]]]
    by_uri = {}
    for symbol, uri, role, roles, line, char, enc_start, enc_end in zip(
        *columns.values(), strict=True
    ):
        if is_local_symbol(symbol) or _is_parameter(symbol):
            continue
        defs, refs = by_uri.setdefault(uri, ([], []))
        if role == "def":
            if enc_start is not None and enc_end is not None:
                defs.append((enc_start, enc_end, symbol, line))
        else:
            refs.append((line, char, roles, symbol))
    counts: Counter[tuple[str, str, str, str]] = Counter()
    for uri, (defs, refs) in by_uri.items():
        # Python definitions nest, so a stack of open definitions finds the innermost one.
        defs.sort(key=lambda d: (d[0], -d[1]))
        refs.sort()
        stack: list[tuple[int, int, str, int]] = []
        next_def = 0
        module = modules.get(uri)
        for line, char, roles, dst in refs:
            while next_def < len(defs) and defs[next_def][0] <= line:
                opened = defs[next_def]
                while stack and stack[-1][1] < opened[0]:
                    stack.pop()
                stack.append(opened)
                next_def += 1
            while stack and stack[-1][1] < line:
                stack.pop()
            src = next((d[2] for d in reversed(stack) if d[3] <= line), module)
            if src is None:
                continue
            if roles & _IMPORT or (uri, line) in import_lines:
                edge = "import"
            elif (uri, line, char) in call_sites:
                edge = "call"
            else:
                edge = "reference"
            counts[(src, dst, edge, uri)] += 1
    return counts


def file_edges_table(
    occurrences: pa.Table,
    call_sites: set[Site],
    import_lines: set[tuple[str, int]] | None = None,
) -> pa.Table:
    """Return the reference, call and import edges of the files in ``occurrences`` (a
    ``scip_occurrences`` table of whole files), schema ``schemas.FILE_EDGES``: file by file
    in uri order, each file's edges sorted by (src_symbol, dst_symbol, edge).

    A file's edges are made from its own rows (its definitions give their sources, its
    module symbol the fallback) and its own call sites and import lines, nothing else: only
    where their destinations are defined is global (``symbol_edges_of``).
    """
    definitions = occurrences.filter(pc.equal(occurrences["role"], "def"))
    counts = _reference_edges(
        occurrences, _module_symbols(definitions), call_sites, import_lines or set()
    )
    rows = sorted((uri, src, dst, edge, n) for (src, dst, edge, uri), n in counts.items())
    columns = [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * 5
    return pa.table(columns, schema=schemas.FILE_EDGES)


# The columns of both kinds of edges before their destinations' files are looked up.
_EDGES_BUT_DST_URI = pa.schema([schemas.SYMBOL_EDGES.field(i) for i in range(5)])


def _relationship_edges(symbols: pa.Table, definitions: pa.Table) -> pa.Table:
    """Return the inherits, implements and type_def edges of ``scip_symbols`` rows
    (``symbol_edges_of``'s columns but ``dst_uri``); a source's file is the row's file when
    the symbol is defined there, else its first defining file (null when none)."""
    lengths = pc.list_value_length(symbols["relationships"])
    related = symbols.filter(pc.fill_null(pc.greater(lengths, 0), False))
    rows = related.select(["symbol", "kind", "relationships", "uri"]).to_pylist()
    named = pa.array(sorted({row["symbol"] for row in rows}), pa.string())
    defs = definitions.filter(pc.is_in(definitions["symbol"], value_set=named)).to_pydict()
    first: dict[str, str] = {}
    pairs: set[tuple[str, str]] = set()
    for symbol, uri in zip(defs["symbol"], defs["uri"], strict=True):
        first.setdefault(symbol, uri)
        pairs.add((symbol, uri))
    counts: Counter[tuple[str, str, str, str | None]] = Counter()
    for row in rows:
        src = row["symbol"]
        src_uri = row["uri"] if (src, row["uri"]) in pairs else first.get(src)
        for rel in row["relationships"]:
            dst = rel["symbol"]
            if is_local_symbol(src) or is_local_symbol(dst):
                continue
            if rel["is_implementation"]:
                both_classes = row["kind"] == "Class" and infer_kind(dst) == "Class"
                counts[(src, dst, "inherits" if both_classes else "implements", src_uri)] += 1
            if rel["is_type_definition"]:
                counts[(src, dst, "type_def", src_uri)] += 1
    found = [(*key[:3], n, key[3]) for key, n in counts.items()]
    columns = [list(column) for column in zip(*found, strict=True)] if found else [[]] * 5
    return pa.table(columns, schema=_EDGES_BUT_DST_URI)


def symbol_edges_of(file_edges: pa.Table, symbols: pa.Table, definitions: pa.Table) -> pa.Table:
    """Return the symbol graph (``schemas.SYMBOL_EDGES``, rules in the module doc) of every
    file's edges (``file_edges_table``) and the relationship edges of ``symbols`` (the
    ``scip_symbols`` table), sorted by (src_symbol, dst_symbol, edge, weight, src_uri) with
    a null src_uri as ''.

    ``definitions`` are the ``def`` rows (``symbol``, ``uri``) of all files in table order:
    an endpoint's file is the first file where its definition occurs. scip-python sometimes
    lists a symbol's SymbolInformation in a file that only assigns to it, or in code it
    finds unreachable on this platform (``if sys.platform == "win32":``) with no definition
    occurrence at all: that file is not used.
    """
    references = file_edges.select(_EDGES_BUT_DST_URI.names[:4] + ["uri"])
    references = references.rename_columns(_EDGES_BUT_DST_URI.names).cast(_EDGES_BUT_DST_URI)
    edges = pa.concat_tables([references, _relationship_edges(symbols, definitions)])
    # index_in gives a value's first position in the set: the first defining file.
    first = pc.index_in(edges["dst_symbol"], value_set=definitions["symbol"])
    edges = edges.append_column("dst_uri", definitions["uri"].take(first))
    # Arrow orders strings by their UTF-8 bytes, which is code-point order (Python's).
    keys = edges.select(["src_symbol", "dst_symbol", "edge", "weight"]).append_column(
        "src_uri", pc.fill_null(edges["src_uri"], "")
    )
    order = pc.sort_indices(keys, sort_keys=[(name, "ascending") for name in keys.column_names])
    # One chunk, as a table built from Python values: Parquet pages may end where chunks end.
    return edges.take(order).combine_chunks().cast(schemas.SYMBOL_EDGES)


def symbol_edges_table(
    occurrences: pa.Table,
    symbols: pa.Table,
    call_sites: set[Site],
    import_lines: set[tuple[str, int]] | None = None,
) -> pa.Table:
    """Return the symbol graph edges, schema ``schemas.SYMBOL_EDGES`` (rules in module doc).

    ``occurrences`` and ``symbols`` are the ``scip_occurrences`` / ``scip_symbols``
    tables; ``call_sites`` and ``import_lines`` come from ``python_syntax_sites`` and use
    the same (uri, 0-based line, code-point column) positions. Rows are sorted as
    ``symbol_edges_of`` sorts them.
    """
    definitions = occurrences.filter(pc.equal(occurrences["role"], "def"))
    file_edges = file_edges_table(occurrences, call_sites, import_lines)
    return symbol_edges_of(file_edges, symbols, definitions.select(["symbol", "uri"]))


def symbol_graph_json(edges: pa.Table) -> dict[str, Any]:
    """Return the ``symbol_graph.json`` export of an edges table.

    Shape: ``{"format": "codeintel.symbol_graph", "version": 1, "edges": [{src_symbol,
    dst_symbol, edge, weight, src_uri, dst_uri}, ...]}`` — the columns of
    ``symbol_edges``, so ``read_symbol_graph_json`` reads it back to the same table.
    """
    return {
        "format": SYMBOL_GRAPH_FORMAT,
        "version": SYMBOL_GRAPH_VERSION,
        "edges": edges.select(schemas.SYMBOL_EDGES.names).to_pylist(),
    }


def read_symbol_graph_json(path: Path) -> pa.Table:
    """Read a ``symbol_graph.json`` file (our export, or an external one in that shape).

    Accepts the object form above or a bare list of edge objects. ``src_symbol``,
    ``dst_symbol`` (non-empty strings) and ``edge`` (one of ``EDGE_KINDS``) are required;
    ``weight`` defaults to 1 and must be a positive integer; ``src_uri``/``dst_uri`` are
    strings or null. Returns a ``schemas.SYMBOL_EDGES`` table. Raises ``BadInputError``
    naming the file, the record index and the field.
    """
    try:
        raw = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BadInputError(f"{path}: not valid JSON: {err}") from None
    records = raw.get("edges") if isinstance(raw, dict) else raw
    if not isinstance(records, list):
        raise BadInputError(f"{path}: expected an object with an 'edges' array or an array")
    rows = [_edge_record(path, i, record) for i, record in enumerate(records)]
    return pa.Table.from_pylist(rows, schema=schemas.SYMBOL_EDGES)


def _edge_record(path: Path, i: int, record: Any) -> dict[str, Any]:
    def bad(key: str, reason: str) -> BadInputError:
        return BadInputError(f"{path}: edges[{i}].{key}: {reason}")

    if not isinstance(record, dict):
        raise BadInputError(f"{path}: edges[{i}]: expected an object, got {type(record).__name__}")
    row: dict[str, Any] = {}
    for key in ("src_symbol", "dst_symbol"):
        value = record.get(key)
        if value is None:
            raise bad(key, "missing required field")
        if not isinstance(value, str) or not value:
            raise bad(key, f"expected a non-empty string, got {value!r}")
        row[key] = value
    edge = record.get("edge")
    if edge is None:
        raise bad("edge", "missing required field")
    if edge not in EDGE_KINDS:
        raise bad("edge", f"expected one of {', '.join(EDGE_KINDS)}, got {edge!r}")
    row["edge"] = edge
    weight = record.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
        raise bad("weight", f"expected a positive integer, got {weight!r}")
    row["weight"] = weight
    for key in ("src_uri", "dst_uri"):
        value = record.get(key)
        if value is not None and not isinstance(value, str):
            raise bad(key, f"expected a string or null, got {value!r}")
        row[key] = value
    return row
