"""Build the DuckDB catalog of one artifact layout: source views, derived views, manifest.

Parquet stays canonical; the catalog holds views over the layout's files (by absolute
path, so a published version's catalog points at that version's files and no view
depends on the reader's working directory), optional materialized tables guarded by
content checksums, and a manifest (each view's DDL, each source's xxh64).

``build_catalog`` writes a temporary DuckDB file beside the target and renames it into
place, so a reader opening the catalog read-only sees the previous complete catalog or
the new complete one, never a half-built one.
"""

from __future__ import annotations

import contextlib
import glob as globlib
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from codeintel_assets.core import metrics, schemas
from codeintel_assets.core.checksums import xxh64_file, xxh64_parts
from codeintel_assets.core.errors import BadInputError
from codeintel_assets.core.layout import ArtifactLayout

MANIFEST_TABLE = "catalog_manifest"
SOURCES_TABLE = "catalog_sources"
CHUNKS_MAT = "chunks_mat"
CHUNK_PAGES = "chunk_pages"
FAISS_IDMAP_MAT = "faiss_idmap_mat"


@dataclass(frozen=True)
class SourceSpec:
    """One Parquet source registered as a view: where it lives and what it looks like."""

    name: str
    location: Callable[[ArtifactLayout], str]
    schema: pa.Schema
    # True: an absent file is an empty typed view (the artifact may not exist yet);
    # False: an absent file is a view that raises a clear error when queried.
    empty_when_missing: bool = False


# The chunks' embedding dimension is unknown when the files are absent; the error view
# only needs the column to exist, so any dimension works.
_MISSING_CHUNKS_DIM = 1

SOURCE_SPECS: tuple[SourceSpec, ...] = (
    SourceSpec("chunks", lambda lay: lay.chunks_glob, schemas.chunk_schema(_MISSING_CHUNKS_DIM)),
    SourceSpec("faiss_idmap", lambda lay: str(lay.faiss_idmap), schemas.FAISS_IDMAP),
    SourceSpec("modules", lambda lay: str(lay.modules_parquet), schemas.MODULES),
    SourceSpec("symbol_edges", lambda lay: str(lay.symbol_edges), schemas.SYMBOL_EDGES),
    SourceSpec("scip_occurrences", lambda lay: str(lay.scip_occurrences), schemas.SCIP_OCCURRENCES),
    SourceSpec("scip_symbols", lambda lay: str(lay.scip_symbols), schemas.SCIP_SYMBOLS),
    SourceSpec("ast_nodes", lambda lay: str(lay.ast_nodes), schemas.AST_NODES),
    SourceSpec("cst_nodes", lambda lay: str(lay.cst_nodes), schemas.CST_NODES),
    SourceSpec("node_to_chunk", lambda lay: str(lay.node_to_chunk), schemas.NODE_TO_CHUNK),
    SourceSpec("repo_manifest", lambda lay: str(lay.repo_manifest), schemas.REPO_MANIFEST),
    SourceSpec(
        "last_eval_pool", lambda lay: str(lay.eval_pool), schemas.EVAL_POOL, empty_when_missing=True
    ),
    SourceSpec("units", lambda lay: str(lay.units), schemas.UNITS, empty_when_missing=True),
    SourceSpec(
        "chunk_units",
        lambda lay: str(lay.chunk_units),
        schemas.CHUNK_UNITS,
        empty_when_missing=True,
    ),
)
SOURCE_NAMES = frozenset(spec.name for spec in SOURCE_SPECS)
_SPECS_BY_NAME = {spec.name: spec for spec in SOURCE_SPECS}


def duckdb_type(arrow_type: pa.DataType) -> str:
    """Return the DuckDB SQL type of an Arrow type used in ``schemas``.

    Raises ``TypeError`` for a type the contract does not use.
    """
    simple = {
        pa.int64(): "BIGINT",
        pa.int32(): "INTEGER",
        pa.string(): "VARCHAR",
        pa.float64(): "DOUBLE",
        pa.float32(): "FLOAT",
        pa.bool_(): "BOOLEAN",
    }
    if arrow_type in simple:
        return simple[arrow_type]
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMPTZ" if arrow_type.tz else "TIMESTAMP"
    if pa.types.is_fixed_size_list(arrow_type):
        return f"{duckdb_type(arrow_type.value_type)}[{arrow_type.list_size}]"
    if pa.types.is_list(arrow_type):
        return f"{duckdb_type(arrow_type.value_type)}[]"
    if pa.types.is_struct(arrow_type):
        members = ", ".join(
            f"{arrow_type.field(i).name} {duckdb_type(arrow_type.field(i).type)}"
            for i in range(arrow_type.num_fields)
        )
        return f"STRUCT({members})"
    raise TypeError(f"no DuckDB type for Arrow type {arrow_type}")


