"""Syntax node tables: where ``ast_nodes``, ``cst_nodes`` and ``node_to_chunk`` are made.

Both node tables share the schema ``schemas.SYNTAX_NODES``; one row per node, no text.

* ``ast_nodes`` comes from CPython's ``ast``: every node that carries a position
  (statements, expressions, ``arg``, ``keyword``, ``alias``, patterns, except
  handlers...) plus one synthetic ``Module`` row covering the whole file, which is
  the root (``parent_id`` null, depth 0). Nodes without a position (``arguments``,
  ``comprehension``, ``withitem``, operators...) are skipped and their children
  attach to the nearest positioned ancestor. Ranges are CPython's own: a decorated
  ``FunctionDef`` starts at ``def``, its decorators are child rows that precede it.
* ``cst_nodes`` comes from tree-sitter and keeps every node, named or anonymous:
  comments, keywords, operators and punctuation (about 6.7 rows per line of Python,
  a quarter of them punctuation — few enough to keep the tree lossless). A named
  node's kind is its grammar type (``function_definition``, ``comment``); an
  anonymous token's kind is its text in double quotes, as in tree-sitter queries
  (``"def"``, ``"("``), because some grammars use one word for both (Python's
  ``lambda`` expression and its ``"lambda"`` keyword). ``ERROR`` nodes are kept as
  they are; a missing token that tree-sitter inserted to recover is a zero-width row
  of kind ``MISSING`` whose ``name`` is the expected token.

Ids: ``node_id = signed_xxh64(repo, uri, kind, start_byte, end_byte)``. Nested
nodes of the same kind can share a range (``f"a{x}"`` gives several ``Constant`` s
with the JoinedStr's range on Python 3.11), so the k-th repeat (k >= 1, in
pre-order) of a (kind, start_byte, end_byte) within a file hashes ``k`` as a sixth
part. Pre-order over the same bytes is the same, so ids are stable across runs.

Lines are 1-based inclusive: ``end_line`` is the line of the node's last byte, so a
node ending with a newline does not claim the next line. ``text_hash`` is the xxh64
hex of the node's bytes.
"""

from __future__ import annotations

import ast
import bisect
import codecs
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
from tree_sitter import Node

from codeintel_assets.core.checksums import signed_xxh64, xxh64_bytes
from codeintel_assets.core.grammars import CST_DEFINITION_KINDS, SYNTAX_LANGUAGES, parser_for
from codeintel_assets.core.pyparse import parse_python
from codeintel_assets.core.schemas import AST_NODES, CST_NODES, NODE_TO_CHUNK, ParquetStream

__all__ = [
    "Diagnostic",
    "SYNTAX_LANGUAGES",
    "ast_nodes_table",
    "cst_nodes_table",
    "node_to_chunk_table",
    "parser_for",
    "write_ast_nodes",
    "write_cst_nodes",
    "write_node_to_chunk",
]

# Rows held as Python values before a streaming writer hands them to Arrow (~30 MB).
BATCH_ROWS = 65_536

# AST node types whose ``name`` attribute is a defined (or imported) name.
_AST_NAMED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.alias)


@dataclass(frozen=True)
class Diagnostic:
    """A file that could not be (fully) parsed: ``reason`` is a short code to count by.

    Reasons: ``syntax_error`` (AST: file skipped; CST: rows kept with ERROR nodes),
    ``not_utf8`` (AST: file skipped), ``too_complex`` (the parser gave up on nesting),
    ``unsupported_language`` (CST: no grammar for the file's language).
    """

    uri: str
    reason: str
    detail: str = ""


