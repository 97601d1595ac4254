"""The data contract (SPEC §5): every Arrow schema, declared once.

Writers, readers, tests and the catalog all use these. Line conventions:

* ``chunks``, ``ast_nodes``, ``cst_nodes``, ``modules`` and everything shown to a
  user: lines are **1-based, inclusive**.
* ``scip_occurrences``: lines and characters keep SCIP's own convention,
  **0-based, end exclusive** (character offsets converted to Unicode code points
  of the line), so rows compare one-to-one with the SCIP index. The enclosing
  range columns follow the same convention.
* Byte offsets (``start_byte``/``end_byte``) are 0-based, end exclusive, into the
  file's UTF-8 bytes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from codeintel_assets.core.checksums import TableDigest, atomic_path, digests_checksum

# One row per selected file of the work tree.
REPO_MANIFEST = pa.schema(
    [
        ("uri", pa.string()),  # repository-relative POSIX path
        ("lang", pa.string()),  # language name (python, javascript, typescript, markdown, text...)
        ("size_bytes", pa.int64()),
        ("xxh64", pa.string()),  # xxh64 hex of the file's bytes
        ("git_blob", pa.string()),  # git blob sha when the file is tracked, else null
        ("line_count", pa.int32()),
    ]
)

# Files left out of the manifest and why (binary, oversized, symlink_outside...).
MANIFEST_SKIPS = pa.schema(
    [
        ("uri", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
    ]
)


def chunk_schema(dim: int) -> pa.Schema:
    """Return the chunks schema for embeddings of ``dim`` dimensions."""
    return pa.schema(
        [
            ("id", pa.int64()),  # signed xxh64 of (repo, uri, start_byte, end_byte); never -1
            ("uri", pa.string()),
            ("start_line", pa.int32()),  # 1-based inclusive
            ("end_line", pa.int32()),  # 1-based inclusive
            ("start_byte", pa.int64()),
            ("end_byte", pa.int64()),  # exclusive
            ("preview", pa.string()),  # first 240 characters of content
            ("content", pa.string()),
            ("lang", pa.string()),
            ("content_hash", pa.string()),  # xxh64 hex of content
            ("symbols", pa.list_(pa.string())),  # SCIP symbols defined/referenced in range
            ("kind", pa.string()),  # syntax of the chunk: function, class, module, window...
            ("name", pa.string()),  # qualified name of the enclosing definition, or null
            ("token_count", pa.int32()),  # tokens of the embedded text
            ("embedding", pa.list_(pa.float32(), dim)),  # L2-normalized
        ]
    )


NODE_TO_CHUNK = pa.schema([("chunk_id", pa.int64()), ("node_id", pa.int64())])

FAISS_IDMAP = pa.schema(
    [
        ("faiss_row", pa.int64()),  # position in the index
        ("faiss_id", pa.int64()),  # external id = chunk id
        ("index_name", pa.string()),
        ("build_version", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
    ]
)

SCIP_OCCURRENCES = pa.schema(
    [
        ("symbol", pa.string()),
        ("uri", pa.string()),
        ("role", pa.string()),  # 'def' | 'ref'
        ("roles", pa.int32()),  # SCIP SymbolRole bit set
        ("start_line", pa.int32()),  # 0-based (SCIP)
        ("start_char", pa.int32()),
        ("end_line", pa.int32()),
        ("end_char", pa.int32()),  # exclusive
        ("enclosing_start_line", pa.int32()),  # 0-based, null when absent
        ("enclosing_end_line", pa.int32()),
    ]
)

SCIP_SYMBOLS = pa.schema(
    [
        ("symbol", pa.string()),
        ("kind", pa.string()),  # SCIP Kind name; inferred from the descriptor when unset
        ("display_name", pa.string()),
        ("documentation", pa.string()),
        ("signature", pa.string()),
        ("enclosing_symbol", pa.string()),
        (
            "relationships",
            pa.list_(
                pa.struct(
                    [
                        ("symbol", pa.string()),
                        ("is_reference", pa.bool_()),
                        ("is_implementation", pa.bool_()),
                        ("is_type_definition", pa.bool_()),
                        ("is_definition", pa.bool_()),
                    ]
                )
            ),
        ),
        ("uri", pa.string()),  # defining document; null for external symbols
    ]
)

SYNTAX_NODES = pa.schema(
    [
        ("node_id", pa.int64()),  # signed xxh64 of (repo, uri, kind, start_byte, end_byte)
        ("uri", pa.string()),
        ("kind", pa.string()),
        ("start_byte", pa.int64()),
        ("end_byte", pa.int64()),
        ("start_line", pa.int32()),  # 1-based inclusive
        ("end_line", pa.int32()),
        ("parent_id", pa.int64()),  # null for the root
        ("depth", pa.int32()),
        ("name", pa.string()),  # for definitions
        ("text_hash", pa.string()),  # xxh64 of the node's text
    ]
)
AST_NODES = SYNTAX_NODES
CST_NODES = SYNTAX_NODES

# The definition channel's rows (core/definitions.py), made from the units table when
# an index is opened: each named definition unit and its key.
DEFINITIONS = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),  # name's identifier parts, joined
        pa.field("name", pa.string(), nullable=False),  # the defined (short) name
        pa.field("kind", pa.string()),  # unit kind: function, method, class...
        pa.field("uri", pa.string(), nullable=False),
        pa.field("start_line", pa.int32(), nullable=False),
        pa.field("unit_id", pa.int64(), nullable=False),
    ]
)

# units/units.parquet: what search ranks and returns (core/units.py): every definition
# of the syntax tree, with its decorators, and one module block per run of top-level code
# outside definitions; files without a syntax tree have one unit per chunk.
UNITS = pa.schema(
    [
        pa.field("unit_id", pa.int64(), nullable=False),  # signed xxh64 of (repo, uri, bytes, kind)
        pa.field("uri", pa.string(), nullable=False),
        pa.field("start_line", pa.int32(), nullable=False),  # 1-based inclusive
        pa.field("end_line", pa.int32(), nullable=False),
        pa.field("start_byte", pa.int64(), nullable=False),
        pa.field("end_byte", pa.int64(), nullable=False),  # exclusive
        pa.field("kind", pa.string(), nullable=False),  # function, method, class, module...
        pa.field("name", pa.string()),  # the defined (short) name; the file name for a block
        pa.field("qualified_name", pa.string()),  # enclosing definitions' names, dotted
        pa.field("parent_unit_id", pa.int64()),  # the definition around it, null at top level
        pa.field("lang", pa.string()),
        pa.field("first_chunk_id", pa.int64(), nullable=False),  # the chunk holding start_line
    ]
)

# units/chunk_units.parquet: each chunk's innermost unit (exactly one per chunk).
CHUNK_UNITS = pa.schema(
    [
        pa.field("chunk_id", pa.int64(), nullable=False),
        pa.field("unit_id", pa.int64(), nullable=False),
    ]
)

MODULES = pa.schema(
    [
        ("module_id", pa.string()),  # dotted name (python) or directory path
        ("uri_prefix", pa.string()),
        ("language", pa.string()),
        ("size_loc", pa.int64()),
        ("cyclomatic", pa.int64()),
        ("doc_cov", pa.float64()),
        ("in_deg", pa.int64()),
        ("out_deg", pa.int64()),
        ("centrality", pa.float64()),
        ("file_count", pa.int64()),
        ("def_count", pa.int64()),
        ("chunk_count", pa.int64()),
    ]
)

# modules/module_files.parquet: what the modules table is made from, per manifest file
# (core/modules.py); the AST metrics are null for a file that is not a .py or does not parse.
MODULE_FILES = pa.schema(
    [
        ("uri", pa.string()),
        ("lang", pa.string()),
        ("size_loc", pa.int64()),  # non-blank lines
        ("parsed", pa.bool_()),  # a .py file whose AST metrics follow
        ("cyclomatic", pa.int64()),
        ("public_defs", pa.int64()),  # the module itself included
        ("documented_defs", pa.int64()),
        ("def_count", pa.int64()),
        (
            "imports",  # every import statement: relative level, module, imported names
            pa.list_(
                pa.struct(
                    [
                        ("level", pa.int32()),
                        ("module", pa.string()),
                        ("names", pa.list_(pa.string())),
                    ]
                )
            ),
        ),
    ]
)

# ledgers/<stage>.parquet: per file a per-file stage covers, the signature of what its rows
# were made from and its diagnostic (core/reuse.py); the stage's basis is in the metadata.
FILE_LEDGER = pa.schema(
    [
        ("uri", pa.string()),
        ("signature", pa.string()),  # '' when the rows may match no manifest: never reused
        ("reason", pa.string()),  # the file's diagnostic, null when none
        ("detail", pa.string()),
    ]
)

SYMBOL_EDGES = pa.schema(
    [
        ("src_symbol", pa.string()),
        ("dst_symbol", pa.string()),
        ("edge", pa.string()),  # call | reference | import | inherits | implements | type_def
        ("weight", pa.int64()),
        ("src_uri", pa.string()),
        ("dst_uri", pa.string()),  # null for external symbols
    ]
)

# Call sites and import lines of each Python file (``core.symbols.syntax_site_rows``): the
# per-file part of ``symbol_edges``, kept between builds beside its ledger (never published).
SYNTAX_SITES = pa.schema(
    [
        ("uri", pa.string()),
        ("site", pa.string()),  # call (a callee name's position) | import (a line of one)
        ("line", pa.int32()),  # 0-based
        ("col", pa.int32()),  # code-point column of a call's callee name; null for import
    ]
)

# The reference, call and import edges of each file (``core.symbols.file_edges_table``):
# made from the file's own occurrences and sites alone, so kept between builds beside their
# ledger while the file's SCIP document and bytes are unchanged (never published).
FILE_EDGES = pa.schema(
    [
        ("uri", pa.string()),  # the file the edges were counted in: their src_uri
        ("src_symbol", pa.string()),
        ("dst_symbol", pa.string()),
        ("edge", pa.string()),  # call | reference | import
        ("weight", pa.int64()),
    ]
)

EVAL_POOL = pa.schema(
    [
        ("query_id", pa.string()),
        ("source", pa.string()),  # faiss | oracle | bm25 | hybrid | splade
        ("rank", pa.int32()),  # 1-based
        ("chunk_id", pa.int64()),  # bm25/hybrid: the unit's best chunk
        ("score", pa.float64()),
        ("unit_id", pa.int64()),  # the unit ranked (null in a pool read from a TSV)
    ]
)


def parquet_options(schema: pa.Schema) -> dict[str, Any]:
    """Return how a table of ``schema`` is written: dictionary encoding and zstd, except
    vector columns (fixed-size lists of floats), which are stored plain, and the syntax node
    tables, which are LZ4 with dictionaries only for their repetitive strings.

    Embeddings hardly compress (213 MiB with zstd, 231 MiB plain, for 157k MiniLM-sized
    vectors) but every retrieval stage reads them: plain they read ~3x faster (0.32 s
    against 1.01 s) and write faster too. The node tables are the largest a build rewrites
    whole after an edit (7.5M CST rows at 858k lines); decoding dictionaries of ids, offsets
    and hashes is most of reading them. LZ4 with dictionaries only where values repeat reads
    that table in 0.75 s of CPU instead of 3.26 s and writes it in 1.28 s instead of 2.52 s,
    for 200 MB instead of 149 MB.
    """
    if schema.equals(SYNTAX_NODES):
        return {"compression": "lz4", "use_dictionary": list(_NODE_DICTIONARY_COLUMNS)}
    vectors = {
        f.name
        for f in schema
        if pa.types.is_fixed_size_list(f.type) and pa.types.is_floating(f.type.value_type)
    }
    if not vectors:
        return {"compression": "zstd", "use_dictionary": True}
    return {
        "compression": {f.name: "none" if f.name in vectors else "zstd" for f in schema},
        "use_dictionary": [f.name for f in schema if f.name not in vectors],
    }


# The node tables' columns with few distinct values, and parent_id: stored plain, its rows
# read back and reused made a table whose digest differed from a clean build's although the
# rows were equal (``test_incremental``'s deletes and renames). ``TableDigest`` hashes the
# IPC bytes, validity bitmaps with them, and those of a column with nulls depend on how its
# pages were decoded.
_NODE_DICTIONARY_COLUMNS = ("uri", "kind", "name", "parent_id")


def write_parquet(table: pa.Table, target: Path, schema: pa.Schema | None = None) -> None:
    """Write ``table`` to ``target`` atomically (``parquet_options``).

    Raises ``ValueError`` when ``table`` cannot be cast to ``schema``.
    """
    if schema is not None:
        table = table.select(schema.names).cast(schema)
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp, **parquet_options(table.schema))


def write_by_key(values: Mapping[str, object], target: Path, schema: pa.Schema) -> None:
    """Write a cache of key -> value (the two columns of ``schema``) to ``target``, sorted
    by key, atomically (``write_parquet``), making its folder."""
    keys = sorted(values)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_parquet(pa.table([keys, [values[k] for k in keys]], schema=schema), target)


# pyarrow's own row group length: a table streamed in row groups of this many rows is the
# very file ``write_parquet`` writes from the whole table held at once.
ROW_GROUP_ROWS = 1024 * 1024


class ParquetStream:
    """One Parquet table written batch by batch: rows are held only until a row group is
    full, so a stage never holds a large table whole. Row groups have ``row_group_rows``
    rows whatever the batches given, so the file and its ``digest`` (the ``TableDigest``
    of the row groups) depend on the rows alone; ``checksum`` is ``table_checksum``'s
    for a table of one row group. Made by ``parquet_stream``.
    """

    def __init__(self, writer: pq.ParquetWriter, schema: pa.Schema, row_group_rows: int) -> None:
        self._writer = writer
        self._schema = schema
        self._row_group_rows = row_group_rows
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._digest = TableDigest(schema)
        self.rows = 0  # rows written so far
        self.digest = ""  # set when the stream ends

    def write(self, rows: pa.Table | pa.RecordBatch) -> None:
        """Append ``rows``; raises ``ValueError`` when they cannot be cast to the schema."""
        table = pa.Table.from_batches([rows]) if isinstance(rows, pa.RecordBatch) else rows
        table = table.select(self._schema.names).cast(self._schema)
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self.rows += table.num_rows
        while self._pending_rows >= self._row_group_rows:
            self._write_row_group(self._row_group_rows)

    def _write_row_group(self, size: int) -> None:
        pending = pa.concat_tables(self._pending or [self._schema.empty_table()])
        # One chunk per row group: the bytes written depend on the rows, not on the batches.
        group = pending.slice(0, size).combine_chunks()
        self._writer.write_table(group)
        self._digest.update(group)
        rest = pending.slice(size)
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows = rest.num_rows

    def _finish(self) -> None:
        if self._pending_rows or self.rows == 0:
            self._write_row_group(self._pending_rows)
        self.digest = self._digest.hexdigest()

    @property
    def checksum(self) -> str:
        """The table's checksum (``digests_checksum`` of its digest), once the stream ended."""
        return digests_checksum(self.digest)