# Columns of chunks_mat stored uncompressed: hydration fetches ~200 random rows through
# the id index, and fetching one row of a dictionary-compressed segment decodes the
# segment's dictionary (tens of thousands of uris, names, hashes or symbols), which
# made each of these columns cost 2-12 ms, and a compressed symbols list 200+ ms, per
# 200 ids (bench_catalog.py). Ints stay bit-packed (a cheap fetch). Content, the bulk of
# the table, is stored uncompressed too: compressing it was most of the publish's
# materialization (the standard library's 157k chunks, measured 2026-12-03: inserted in
# 2.56 s with it, 0.73 s without; the file 162 MiB against 175 MiB) and a fetch of it
# only gets cheaper.
_UNCOMPRESSED_CHUNK_COLUMNS = frozenset(
    {"uri", "preview", "content_hash", "name", "symbols", "content"}
)


# ``hydration_row``: the fields a hydration returns by default, in this order, as one
# JSON array per chunk, made by the same INSERT from the same row as the columns (so it
# cannot disagree with them). A cold first query reads one 16 KB block per hydrated
# chunk for it instead of one per column: 10 columns of 200 random rows touch most
# blocks of each column (bench_catalog.py).
HYDRATION_ROW = "hydration_row"
HYDRATION_ROW_FIELDS = (
    "uri",
    "start_line",
    "end_line",
    "start_byte",
    "end_byte",
    "lang",
    "preview",
    "content_hash",
    "kind",
    "name",
)
# Bumped when chunks_mat's layout changes, so the checksum guard rebuilds an old table.
_CHUNKS_MAT_LAYOUT = "hydration_row-v1"
# ``chunk_pages``: the hydration rows again, grouped in pages by the top bits of the id
# (``page = id >> page_shift``; chunk ids are xxh64 hashes, so pages fill evenly), with
# ~16-32 chunks a page: each page is one UTF-8 BLOB of ``<id>\t<hydration_row>`` lines
# in id order, made of ``chunks_mat``'s own ``hydration_row`` strings (a BLOB
# reaches Python as bytes, without the decoding of a whole page a string costs). A cold
# hydration of 200 ids reads the small index of the pages (2^k keys, not one per chunk)
# and one string per hit; a page is past DuckDB's 4 KB inline-string limit, so the
# column's segments hold only pointers and a first query does not deserialize the
# metadata of thousands of segments, which bounded the cold read of ``chunks_mat`` at 1M
# chunks (bench_catalog.py). JSON escapes every control character, so neither a tab
# nor a newline of a row's values can break a line.
# The shift gives 2^k pages, k = floor(log2(chunks / 16)) within [1, 62]: 16-32 chunks a
# page (an SQL expression of the table's row count, no value from outside).
_PAGE_SHIFT_SQL = (
    "64 - CAST(greatest(1, least(62, floor(log2(greatest(count(*), 32) / 16)))) AS INTEGER)"
)
_CHUNK_PAGES_LAYOUT = "chunk_pages-v1"
# The catalog file's block size: a point fetch reads whole blocks, and 16 KB (DuckDB's
# smallest) instead of 256 KB cuts what a cold hydration reads ~2.5x (bench_catalog.py).
CATALOG_BLOCK_SIZE = 16384


def _chunks_mat_columns() -> str:
    fields = [f for f in schemas.chunk_schema(_MISSING_CHUNKS_DIM) if f.name != "embedding"]
    return ", ".join(
        [
            f"{f.name} {duckdb_type(f.type)}"
            + (" USING COMPRESSION uncompressed" if f.name in _UNCOMPRESSED_CHUNK_COLUMNS else "")
            for f in fields
        ]
        + [f"{HYDRATION_ROW} VARCHAR USING COMPRESSION uncompressed"]
    )


@dataclass(frozen=True)
class MaterializedSpec:
    """One materialized table: the source it copies, its SELECT, indexes, declared columns.

    ``columns`` (a column list with storage options) declares the table before the
    SELECT fills it by name; None creates it from the SELECT's own types.
    """

    source: str
    select_sql: str
    indexed: tuple[str, ...]
    columns: str | None = None
    layout: str = ""  # part of the checksum guard: a new layout rebuilds the table

    def guard(self, source_checksum: str) -> str:
        """Return the checksum recorded in the table's meta: the source's, and the layout."""
        return xxh64_parts([source_checksum, self.layout]) if self.layout else source_checksum