class _Columns:
    """Column lists of a node table, filled row by row for one repository."""

    def __init__(self, repo: str) -> None:
        self.repo = repo
        self._empty()

    def _empty(self) -> None:
        self.node_id: list[int] = []
        self.uri: list[str] = []
        self.kind: list[str] = []
        self.start_byte: list[int] = []
        self.end_byte: list[int] = []
        self.start_line: list[int] = []
        self.end_line: list[int] = []
        self.parent_id: list[int | None] = []
        self.depth: list[int] = []
        self.name: list[str | None] = []
        self.text_hash: list[str] = []

    def add(
        self,
        seen: dict[tuple[str, int, int], int],
        data: memoryview,
        uri: str,
        kind: str,
        span: tuple[int, int, int, int],
        parent_id: int | None,
        depth: int,
        name: str | None,
    ) -> int:
        """Append one node (``span`` = start/end byte, start/end line) and return its id."""
        start, end, start_line, end_line = span
        key = (kind, start, end)
        repeat = seen.get(key, 0)
        seen[key] = repeat + 1
        if repeat:
            node_id = signed_xxh64(self.repo, uri, kind, start, end, repeat)
        else:
            node_id = signed_xxh64(self.repo, uri, kind, start, end)
        self.node_id.append(node_id)
        self.uri.append(uri)
        self.kind.append(kind)
        self.start_byte.append(start)
        self.end_byte.append(end)
        self.start_line.append(start_line)
        self.end_line.append(end_line)
        self.parent_id.append(parent_id)
        self.depth.append(depth)
        self.name.append(name)
        self.text_hash.append(xxh64_bytes(data[start:end]))
        return node_id

    def __len__(self) -> int:
        return len(self.node_id)

    def take(self, schema: pa.Schema) -> pa.Table:
        """Return the rows so far as a table and start empty again."""
        table = self.table(schema)
        self._empty()
        return table

    def table(self, schema: pa.Schema) -> pa.Table:
        return pa.table(
            {
                "node_id": self.node_id,
                "uri": self.uri,
                "kind": self.kind,
                "start_byte": self.start_byte,
                "end_byte": self.end_byte,
                "start_line": self.start_line,
                "end_line": self.end_line,
                "parent_id": self.parent_id,
                "depth": self.depth,
                "name": self.name,
                "text_hash": self.text_hash,
            },
            schema=schema,
        )


# -- ast --------------------------------------------------------------------------------


def ast_nodes_table(
    repo: str, files: Iterable[tuple[str, bytes]]
) -> tuple[pa.Table, list[Diagnostic]]:
    """Return the ``AST_NODES`` rows of Python sources ``(uri, bytes)`` and the diagnostics.

    A file that is not UTF-8 or does not parse contributes no rows and one
    ``Diagnostic``; nothing is raised for bad input.
    """
    columns = _Columns(repo)
    diagnostics = _add_ast_files(columns, files)
    return columns.table(AST_NODES), diagnostics


def write_ast_nodes(
    repo: str, files: Iterable[tuple[str, bytes]], stream: ParquetStream
) -> list[Diagnostic]:
    """Write the ``AST_NODES`` rows of ``files`` to ``stream`` (the rows of
    ``ast_nodes_table``, in its order), a batch every ``BATCH_ROWS`` rows; return the
    diagnostics."""
    columns = _Columns(repo)
    diagnostics = _add_ast_files(columns, files, _batch_writer(columns, stream, AST_NODES))
    stream.write(columns.take(AST_NODES))
    return diagnostics


def _batch_writer(
    columns: _Columns, stream: ParquetStream, schema: pa.Schema
) -> Callable[[], None]:
    """Return the function that moves the rows collected so far to ``stream`` once they
    are ``BATCH_ROWS`` or more (called between files: a file's rows stay together)."""

    def flush() -> None:
        if len(columns) >= BATCH_ROWS:
            stream.write(columns.take(schema))

    return flush


def _add_ast_files(
    columns: _Columns,
    files: Iterable[tuple[str, bytes]],
    after_file: Callable[[], None] | None = None,
) -> list[Diagnostic]:
    diagnostics: list[Diagnostic] = []
    for uri, data in files:
        problem = _add_ast_file(columns, uri, data)
        if problem is not None:
            diagnostics.append(problem)
        if after_file is not None:
            after_file()
    return diagnostics