@contextlib.contextmanager
def parquet_stream(
    target: Path, schema: pa.Schema, row_group_rows: int = ROW_GROUP_ROWS
) -> Iterator[ParquetStream]:
    """Yield a ``ParquetStream`` writing ``target`` atomically (``parquet_options``, as
    ``write_parquet``); the file replaces ``target`` when the block ends without error,
    and the stream's ``rows``, ``digest`` and ``checksum`` are then final."""
    with atomic_path(target) as tmp:
        writer = pq.ParquetWriter(tmp, schema, **parquet_options(schema))
        stream = ParquetStream(writer, schema, row_group_rows)
        try:
            yield stream
            stream._finish()
        finally:
            writer.close()


def file_batches(path: Path, columns: list[str], rows: int = 65_536) -> Iterator[pa.Table]:
    """Yield a Parquet table written file by file (the rows of one ``uri`` together) in
    tables of about ``rows`` rows (more when one file has more), each ending where a
    file ends: no file's rows are split between two tables. ``columns`` must name ``uri``.
    """
    carry: pa.Table | None = None
    for batch in pq.ParquetFile(path).iter_batches(batch_size=rows, columns=columns):
        table = pa.Table.from_batches([batch])
        if carry is not None:
            table = pa.concat_tables([carry, table])
        uris = table.column("uri")
        # The last file may go on in the next batch: hold its rows back.
        last_file = pc.index(uris, uris[-1]).as_py()
        if last_file > 0:
            yield table.slice(0, last_file)
        carry = table.slice(last_file)
    if carry is not None and carry.num_rows:
        yield carry


def empty_table(schema: pa.Schema) -> pa.Table:
    """Return a table with ``schema`` and no rows."""
    return schema.empty_table()