# Fixed, so every identifier interpolated into DDL comes from this table, never from a
# caller.
_MATERIALIZED: dict[str, MaterializedSpec] = {
    CHUNKS_MAT: MaterializedSpec(
        "chunks",
        "SELECT * EXCLUDE (embedding), "
        f"json_array({', '.join(HYDRATION_ROW_FIELDS)}) AS {HYDRATION_ROW} "
        "FROM v_chunks ORDER BY id",
        ("id",),
        _chunks_mat_columns(),
        _CHUNKS_MAT_LAYOUT,
    ),
    # From chunks_mat, made just before it from the same rows (its guard is the same): its
    # hydration rows are already made, and the chunk file is not read again.
    CHUNK_PAGES: MaterializedSpec(
        "chunks",
        f"WITH shift AS (SELECT {_PAGE_SHIFT_SQL} AS page_shift FROM {CHUNKS_MAT}) "
        "SELECT c.id >> s.page_shift AS page, s.page_shift AS page_shift, "
        f"encode(string_agg(c.id::VARCHAR || chr(9) || c.{HYDRATION_ROW}, chr(10) "
        "ORDER BY c.id)) AS rows "
        f"FROM {CHUNKS_MAT} AS c, shift AS s GROUP BY page, s.page_shift ORDER BY page",
        ("page",),
        "page BIGINT, page_shift INTEGER, rows BLOB USING COMPRESSION uncompressed",
        _CHUNK_PAGES_LAYOUT,
    ),
    FAISS_IDMAP_MAT: MaterializedSpec(
        "faiss_idmap",
        "SELECT faiss_row, faiss_id, faiss_id AS chunk_id, index_name, build_version, ts "
        "FROM faiss_idmap",
        ("chunk_id", "faiss_id"),
    ),
}
MATERIALIZED_TABLES = frozenset(_MATERIALIZED)
_MANIFEST_ROWS = (
    "SELECT name, kind, sources, source_checksum, row_count, error, ddl "
    "FROM " + MANIFEST_TABLE + " ORDER BY position"
)
_MANIFEST_BUILT_AT = "SELECT max(built_at) FROM " + MANIFEST_TABLE


def quote_identifier(name: str) -> str:
    """Return ``name`` as a double-quoted SQL identifier (quotes inside doubled).

    Only for names already checked against a fixed set; values always travel as bound
    parameters, never through here.
    """
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class MaterializedSql:
    """The statements of one materialized table, made once from the fixed table above."""

    drop: str
    drop_meta: str
    create: tuple[str, ...]  # the last one is followed by the table's SELECT
    indexes: tuple[str, ...]
    count: str
    create_meta: str
    insert_meta: str
    read_checksum: str


def _materialized_sql(name: str, spec: MaterializedSpec) -> MaterializedSql:
    table, meta = quote_identifier(name), quote_identifier(name + "_meta")
    create = (
        ("CREATE TABLE " + table + " AS ",)
        if spec.columns is None
        else (
            "CREATE TABLE " + table + " (" + spec.columns + ")",
            "INSERT INTO " + table + " BY NAME ",
        )
    )
    return MaterializedSql(
        drop="DROP TABLE IF EXISTS " + table,
        drop_meta="DROP TABLE IF EXISTS " + meta,
        create=create,
        indexes=tuple(
            "CREATE INDEX "
            + quote_identifier(f"idx_{name}_{column}")
            + " ON "
            + table
            + " ("
            + quote_identifier(column)
            + ")"
            for column in spec.indexed
        ),
        count="SELECT count(*) FROM " + table,
        create_meta="CREATE OR REPLACE TABLE "
        + meta
        + " (checksum VARCHAR, row_count BIGINT, updated_at TIMESTAMPTZ)",
        insert_meta="INSERT INTO " + meta + " VALUES (?, ?, ?)",
        read_checksum="SELECT checksum FROM " + meta,
    )


_MATERIALIZED_SQL = {name: _materialized_sql(name, spec) for name, spec in _MATERIALIZED.items()}


@dataclass(frozen=True)
class ViewDefinition:
    """One derived view (or table macro) of ``views.sql``: its name, sources, comment and DDL."""

    name: str
    sources: tuple[str, ...]
    comment: str
    ddl: str


@dataclass(frozen=True)
class SourceStatus:
    """A source file set: absolute path (or glob), presence, file count, bytes, xxh64."""

    name: str
    path: str
    present: bool
    files: int
    bytes: int
    checksum: str | None


@dataclass(frozen=True)
class ViewStatus:
    """A view of the catalog: kind (source|view), row count at build time, or the error."""

    name: str
    kind: str
    present: bool
    row_count: int | None
    sources: tuple[str, ...]
    checksum: str | None
    error: str | None
    ddl: str = ""


@dataclass(frozen=True)
class MaterializedStatus:
    """A materialized table and its guard: source checksum, rows, last refresh."""

    name: str
    checksum: str
    row_count: int
    updated_at: str