def _add_ast_file(columns: _Columns, uri: str, data: bytes) -> Diagnostic | None:
    """Append the rows of one file, all or nothing; return a diagnostic when it fails."""
    # The BOM is not part of the text ast sees, so offsets on line 1 shift by it.
    bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        # Decoding ourselves (not ast.parse(bytes)) ignores PEP 263 cookies, so
        # col_offset is a UTF-8 offset that matches the file's own bytes.
        text = data[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        return Diagnostic(uri, "not_utf8", f"byte {bom + exc.start}: {exc.reason}")
    try:
        tree = parse_python(text, uri)
    except SyntaxError as exc:
        return Diagnostic(uri, "syntax_error", f"line {exc.lineno}: {exc.msg}")
    except ValueError as exc:
        return Diagnostic(uri, "syntax_error", str(exc))
    except (RecursionError, MemoryError) as exc:
        return Diagnostic(uri, "too_complex", f"{type(exc).__name__}: {exc}")
    except SystemError as exc:
        return Diagnostic(uri, "parser_error", f"{type(exc).__name__}: {exc}")

    line_starts = _line_starts(data)
    view = memoryview(data)
    seen: dict[tuple[str, int, int], int] = {}
    end_line = _line_of(line_starts, len(data) - 1) if data else 1
    root_id = columns.add(seen, view, uri, "Module", (0, len(data), 1, end_line), None, 0, None)

    stack: list[tuple[ast.AST, int, int]] = [
        (child, root_id, 1) for child in reversed(list(ast.iter_child_nodes(tree)))
    ]
    while stack:
        node, parent_id, depth = stack.pop()
        end_lineno = getattr(node, "end_lineno", None)
        if end_lineno is None:
            # Unpositioned (arguments, comprehension...): children attach to our parent.
            node_id, child_depth = parent_id, depth
        else:
            lineno = node.lineno
            start = _byte_offset(line_starts, bom, lineno, node.col_offset)
            end = _byte_offset(line_starts, bom, end_lineno, node.end_col_offset)
            last_line = _line_of(line_starts, end - 1) if end > start else lineno
            name = node.name if isinstance(node, _AST_NAMED) else None
            node_id = columns.add(
                seen,
                view,
                uri,
                type(node).__name__,
                (start, end, lineno, last_line),
                parent_id,
                depth,
                name,
            )
            child_depth = depth + 1
        stack.extend(
            (child, node_id, child_depth) for child in reversed(list(ast.iter_child_nodes(node)))
        )
    return None


def _line_starts(data: bytes) -> list[int]:
    """Return the byte offset of every line start (``\\n``, ``\\r\\n`` and ``\\r`` end lines,
    as in Python's tokenizer)."""
    starts = [0]
    offset = 0
    for line in data.splitlines(keepends=True):
        offset += len(line)
        starts.append(offset)
    return starts


def _byte_offset(line_starts: list[int], bom: int, line: int, column: int) -> int:
    """Return the file offset of an ast position (1-based line, UTF-8 column of the text)."""
    return line_starts[line - 1] + column + (bom if line == 1 else 0)


def _line_of(line_starts: list[int], byte: int) -> int:
    """Return the 1-based line containing ``byte``."""
    return bisect.bisect_right(line_starts, byte)


# -- cst --------------------------------------------------------------------------------


def cst_nodes_table(
    repo: str, files: Iterable[tuple[str, str, bytes]]
) -> tuple[pa.Table, list[Diagnostic]]:
    """Return the ``CST_NODES`` rows of ``(uri, lang, bytes)`` files and the diagnostics.

    ``lang`` is one of ``SYNTAX_LANGUAGES`` (python, javascript, typescript, tsx); a
    file in another language gets an ``unsupported_language`` diagnostic and no rows. A
    file with syntax errors keeps all its rows (ERROR and MISSING included) and gets a
    ``syntax_error`` diagnostic counting them. Nothing is raised for bad input.
    """
    columns = _Columns(repo)
    diagnostics = _add_cst_files(columns, files)
    return columns.table(CST_NODES), diagnostics


def write_cst_nodes(
    repo: str, files: Iterable[tuple[str, str, bytes]], stream: ParquetStream
) -> list[Diagnostic]:
    """Write the ``CST_NODES`` rows of ``files`` to ``stream`` (the rows of
    ``cst_nodes_table``, in its order), a batch every ``BATCH_ROWS`` rows; return the
    diagnostics."""
    columns = _Columns(repo)
    diagnostics = _add_cst_files(columns, files, _batch_writer(columns, stream, CST_NODES))
    stream.write(columns.take(CST_NODES))
    return diagnostics


def _add_cst_files(
    columns: _Columns,
    files: Iterable[tuple[str, str, bytes]],
    after_file: Callable[[], None] | None = None,
) -> list[Diagnostic]:
    diagnostics: list[Diagnostic] = []
    for uri, lang, data in files:
        if lang not in SYNTAX_LANGUAGES:
            diagnostics.append(Diagnostic(uri, "unsupported_language", lang))
            continue
        problem = _add_cst_file(columns, uri, lang, data)
        if problem is not None:
            diagnostics.append(problem)
        if after_file is not None:
            after_file()
    return diagnostics


def _add_cst_file(columns: _Columns, uri: str, lang: str, data: bytes) -> Diagnostic | None:
    """Append every node of one file in pre-order; return a diagnostic on syntax errors."""
    tree = parser_for(lang).parse(data)
    view = memoryview(data)
    seen: dict[tuple[str, int, int], int] = {}
    errors = missing = 0
    first_error_line: int | None = None
    parents: list[int] = []
    cursor = tree.walk()
    while True:
        node = cursor.node
        assert node is not None  # a cursor on a tree always has a node
        kind, name = _cst_kind_and_name(node, data)
        if kind == "ERROR" or kind == "MISSING":
            errors += kind == "ERROR"
            missing += kind == "MISSING"
            if first_error_line is None:
                first_error_line = node.start_point.row + 1
        node_id = columns.add(
            seen,
            view,
            uri,
            kind,
            _cst_span(node),
            parents[-1] if parents else None,
            len(parents),
            name,
        )
        if cursor.goto_first_child():
            parents.append(node_id)
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                break
            parents.pop()
        else:
            continue
        break
    if errors or missing:
        detail = f"{errors} ERROR, {missing} MISSING nodes; first at line {first_error_line}"
        return Diagnostic(uri, "syntax_error", detail)
    return None


def _cst_kind_and_name(node: Node, data: bytes) -> tuple[str, str | None]:
    """Return the row's kind and name: definitions are named, MISSING names its token,
    anonymous tokens are quoted."""
    if node.is_missing:
        return "MISSING", node.type
    if not node.is_named:
        return f'"{node.type}"', None
    kind = node.type
    if kind in CST_DEFINITION_KINDS:
        name_node = node.child_by_field_name("name")
        if name_node is not None:
            return kind, data[name_node.start_byte : name_node.end_byte].decode("utf-8", "replace")
    return kind, None


def _cst_span(node: Node) -> tuple[int, int, int, int]:
    """Return start/end byte and 1-based inclusive start/end line of a tree-sitter node."""
    start, end = node.start_byte, node.end_byte
    end_row, end_column = node.end_point
    # An end at column 0 is the newline ending the previous line: that is the last line.
    end_line = end_row if end_column == 0 and end > start else end_row + 1
    return start, end, node.start_point.row + 1, end_line


# -- node_to_chunk ----------------------------------------------------------------------

# A node maps to every chunk of its file that its byte range overlaps: a node inside one
# chunk maps once, a class split over several chunks (and the module root) maps to each
# part. A zero-width node (MISSING token, empty file) is widened by one byte each way so
# it maps to the chunk(s) at its position.
_NODE_TO_CHUNK_SQL = """
SELECT c.id AS chunk_id, n.node_id AS node_id
FROM nodes AS n
JOIN chunks AS c
  ON n.uri = c.uri
 AND least(n.start_byte, n.end_byte - 1) < c.end_byte
 AND greatest(n.end_byte, n.start_byte + 1) > c.start_byte
ORDER BY chunk_id, node_id
"""
_NODE_TO_CHUNK_MEMORY = "1GB"


def node_to_chunk_table(nodes: pa.Table, chunks: pa.Table) -> pa.Table:
    """Return ``NODE_TO_CHUNK`` rows: each node against every chunk its byte range overlaps.

    ``nodes`` needs ``node_id, uri, start_byte, end_byte``; ``chunks`` needs ``id, uri,
    start_byte, end_byte``. Rows are sorted by (chunk_id, node_id). Nodes in no chunk
    (bytes no chunk covers) have no row. Raises ``KeyError`` when a column is missing.
    """
    node_columns = nodes.select(["node_id", "uri", "start_byte", "end_byte"])
    chunk_columns = chunks.select(["id", "uri", "start_byte", "end_byte"])
    with duckdb.connect() as con:
        con.register("nodes", node_columns)
        con.register("chunks", chunk_columns)
        result = con.sql(_NODE_TO_CHUNK_SQL).to_arrow_table()
    return result.cast(NODE_TO_CHUNK)


def merge_node_to_chunk(kept: pa.Table, new: pa.Table) -> pa.Table:
    """Return the ``NODE_TO_CHUNK`` rows of ``kept`` and ``new``, both sorted by
    (chunk_id, node_id), as one table in that order (one chunk of rows).

    The few new rows are placed by binary search among the kept ones, so the merge costs
    a copy of the rows, not a sort of them.
    """
    kept, new = kept.cast(NODE_TO_CHUNK), new.cast(NODE_TO_CHUNK)
    kept_chunks = kept.column("chunk_id").to_numpy()
    kept_nodes = kept.column("node_id").to_numpy()
    new_chunks = new.column("chunk_id").to_numpy()
    new_nodes = new.column("node_id").to_numpy()
    places = np.searchsorted(kept_chunks, new_chunks, "left")
    ends = np.searchsorted(kept_chunks, new_chunks, "right")
    # A chunk id on both sides (its rows kept and new): order by node id among its rows.
    for row in np.flatnonzero(ends > places):
        start, stop = places[row], ends[row]
        places[row] = start + np.searchsorted(kept_nodes[start:stop], new_nodes[row], "left")
    size = kept.num_rows + new.num_rows
    is_new = np.zeros(size, dtype=bool)
    is_new[places + np.arange(new.num_rows)] = True
    order = np.empty(size, dtype=np.int64)
    order[is_new] = kept.num_rows + np.arange(new.num_rows)
    order[~is_new] = np.arange(kept.num_rows)
    return pa.concat_tables([kept, new]).take(order).combine_chunks()


def write_node_to_chunk(node_files: list[Path], chunks: pa.Table, stream: ParquetStream) -> None:
    """Write the rows of ``node_to_chunk_table`` for the nodes of the ``ast_nodes`` /
    ``cst_nodes`` Parquet files ``node_files`` to ``stream``, batch by batch.

    DuckDB reads the node files itself and spills its sort to disk beyond
    ``_NODE_TO_CHUNK_MEMORY``, so the nodes are never in this process's memory at once.
    """
    chunk_columns = chunks.select(["id", "uri", "start_byte", "end_byte"])
    with tempfile.TemporaryDirectory(prefix="node-to-chunk-") as spill, duckdb.connect() as con:
        con.execute("SET memory_limit = $limit", {"limit": _NODE_TO_CHUNK_MEMORY})
        con.execute("SET temp_directory = $dir", {"dir": spill})
        files = [str(path) for path in node_files]
        con.read_parquet(files).select("node_id, uri, start_byte, end_byte").create_view("nodes")
        con.register("chunks", chunk_columns)
        reader = con.sql(_NODE_TO_CHUNK_SQL).to_arrow_reader(BATCH_ROWS)
        for batch in reader:
            stream.write(batch)