@dataclass(frozen=True)
class CatalogStatus:
    """What a catalog holds: views with row counts, source checksums, materialized tables."""

    catalog_path: str
    built_at: str | None
    views: tuple[ViewStatus, ...]
    sources: tuple[SourceStatus, ...]
    materialized: tuple[MaterializedStatus, ...] = field(default_factory=tuple)

    @property
    def missing_sources(self) -> list[str]:
        """Names of sources whose files were absent at build time."""
        return [s.name for s in self.sources if not s.present]

    def view(self, name: str) -> ViewStatus:
        """Return the status of one view. Raises ``KeyError`` when there is none."""
        for status in self.views:
            if status.name == name:
                return status
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (``indexctl status --format json``)."""
        return asdict(self)

    def to_markdown(self) -> str:
        """Return the views as a markdown table (Dagster metadata, ``indexctl status``)."""
        lines = [
            "| view | kind | rows | sources | status |",
            "|---|---|---:|---|---|",
        ]
        for view in self.views:
            rows = "" if view.row_count is None else str(view.row_count)
            state = "ok" if view.error is None else _one_line(view.error)
            sources = ", ".join(view.sources)
            lines.append(f"| `{view.name}` | {view.kind} | {rows} | {sources} | {state} |")
        if self.materialized:
            lines += ["", "| materialized | rows | checksum | updated |", "|---|---:|---|---|"]
            lines += [
                f"| `{m.name}` | {m.row_count} | `{m.checksum}` | {m.updated_at} |"
                for m in self.materialized
            ]
        return "\n".join(lines)


def load_view_definitions() -> tuple[ViewDefinition, ...]:
    """Return the derived views of ``views.sql`` in file (= creation) order."""
    return _definitions("view")


def load_macro_definitions() -> tuple[ViewDefinition, ...]:
    """Return the table macros of ``views.sql`` (``uri_modules``), created before the views."""
    return _definitions("macro")


def _definitions(kind: str) -> tuple[ViewDefinition, ...]:
    """Return the ``-- <kind>: <name>`` blocks of ``views.sql`` in file order."""
    text = resources.files("codeintel_assets.core.catalog").joinpath("views.sql").read_text()
    blocks = re.split(r"^-- (view|macro): ", text, flags=re.MULTILINE)[1:]
    definitions = []
    for block_kind, block in zip(blocks[::2], blocks[1::2], strict=True):
        if block_kind != kind:
            continue
        header, _, rest = block.partition("\n")
        sources_line, _, rest = rest.partition("\n")
        comment_line, _, ddl = rest.partition("\n")
        definitions.append(
            ViewDefinition(
                name=header.strip(),
                sources=tuple(
                    s.strip() for s in sources_line.removeprefix("-- sources:").split(",")
                ),
                comment=comment_line.removeprefix("--").strip(),
                ddl=ddl.strip(),
            )
        )
    return tuple(definitions)


VIEW_NAMES = frozenset(d.name for d in load_view_definitions()) | SOURCE_NAMES


def sql_string_literal(value: str) -> str:
    """Return ``value`` as a SQL string literal (single quotes doubled).

    Used only where DuckDB accepts no bound parameter (paths inside view DDL).
    Raises ``BadInputError`` on a NUL character.
    """
    if "\x00" in value:
        raise BadInputError(f"path {value!r}: contains a NUL character")
    return "'" + value.replace("'", "''") + "'"


def register_parquet(con: duckdb.DuckDBPyConnection, name: str, path_glob: str) -> str:
    """Create (or replace) the source view ``name`` over the Parquet files ``path_glob``.

    Returns the DDL executed. Raises ``BadInputError`` when ``name`` is not a known
    source view or ``path_glob`` is not absolute; DuckDB raises ``IOException`` when no
    file matches.
    """
    _check_source_name(name)
    _check_absolute(name, path_glob)
    ddl = (
        f"CREATE OR REPLACE VIEW {name} AS\n"
        f"SELECT * FROM read_parquet({sql_string_literal(path_glob)}, union_by_name = true)"
    )
    con.execute(ddl)
    return ddl


def ensure_views(
    con: duckdb.DuckDBPyConnection, layout: ArtifactLayout, materialize: bool = False
) -> list[ViewStatus]:
    """Create every source and derived view for ``layout`` (idempotent).

    A missing source becomes a typed view that raises an error naming the view and the
    path when queried (``last_eval_pool``: an empty typed view), so the other views keep
    working. With ``materialize`` the chunk table (without embeddings) and the id map are
    materialized when their source checksum changed; without it, materialized tables
    whose checksum no longer matches are dropped so no reader sees stale rows.
    Returns one status per view (row counts are filled by ``build_catalog``).
    """
    _check_root(layout)
    started = time.perf_counter()
    sources = {spec.name: source_status(spec, layout) for spec in SOURCE_SPECS}
    statuses: list[ViewStatus] = []
    for spec in SOURCE_SPECS:
        source = sources[spec.name]
        if source.present:
            ddl = register_parquet(con, spec.name, source.path)
            error = None
        else:
            ddl = _register_missing(con, spec, source.path)
            error = None if spec.empty_when_missing else _missing_message(spec.name, source.path)
        statuses.append(
            ViewStatus(spec.name, "source", True, None, (spec.name,), source.checksum, error, ddl)
        )
    for macro in load_macro_definitions():
        con.execute(macro.ddl)
    for definition in load_view_definitions():
        con.execute(definition.ddl)
        missing = [s for s in definition.sources if not _usable(sources[s], s)]
        error = (
            "; ".join(_missing_message(s, sources[s].path) for s in missing) if missing else None
        )
        checksum = _combined_checksum([sources[s] for s in definition.sources])
        statuses.append(
            ViewStatus(
                definition.name,
                "view",
                True,
                None,
                definition.sources,
                checksum,
                error,
                definition.ddl,
            )
        )
    _sync_materialized(con, sources, materialize)
    metrics.observe_view_bootstrap(time.perf_counter() - started)
    return statuses


def materialize_if_changed(
    con: duckdb.DuckDBPyConnection, name: str, select_sql: str, checksum: str
) -> bool:
    """Materialize ``select_sql`` as table ``name`` unless its meta already holds ``checksum``.

    ``name`` must be one of ``MATERIALIZED_TABLES``; the table gets its fixed indexes and
    ``<name>_meta`` records (checksum, row_count, updated_at). Returns True when the table
    was (re)built, False when the checksum was unchanged. Raises ``BadInputError`` on an
    unknown name.
    """
    sql = _materialized(name)
    if _materialized_checksum(con, name) == checksum:
        return False
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(sql.drop)
        for statement in sql.create[:-1]:
            con.execute(statement)
        # ``select_sql`` is the caller's query (a SELECT over catalog views), not a value.
        con.execute(sql.create[-1] + select_sql)
        for statement in sql.indexes:
            con.execute(statement)
        row_count = con.execute(sql.count).fetchone()[0]
        con.execute(sql.create_meta)
        con.execute(sql.insert_meta, [checksum, row_count, _now()])
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return True


def build_catalog(
    layout: ArtifactLayout,
    *,
    materialize: bool = False,
    counts_from: ArtifactLayout | None = None,
) -> CatalogStatus:
    """Build ``layout.catalog`` atomically and return its status.

    Starts from a copy of the existing catalog (so unchanged materialized tables are
    kept by their checksum guard), re-creates every view over this layout's files,
    counts rows, writes the manifest, then renames the file into place. Missing sources
    do not fail the build: they are reported in the status. ``counts_from``: a layout
    whose catalog's row counts are taken for the views it defines alike (its root left
    out) over sources of the same checksums, instead of counting again. Raises
    ``BadInputError`` when the layout root contains glob characters (paths are read as
    globs by DuckDB).
    """
    _check_root(layout)
    target = layout.catalog
    recorded = _recorded_counts(counts_from) if counts_from is not None else None
    # A catalog of another block size is not copied: the new one starts afresh in 16 KB.
    with _staged_catalog(target, copy_block_size=CATALOG_BLOCK_SIZE) as tmp:
        con = duckdb.connect(str(tmp), config={"default_block_size": str(CATALOG_BLOCK_SIZE)})
        try:
            statuses = ensure_views(con, layout, materialize=materialize)
            known = _counts_if_same_macros(con, recorded)
            root = str(layout.root.resolve())
            counted = [
                _taken_count(status, known, root) or _with_row_count(con, status)
                for status in statuses
            ]
            _write_manifest(con, layout, counted)
            con.execute("CHECKPOINT")
        finally:
            con.close()
    return catalog_status(target)


@dataclass(frozen=True)
class IdmapRefresh:
    """What a refresh of ``faiss_idmap_mat`` did: refreshed or unchanged, rows, the guard."""

    refreshed: bool
    rows: int
    checksum: str  # xxh64 of the id map file, recorded in faiss_idmap_mat_meta


def refresh_idmap_join(catalog_path: Path, layout: ArtifactLayout) -> bool:
    """Refresh ``faiss_idmap_mat`` from the layout's id map when its xxh64 changed.

    Returns whether it was refreshed (see ``refresh_idmap_file``).
    """
    return refresh_idmap_file(catalog_path, layout.faiss_idmap).refreshed


def refresh_idmap_file(catalog_path: Path, idmap: Path) -> IdmapRefresh:
    """Point the catalog's ``faiss_idmap`` view at ``idmap`` and refresh ``faiss_idmap_mat``
    when the file's xxh64 differs from the one its meta table records.

    Unchanged: nothing is written. Changed: an atomic rebuild (copy, refresh, rename) of
    the catalog. Raises ``BadInputError`` when the catalog or the id map file is missing,
    or the file is not an id map (``faiss_row, faiss_id, index_name, build_version, ts``).
    """
    if not catalog_path.exists():
        raise BadInputError(f"catalog {catalog_path}: not found (build the catalog first)")
    if not idmap.exists():
        raise BadInputError(f"faiss id map {idmap}: not found (export the id map first)")
    _check_idmap_file(idmap)
    checksum = xxh64_file(idmap)
    with contextlib.closing(connect_read_only(catalog_path)) as con:
        if _materialized_checksum(con, FAISS_IDMAP_MAT) == checksum:
            rows = con.execute(_MATERIALIZED_SQL[FAISS_IDMAP_MAT].count).fetchone()[0]
            return IdmapRefresh(False, int(rows), checksum)
    with _staged_catalog(catalog_path) as tmp:
        con = duckdb.connect(str(tmp))
        try:
            register_parquet(con, "faiss_idmap", str(idmap.resolve()))
            select_sql = _MATERIALIZED[FAISS_IDMAP_MAT].select_sql
            refreshed = materialize_if_changed(con, FAISS_IDMAP_MAT, select_sql, checksum)
            rows = con.execute(_MATERIALIZED_SQL[FAISS_IDMAP_MAT].count).fetchone()[0]
            con.execute("CHECKPOINT")
        finally:
            con.close()
    return IdmapRefresh(refreshed, int(rows), checksum)


def read_idmap_ids(idmap: Path) -> np.ndarray:
    """Return the ``faiss_id`` column of an id map file.

    Raises ``BadInputError`` when the file is missing, not Parquet or not an id map.
    """
    if not idmap.exists():
        raise BadInputError(f"faiss id map {idmap}: not found (export the id map first)")
    _check_idmap_file(idmap)
    return pq.read_table(idmap, columns=["faiss_id"]).column("faiss_id").to_numpy()


def _check_idmap_file(idmap: Path) -> None:
    try:
        names = set(pq.read_schema(idmap).names)
    except (OSError, pa.ArrowInvalid) as exc:
        raise BadInputError(f"faiss id map {idmap}: not a Parquet file ({exc})") from exc
    missing = [name for name in schemas.FAISS_IDMAP.names if name not in names]
    if missing:
        raise BadInputError(f"faiss id map {idmap}: missing column(s) {', '.join(missing)}")


def connect_read_only(catalog_path: Path) -> duckdb.DuckDBPyConnection:
    """Return a read-only connection to a catalog file.

    Raises ``BadInputError`` naming the file when it is missing, truncated or not DuckDB.
    """
    if not catalog_path.exists():
        raise BadInputError(f"catalog {catalog_path}: not found (build the catalog first)")
    try:
        con = duckdb.connect(str(catalog_path), read_only=True)
        try:
            # A truncated file opens; reading its catalog is what fails.
            con.execute("SELECT count(*) FROM duckdb_tables()").fetchone()
        except duckdb.Error:
            con.close()
            raise
        return con
    except duckdb.Error as exc:
        raise BadInputError(
            f"catalog {catalog_path}: not a readable DuckDB catalog ({exc}); "
            "roll back or publish again"
        ) from exc


def catalog_status(catalog_path: Path) -> CatalogStatus:
    """Return the status recorded in a catalog's manifest, checked against its views.

    Raises ``BadInputError`` when the file does not exist or has no manifest.
    """
    with contextlib.closing(connect_read_only(catalog_path)) as con:
        tables = _table_names(con)
        if MANIFEST_TABLE not in tables or SOURCES_TABLE not in tables:
            raise BadInputError(
                f"catalog {catalog_path}: no manifest table (not a codeintel catalog)"
            )
        present = {row[0] for row in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
        views = tuple(
            ViewStatus(
                name=name,
                kind=kind,
                present=name in present,
                row_count=row_count,
                sources=tuple(sources),
                checksum=checksum,
                error=error,
                ddl=ddl,
            )
            for name, kind, sources, checksum, row_count, error, ddl in con.execute(
                _MANIFEST_ROWS
            ).fetchall()
        )
        built = con.execute(_MANIFEST_BUILT_AT).fetchone()[0]
        sources = tuple(
            SourceStatus(*row)
            for row in con.execute(
                f"SELECT name, path, present, files, bytes, checksum FROM {SOURCES_TABLE} "
                "ORDER BY name"
            ).fetchall()
        )
        materialized = tuple(
            MaterializedStatus(name, checksum, row_count, str(updated))
            for name in sorted(MATERIALIZED_TABLES & tables)
            if f"{name}_meta" in tables
            for checksum, row_count, updated in con.execute(
                f"SELECT checksum, row_count, updated_at FROM {name}_meta"
            ).fetchall()
        )
    return CatalogStatus(
        catalog_path=str(catalog_path),
        built_at=None if built is None else str(built),
        views=views,
        sources=sources,
        materialized=materialized,
    )


def source_status(spec: SourceSpec, layout: ArtifactLayout) -> SourceStatus:
    """Return presence, size and xxh64 of one source's files (a glob: every file, sorted)."""
    # resolve(): a layout reached through the `current` symlink pins the version's own files.
    location_path = Path(spec.location(layout))
    location = str(location_path.parent.resolve() / location_path.name)
    files = (
        sorted(globlib.glob(location))
        if _is_glob(location)
        else ([location] if os.path.isfile(location) else [])
    )
    if not files:
        return SourceStatus(spec.name, location, False, 0, 0, None)
    if _is_glob(location):
        checksum = xxh64_parts(f"{Path(f).name}:{xxh64_file(Path(f))}" for f in files)
    else:
        checksum = xxh64_file(Path(files[0]))
    size = sum(os.path.getsize(f) for f in files)
    return SourceStatus(spec.name, location, True, len(files), size, checksum)


def source_checksums(layout: ArtifactLayout, names: tuple[str, ...]) -> dict[str, str | None]:
    """Return the xxh64 of each named source's files in ``layout`` (None: absent), as the
    catalog records them (``source_status``)."""
    return {
        name: source_status(_SPECS_BY_NAME[_check_source_name(name)], layout).checksum
        for name in names
    }


def definitions_checksum(layout: ArtifactLayout) -> str | None:
    """Return the xxh64 of the view and macro definitions in ``layout``'s catalog, with the
    layout's root left out: the catalogs of two layouts define the same views when equal.

    None when the catalog is missing or unreadable.
    """
    root = str(layout.root.resolve())
    try:
        with contextlib.closing(connect_read_only(layout.catalog)) as con:
            rows = con.execute(_DEFINITIONS).fetchall()
    except (BadInputError, duckdb.Error):
        return None
    return xxh64_parts(
        f"{name}\x1f{kind}\x1f{ddl.replace(root, '<root>')}" for name, kind, ddl in rows
    )


# Every view's DDL (from the manifest), then the table macros as DuckDB keeps them.
_DEFINITIONS = (
    "SELECT name, kind, ddl FROM (SELECT position, name, kind, ddl FROM " + MANIFEST_TABLE + " "
    "UNION ALL SELECT NULL, function_name, 'macro(' || array_to_string(parameters, ',') || ')', "
    "macro_definition FROM duckdb_functions() WHERE function_type = 'table_macro' "
    "AND database_name = current_database()) ORDER BY position NULLS LAST, name"
)


# -- internals ----------------------------------------------------------------------

# A view's row count is a function of its name, kind, DDL (the layout's root left out)
# and the checksum of its sources.
_CountKey = tuple[str, str, str, str]
_MACROS = (
    "SELECT function_name, parameters, macro_definition FROM duckdb_functions() "
    "WHERE function_type = 'table_macro' AND database_name = current_database() "
    "ORDER BY function_name"
)


def _recorded_counts(layout: ArtifactLayout) -> tuple[list[tuple], dict[_CountKey, int]] | None:
    """Return the table macros and the row counts recorded in ``layout``'s catalog; None
    when it is missing or unreadable."""
    root = str(layout.root.resolve())
    try:
        with contextlib.closing(connect_read_only(layout.catalog)) as con:
            macros = con.execute(_MACROS).fetchall()
            rows = con.execute(
                "SELECT name, kind, ddl, source_checksum, row_count FROM " + MANIFEST_TABLE + " "
                "WHERE error IS NULL AND row_count IS NOT NULL AND source_checksum IS NOT NULL"
            ).fetchall()
    except (BadInputError, duckdb.Error):
        return None
    counts = {
        (name, kind, ddl.replace(root, "<root>"), checksum): int(count)
        for name, kind, ddl, checksum, count in rows
    }
    return macros, counts


def _counts_if_same_macros(
    con: duckdb.DuckDBPyConnection, recorded: tuple[list[tuple], dict[_CountKey, int]] | None
) -> dict[_CountKey, int]:
    """Return the recorded counts when ``con``'s catalog has the same table macros."""
    if recorded is None or con.execute(_MACROS).fetchall() != recorded[0]:
        return {}
    return recorded[1]


def _taken_count(status: ViewStatus, known: dict[_CountKey, int], root: str) -> ViewStatus | None:
    """Return ``status`` with the row count ``known`` holds for it; None when none."""
    if status.error is not None or status.checksum is None:
        return None
    count = known.get(
        (status.name, status.kind, status.ddl.replace(root, "<root>"), status.checksum)
    )
    return None if count is None else ViewStatus(**{**asdict(status), "row_count": count})


def _register_missing(con: duckdb.DuckDBPyConnection, spec: SourceSpec, path: str) -> str:
    if spec.empty_when_missing:
        value, condition = "NULL", "FALSE"
    else:
        # error() both in every column and in WHERE: the WHERE makes count(*) fail (columns
        # are pruned), the columns keep the optimizer from proving a filter such as
        # role = 'def' false on constant NULLs and skipping the scan without an error.
        value = f"error({sql_string_literal(_missing_message(spec.name, path))})"
        condition = f"{value} IS NULL"
    columns = ",\n    ".join(
        f"CAST({value} AS {duckdb_type(f.type)}) AS {f.name}" for f in spec.schema
    )
    ddl = f"CREATE OR REPLACE VIEW {spec.name} AS\nSELECT\n    {columns}\nWHERE {condition}"
    con.execute(ddl)
    return ddl


def _missing_message(name: str, path: str) -> str:
    return f"catalog view {name}: source file missing: {path}"


def _usable(source: SourceStatus, name: str) -> bool:
    return source.present or _SPECS_BY_NAME[name].empty_when_missing


def _combined_checksum(sources: list[SourceStatus]) -> str | None:
    if any(s.checksum is None for s in sources):
        return None
    return xxh64_parts(f"{s.name}:{s.checksum}" for s in sources)


def _sync_materialized(
    con: duckdb.DuckDBPyConnection, sources: dict[str, SourceStatus], materialize: bool
) -> None:
    for name, spec in _MATERIALIZED.items():
        source_checksum = sources[spec.source].checksum
        checksum = None if source_checksum is None else spec.guard(source_checksum)
        if materialize and checksum is not None:
            materialize_if_changed(con, name, spec.select_sql, checksum)
        elif checksum is None or _materialized_checksum(con, name) != checksum:
            con.execute(_MATERIALIZED_SQL[name].drop)
            con.execute(_MATERIALIZED_SQL[name].drop_meta)


def _materialized(name: str) -> MaterializedSql:
    """Return the statements of a materialized table; ``BadInputError`` for an unknown name."""
    if name not in _MATERIALIZED_SQL:
        raise BadInputError(
            f"materialized table {name!r}: unknown (expected one of {sorted(_MATERIALIZED)})"
        )
    return _MATERIALIZED_SQL[name]


def _materialized_checksum(con: duckdb.DuckDBPyConnection, name: str) -> str | None:
    sql = _materialized(name)
    tables = _table_names(con)
    if name not in tables or f"{name}_meta" not in tables:
        return None
    row = con.execute(sql.read_checksum).fetchone()
    return None if row is None else row[0]


def _table_names(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}


def _with_row_count(con: duckdb.DuckDBPyConnection, status: ViewStatus) -> ViewStatus:
    if status.error is not None:
        return status
    try:
        view = quote_identifier(_check_view_name(status.name))
        (count,) = con.execute("SELECT count(*) FROM " + view).fetchone()
    except duckdb.Error as error:
        return ViewStatus(**{**asdict(status), "error": _one_line(str(error))})
    return ViewStatus(**{**asdict(status), "row_count": int(count)})


def _write_manifest(
    con: duckdb.DuckDBPyConnection, layout: ArtifactLayout, statuses: list[ViewStatus]
) -> None:
    built_at = _now()
    con.execute(
        f"CREATE OR REPLACE TABLE {MANIFEST_TABLE} (position INTEGER, name VARCHAR, "
        "kind VARCHAR, ddl VARCHAR, sources VARCHAR[], source_checksum VARCHAR, "
        "row_count BIGINT, error VARCHAR, built_at TIMESTAMPTZ)"
    )
    con.executemany(
        f"INSERT INTO {MANIFEST_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            [i, s.name, s.kind, s.ddl, list(s.sources), s.checksum, s.row_count, s.error, built_at]
            for i, s in enumerate(statuses)
        ],
    )
    con.execute(
        f"CREATE OR REPLACE TABLE {SOURCES_TABLE} (name VARCHAR, path VARCHAR, "
        "present BOOLEAN, files BIGINT, bytes BIGINT, checksum VARCHAR)"
    )
    con.executemany(
        f"INSERT INTO {SOURCES_TABLE} VALUES (?, ?, ?, ?, ?, ?)",
        [list(asdict(source_status(spec, layout)).values()) for spec in SOURCE_SPECS],
    )


@contextlib.contextmanager
def _staged_catalog(target: Path, copy_block_size: int | None = None) -> Iterator[Path]:
    """Yield a temporary DuckDB path beside ``target`` (a copy of it when it exists, is
    readable and, with ``copy_block_size``, has that block size).

    On success the file is fsynced and renamed over ``target``; on error it is removed.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    wal = Path(f"{tmp}.wal")
    try:
        block_size = _readable_block_size(target) if target.exists() else None
        if block_size is not None and copy_block_size in (None, block_size):
            shutil.copyfile(target, tmp)
        yield tmp
        if wal.exists():
            raise RuntimeError(f"catalog {tmp}: write-ahead log left after checkpoint")
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        for leftover in (tmp, wal):
            if leftover.exists():
                leftover.unlink()


def _readable_block_size(path: Path) -> int | None:
    """Return the block size of the DuckDB file ``path``; None when it cannot be read."""
    try:
        with contextlib.closing(duckdb.connect(str(path), read_only=True)) as con:
            (size,) = con.execute(
                "SELECT block_size FROM pragma_database_size() "
                "WHERE database_name = current_database()"
            ).fetchone()
            return int(size)
    except duckdb.Error:
        return None


def _check_source_name(name: str) -> str:
    if name not in SOURCE_NAMES:
        raise BadInputError(
            f"source view {name!r}: unknown (expected one of {sorted(SOURCE_NAMES)})"
        )
    return name


def _check_view_name(name: str) -> str:
    if name not in VIEW_NAMES:
        raise BadInputError(f"view {name!r}: unknown catalog view")
    return name


def _check_absolute(name: str, path_glob: str) -> None:
    if not os.path.isabs(path_glob):
        raise BadInputError(f"source view {name}: path {path_glob!r} is not absolute")


def _check_root(layout: ArtifactLayout) -> None:
    root = str(layout.root.resolve())
    if _is_glob(root):
        raise BadInputError(
            f"artifact root {root}: contains a glob character (* ? [ {{), which DuckDB "
            "would expand when reading Parquet; use another directory"
        )


def _is_glob(path: str) -> bool:
    return any(char in path for char in "*?[{")


def _now() -> datetime:
    return datetime.now(UTC)


def _one_line(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")
