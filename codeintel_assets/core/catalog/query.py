"""Read-only query API over a built catalog (used by search, the CLI and asset checks).

Every value travels as a bound parameter. The only identifiers placed into SQL are
the chunk and id-map relations, chosen from fixed sets when the reader opens (the
materialized tables when the catalog has them, the Parquet views otherwise), column
names checked against fixed sets, and the SQL fragments of this module.

Hydration (ids to rows, in input order) is the hot path: every search and every
service request does it. The default fields, with or without a filter, come from
``chunk_pages`` (``hydrate_from_pages``): each id's page is ``id >> page_shift``, the
pages are looked up with one list parameter, ``page = ANY(?)`` (a scan of the small
``page`` column that fetches only the matching pages), each row is found in its page's
string, all are parsed at once, and a filter is applied to the rows by the same compiled
globs (``PathFilter.matches``, which property tests hold equal to its SQL). More columns
or a join go through SQL (``hydrate_rows``): an IN-list of bound parameters, answered by
an index scan of ``chunks_mat`` (its ART index on ``id``), the default fields read from
``hydration_row`` (one JSON parse for all rows). The order is restored in Python, and
each statement shape is parsed once. ``benchmarks/bench_catalog.py`` measures both
against the alternatives (the pages by an IN-list, the same columns read one by one, an
``UNNEST ... WITH ORDINALITY`` join, ``= ANY(list)``, row numbers first, automatic
compression).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb
import numpy as np

from codeintel_assets.core import metrics
from codeintel_assets.core.catalog.catalog import (
    CHUNK_PAGES,
    CHUNKS_MAT,
    FAISS_IDMAP_MAT,
    HYDRATION_ROW,
    HYDRATION_ROW_FIELDS,
    connect_read_only,
    load_macro_definitions,
    quote_identifier,
)
from codeintel_assets.core.catalog.spans import ChunkSpans
from codeintel_assets.core.errors import BadInputError
from codeintel_assets.core.pathfilter import PathFilter

_CHUNK_RELATIONS = frozenset({CHUNKS_MAT, "v_chunks"})
_IDMAP_RELATIONS = frozenset({FAISS_IDMAP_MAT, "faiss_idmap"})

# Every column of a chunk, in order (the embedding is never hydrated).
CHUNK_COLUMNS = (
    "id",
    "uri",
    "start_line",
    "end_line",
    "start_byte",
    "end_byte",
    "lang",
    "preview",
    "content",
    "content_hash",
    "symbols",
    "kind",
    "name",
)
# What ``hydrate`` returns unless asked for more: what a result list shows, the fields
# of ``hydration_row``. ``content`` and ``symbols`` are the bulk of a chunk and cost most
# to fetch: ask for them.
HYDRATION_COLUMNS = ("id", *HYDRATION_ROW_FIELDS)
_PAGED_COLUMNS = frozenset(HYDRATION_COLUMNS)

# Up to this many ids travel as an IN-list of bound parameters (DuckDB plans an index
# scan for up to ``index_scan_max_count`` = 2048 matches); longer lists join one list
# parameter, a single scan. One list parameter for 200 ids is a semi join that scans
# the id column (~4x slower at 1M chunks); for the pages, whose ``page`` column is 16-32
# times shorter, that scan costs less than binding 200 placeholders.
IN_LIST_MAX = 2048


@dataclass(frozen=True)
class HydrationSource:
    """A relation hydrated by id: its name, its id column and the columns it offers.

    ``packed``, when set, is a JSON-array column holding ``packed_fields`` of each row:
    those fields are read from it rather than from their own columns. Names come from
    fixed sets in this package, never from a caller's input.
    """

    relation: str
    id_column: str
    columns: tuple[str, ...]
    packed: str | None = None
    packed_fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class HydrationJoin:
    """An opt-in join over the hydrated rows, which a CTE ``hit`` holds.

    ``cte`` is ``, name AS (...)`` reading ``hit`` (``{ids}`` marks where the requested
    ids are bound again, for an index of its own), ``needs`` the ``hit`` columns it
    reads, ``columns`` the (name, SQL expression) pairs it adds to each row and ``join``
    the ``LEFT JOIN`` that adds them (at most one row per hit, so no row is duplicated).
    """

    cte: str
    needs: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]
    join: str


@dataclass(frozen=True)
class Hydration:
    """Rows in input order, and the requested ids that gave none (input order too)."""

    rows: list[dict[str, Any]]
    unknown: list[int]  # not in the relation
    filtered_out: list[int]  # in the relation, rejected by the filter


def hydrate_rows(
    con: duckdb.DuckDBPyConnection,
    source: HydrationSource,
    ids: Iterable[int],
    columns: Sequence[str],
    *,
    condition: str = "TRUE",
    params: Sequence[Any] = (),
    joins: Sequence[HydrationJoin] = (),
) -> Hydration:
    """Return the rows of ``source`` whose id is in ``ids``, in the order of ``ids``.

    Repeated ids keep their first position. ``condition`` is an SQL filter over alias
    ``c`` with its bound ``params``: rows failing it are reported in ``filtered_out``,
    ids with no row in ``unknown``. Each row is a dict of ``columns`` then the joins'
    columns; two or more ``columns`` of ``source.packed_fields`` are read from its packed
    column, the others (and what filters and joins read) from their own columns. Raises
    ``BadInputError`` on a column ``source`` does not offer.
    """
    unknown_columns = [c for c in columns if c not in source.columns]
    if unknown_columns:
        raise BadInputError(
            f"columns {unknown_columns}: not columns of {source.relation} "
            f"(expected some of {list(source.columns)})"
        )
    wanted = list(dict.fromkeys(int(i) for i in ids))
    if not wanted:
        return Hydration([], [], [])
    id_sql, id_params = _id_list(wanted)
    key = source.id_column
    join_needs = [name for join in joins for name in join.needs]
    packed = [c for c in columns if c in source.packed_fields and c not in join_needs]
    if len(packed) < 2:
        # One field alone costs less from its own column than from the whole packed row.
        packed = []
    needed = [
        key,
        *(c for c in columns if c not in packed),
        *join_needs,
        *([source.packed] if packed else []),
    ]
    projection = ", ".join(f"c.{name}" for name in dict.fromkeys(needed))
    ctes = [
        f"WITH hit AS (SELECT {projection}, ({condition}) AS _keep "
        f"FROM {source.relation} AS c WHERE c.{key} IN ({id_sql}))"
    ]
    bound: list[Any] = [*params, *id_params]
    for join in joins:
        if "{ids}" in join.cte:
            bound += id_params
        ctes.append(join.cte.replace("{ids}", id_sql))
    added = [name for join in joins for name, _ in join.columns]
    select = ", ".join(
        ["hit.*", *(f"{sql} AS {name}" for join in joins for name, sql in join.columns)]
    )
    sql = "".join(ctes) + f"\nSELECT {select} FROM hit " + " ".join(j.join for j in joins)
    cursor = con.execute(_parsed(con, sql), bound)
    names = [d[0] for d in cursor.description]
    found = {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}
    kept, unknown, filtered_out = [], [], []
    for requested in wanted:
        row = found.get(requested)
        if row is None:
            unknown.append(requested)
        elif not row.pop("_keep"):
            filtered_out.append(requested)
        else:
            kept.append(row)
    if packed and kept:
        # One parse for all rows: a call per row would cost more than the parsing.
        unpacked = json.loads("[" + ",".join(row[source.packed] for row in kept) + "]")
        for row, values in zip(kept, unpacked, strict=True):
            row.update(zip(source.packed_fields, values, strict=True))
    names = (*columns, *added)
    rows = [{name: row[name] for name in names} for row in kept]
    return Hydration(rows, unknown, filtered_out)


def hydrate_from_pages(
    con: duckdb.DuckDBPyConnection,
    page_shift: int,
    ids: Iterable[int],
    columns: Sequence[str],
    chunk_filter: ChunkFilter,
) -> Hydration:
    """Return the chunks of ``ids`` from ``chunk_pages``, in the order of ``ids``.

    ``columns`` are ``id``, ``chunk_id`` (the id again) and fields of
    ``HYDRATION_ROW_FIELDS``. Repeated ids keep their first position; ids in no page are
    ``unknown``, rows ``chunk_filter`` rejects are ``filtered_out`` (the same rows its SQL
    rejects: ``ChunkFilter.keeps``). The page numbers travel as bound parameters.
    """
    wanted = list(dict.fromkeys(int(i) for i in ids))
    pages = sorted({i >> page_shift for i in wanted})
    text = dict(con.execute(_parsed(con, _PAGES_SELECT), [pages]).fetchall())
    found: list[int] = []
    lines: list[bytes] = []
    unknown: list[int] = []
    for requested in wanted:
        line = _page_line(text.get(requested >> page_shift), requested)
        if line is None:
            unknown.append(requested)
        else:
            found.append(requested)
            lines.append(line)
    # One parse for all rows: a call per row would cost more than the parsing.
    parsed = json.loads(b"[" + b",".join(lines) + b"]")
    at = [_PAGE_POSITIONS[name] for name in columns]
    uri, lang = _PAGE_POSITIONS["uri"], _PAGE_POSITIONS["lang"]
    keeps = None if chunk_filter == NO_FILTER else chunk_filter.keeps
    rows, filtered_out = [], []
    for requested, values in zip(found, parsed, strict=True):
        values.insert(0, requested)
        if keeps is not None and not keeps(values[uri], values[lang]):
            filtered_out.append(requested)
            continue
        rows.append(dict(zip(columns, map(values.__getitem__, at), strict=True)))
    return Hydration(rows, unknown, filtered_out)


# The pages' statements: the table's name is the fixed identifier, quoted; every value
# (the page numbers, one list) is a bound parameter.
_PAGES_SELECT = (
    "SELECT page, rows FROM " + quote_identifier(CHUNK_PAGES) + " WHERE page = ANY(?::BIGINT[])"
)
_PAGE_SHIFT_SELECT = "SELECT page_shift FROM " + quote_identifier(CHUNK_PAGES) + " LIMIT 1"

# Where each column is in a page row with its id put first (``chunk_id`` is the id too).
_PAGE_POSITIONS = {
    "id": 0,
    "chunk_id": 0,
    **{name: i + 1 for i, name in enumerate(HYDRATION_ROW_FIELDS)},
}


def _page_line(page: bytes | None, chunk_id: int) -> bytes | None:
    """Return the hydration row of ``chunk_id`` in ``page`` (lines ``<id>\\t<row>``)."""
    if page is None:
        return None
    key = b"%d\t" % chunk_id
    if page.startswith(key):
        start = len(key)
    else:
        start = page.find(b"\n" + key)
        if start < 0:
            return None
        start += len(key) + 1
    end = page.find(b"\n", start)
    return page[start:] if end < 0 else page[start:end]


def _id_list(ids: list[int]) -> tuple[str, list[Any]]:
    """Return the SQL list of ``ids`` (placeholders or a list subquery) and its params."""
    if len(ids) <= IN_LIST_MAX:
        return ", ".join("?" * len(ids)), ids
    return "SELECT unnest(?::BIGINT[])", [ids]


# Parsed statements by SQL text; cleared when full (a new shape per id count, filter
# and join combination, so it stays small in practice).
_STATEMENTS: dict[str, duckdb.Statement] = {}
_STATEMENTS_MAX = 512


def _parsed(con: duckdb.DuckDBPyConnection, sql: str) -> duckdb.Statement:
    """Return ``sql`` parsed once: a warm reader binds it again without re-parsing.

    Saves ~0.5 ms of a 200-id hydration (bench_catalog.py); DuckDB's Python client has
    no prepared statement to keep, and SQL ``EXECUTE`` refuses bound values. Parsed by
    ``con``, not by ``duckdb.extract_statements``: that one opens the module's default
    in-memory database, ~17 ms of a fresh process's first hydration. A parsed statement
    runs on any connection.
    """
    statement = _STATEMENTS.get(sql)
    if statement is None:
        (statement,) = con.extract_statements(sql)
        if len(_STATEMENTS) >= _STATEMENTS_MAX:
            _STATEMENTS.clear()
        _STATEMENTS[sql] = statement
    return statement


# The module of each hit by the catalog's one rule, ``uri_modules`` (views.sql: the
# longest prefix, one row per uri, so a chunk is never duplicated).
_JOIN_MODULES = HydrationJoin(
    cte="""
, hit_module AS (
    SELECT * FROM uri_modules((SELECT list(hit.uri) FROM hit WHERE hit._keep))
)""",
    needs=("uri",),
    columns=(("module_id", "hm.module_id"), ("language", "hm.language")),
    join="LEFT JOIN hit_module AS hm ON hm.uri = hit.uri",
)

# Symbols whose SCIP definition lies inside the hit's lines, aggregated to one list.
_JOIN_SYMBOLS = HydrationJoin(
    cte="""
, hit_defs AS (
    SELECT hit.id, list_sort(list(DISTINCT d.symbol)) AS defined_symbols
    FROM hit JOIN v_scip_defs AS d
        ON d.uri = hit.uri AND d.line BETWEEN hit.start_line AND hit.end_line
    WHERE hit._keep
    GROUP BY hit.id
)""",
    needs=("uri", "start_line", "end_line"),
    columns=(("defined_symbols", "coalesce(hd.defined_symbols, []::VARCHAR[])"),),
    join="LEFT JOIN hit_defs AS hd ON hd.id = hit.id",
)


def _join_faiss(idmap: str) -> HydrationJoin:
    """One id-map row per hit (lowest index name, then lowest row, when several indexes).

    The ids are bound again so the id map's own index answers.
    """
    return HydrationJoin(
        cte=f"""
, hit_faiss AS (
    SELECT f.faiss_id, f.faiss_row, f.index_name, f.build_version
    FROM {idmap} AS f
    WHERE f.faiss_id IN ({{ids}})
    QUALIFY row_number() OVER (PARTITION BY f.faiss_id ORDER BY f.index_name, f.faiss_row) = 1
)""",
        needs=(),
        columns=(
            ("faiss_row", "hf.faiss_row"),
            ("index_name", "hf.index_name"),
            ("build_version", "hf.build_version"),
        ),
        join="LEFT JOIN hit_faiss AS hf ON hf.faiss_id = hit.id",
    )


@dataclass(frozen=True)
class ChunkFilter:
    """Include/exclude globs over the chunk uri and a language set.

    Globs mean what they mean everywhere (``core/pathfilter.py``: gitignore rules and
    braces); languages compare case-insensitively with the chunk's ``lang``, and an
    unknown language raises ``BadInputError`` naming the known ones.
    """

    include_globs: tuple[str, ...] = ()
    exclude_globs: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Accept lists from callers while keeping the dataclass hashable.
        object.__setattr__(self, "include_globs", tuple(self.include_globs))
        object.__setattr__(self, "exclude_globs", tuple(self.exclude_globs))
        object.__setattr__(self, "languages", tuple(self.languages))
        # Imported here: the manifest module will use this package's path filter.
        from codeintel_assets.core.manifest import check_languages

        check_languages(self.languages)

    @property
    def filter_type(self) -> str:
        """Metrics label: ``combined`` (globs + languages), ``glob``, ``language`` or ``none``."""
        has_glob = bool(self.include_globs or self.exclude_globs)
        if has_glob and self.languages:
            return "combined"
        if has_glob:
            return "glob"
        return "language" if self.languages else "none"

    @cached_property
    def paths(self) -> PathFilter:
        """The compiled globs. Raises ``BadInputError`` on a bad glob."""
        return PathFilter.from_globs(self.include_globs, self.exclude_globs)

    def keeps(self, uri: str, lang: str | None) -> bool:
        """Return whether a chunk of ``uri`` in ``lang`` passes: what ``sql`` decides,
        evaluated in Python (``PathFilter.matches``; languages lower-cased, as there)."""
        if self.languages and (lang is None or lang.lower() not in self._languages):
            return False
        return self.paths.matches(uri)

    @cached_property
    def _languages(self) -> frozenset[str]:
        return frozenset(language.lower() for language in self.languages)

    def sql(self, alias: str) -> tuple[str, list[Any]]:
        """Return the SQL condition over relation ``alias`` and its bound parameters.

        The condition is exact: SQL alone decides which chunks pass.
        """
        if alias != "c":
            raise BadInputError(f"filter alias {alias!r}: only 'c' is used by the query API")
        condition, params = self.paths.sql("c.uri")
        clauses: list[str] = [] if condition == "TRUE" else [condition]
        values: list[Any] = list(params)
        if self.languages:
            clauses.append("list_contains(?::VARCHAR[], lower(c.lang))")
            values.append([language.lower() for language in self.languages])
        return (" AND ".join(clauses) if clauses else "TRUE"), values


NO_FILTER = ChunkFilter()


@dataclass
class CatalogReader:
    """A read-only connection to one catalog file; use as a context manager. Safe to use
    from several threads at once (each gets its own cursor).

    Raises ``BadInputError`` when the catalog does not exist or is not a readable DuckDB file.
    """

    catalog_path: Path
    _root: duckdb.DuckDBPyConnection = field(init=False, repr=False)
    _local: threading.local = field(init=False, repr=False, default_factory=threading.local)
    _cursors: list[duckdb.DuckDBPyConnection] = field(init=False, repr=False, default_factory=list)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)
    _chunk_relation: str = field(init=False)
    _idmap_relation: str = field(init=False)
    _chunks: HydrationSource = field(init=False, repr=False)
    _page_shift: int | None = field(init=False, repr=False, default=None)
    _spans: ChunkSpans | None = field(init=False, repr=False, default=None)
    _modules: dict[str, tuple[str, str]] | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        self.catalog_path = Path(self.catalog_path)
        self._root = connect_read_only(self.catalog_path)
        self._local.con = self._root
        tables = dict(
            self._con.execute(
                "SELECT table_name, list(column_name) FROM duckdb_columns() "
                "WHERE table_name IN (?, ?, ?) GROUP BY table_name",
                [CHUNKS_MAT, FAISS_IDMAP_MAT, CHUNK_PAGES],
            ).fetchall()
        )
        self._chunk_relation = _pick(
            _CHUNK_RELATIONS, CHUNKS_MAT if CHUNKS_MAT in tables else "v_chunks"
        )
        self._idmap_relation = _pick(
            _IDMAP_RELATIONS, FAISS_IDMAP_MAT if FAISS_IDMAP_MAT in tables else "faiss_idmap"
        )
        # A chunks_mat of an older layout has no hydration_row: read its columns.
        packed = HYDRATION_ROW in tables.get(CHUNKS_MAT, [])
        self._chunks = HydrationSource(
            self._chunk_relation,
            "id",
            CHUNK_COLUMNS,
            HYDRATION_ROW if packed else None,
            HYDRATION_ROW_FIELDS if packed else (),
        )
        if CHUNK_PAGES in tables:
            shift = self._con.execute(_PAGE_SHIFT_SELECT).fetchall()
            # An empty table has no shift to read, and no chunk either.
            self._page_shift = shift[0][0] if shift else 64

    @property
    def chunk_relation(self) -> str:
        """Where chunks are read from: ``chunks_mat`` when materialized, else ``v_chunks``."""
        return self._chunk_relation

    @property
    def _con(self) -> duckdb.DuckDBPyConnection:
        """The calling thread's connection: the reader's own in the thread that opened it,
        a cursor of it in any other (a DuckDB connection is not safe to share between
        threads; its cursors share the database and its buffer pool)."""
        con = getattr(self._local, "con", None)
        if con is None:
            with self._lock:
                con = self._root.cursor()
                self._cursors.append(con)
            self._local.con = con
        return con

    def close(self) -> None:
        """Close the connection and every thread's cursor of it."""
        with self._lock:
            for cursor in self._cursors:
                cursor.close()
            self._cursors.clear()
        self._root.close()

    def __enter__(self) -> CatalogReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def hydration(
        self,
        ids: Sequence[int],
        *,
        columns: Sequence[str] = HYDRATION_COLUMNS,
        filters: ChunkFilter | None = None,
        join_modules: bool = False,
        join_symbols: bool = False,
        join_faiss: bool = False,
    ) -> Hydration:
        """Return the chunks of ``ids`` in input order, and the ids that gave none.

        Repeated ids keep their first position. Each row has ``chunk_id`` (= ``id``) and
        ``columns`` (default ``HYDRATION_COLUMNS``; any of ``CHUNK_COLUMNS``);
        ``join_modules`` adds ``module_id`` and ``language`` (longest prefix),
        ``join_symbols`` adds ``defined_symbols`` (SCIP definitions inside the lines),
        ``join_faiss`` adds ``faiss_row``, ``index_name`` and ``build_version``. Joins
        never duplicate a chunk. Ids not in the catalog are listed in ``unknown``, ids
        ``filters`` reject in ``filtered_out``. Raises ``BadInputError`` on a bad glob
        or column, and ``duckdb.Error`` naming the view and path when a joined source
        is missing.
        """
        chunk_filter = filters or NO_FILTER
        metrics.record_filter_query(chunk_filter.filter_type)
        wanted = ["id", *(c for c in columns if c != "id")]
        paged = self._page_shift is not None and not (join_modules or join_symbols or join_faiss)
        if paged and all(c in _PAGED_COLUMNS for c in wanted):
            named = ["chunk_id", *wanted]
            return hydrate_from_pages(self._con, self._page_shift, ids, named, chunk_filter)
        condition, params = chunk_filter.sql("c")
        joins = []
        if join_modules:
            joins.append(_JOIN_MODULES)
        if join_symbols:
            joins.append(_JOIN_SYMBOLS)
        if join_faiss:
            joins.append(_join_faiss(self._idmap_relation))

        def run() -> Hydration:
            return hydrate_rows(
                self._con,
                self._chunks,
                ids,
                wanted,
                condition=condition,
                params=params,
                joins=joins,
            )

        try:
            found = run()
        except duckdb.CatalogException:
            # A catalog built before the views.sql macros lacks uri_modules. Checked on
            # this error only: listing the functions costs ~20-30 ms per reader.
            if not (join_modules and _ensure_macros(self._con)):
                raise
            found = run()
        rows = [{"chunk_id": row["id"], **row} for row in found.rows]
        return Hydration(rows, found.unknown, found.filtered_out)

    def hydrate(
        self,
        ids: Sequence[int],
        *,
        columns: Sequence[str] = HYDRATION_COLUMNS,
        filters: ChunkFilter | None = None,
        join_modules: bool = False,
        join_symbols: bool = False,
        join_faiss: bool = False,
    ) -> list[dict[str, Any]]:
        """Return ``hydration(...).rows``: the chunks of ``ids`` in input order.

        Ids that do not exist or fail ``filters`` are left out (``hydration`` lists them).
        Raises as ``hydration`` does.
        """
        return self.hydration(
            ids,
            columns=columns,
            filters=filters,
            join_modules=join_modules,
            join_symbols=join_symbols,
            join_faiss=join_faiss,
        ).rows

    def filter_ids(self, ids: Sequence[int], filters: ChunkFilter | None) -> list[int]:
        """Return the ids that exist and pass ``filters``, in input order (first occurrence).

        Search over-fetches candidates and keeps what this returns.
        Raises ``BadInputError`` on a bad glob.
        """
        chunk_filter = filters or NO_FILTER
        metrics.record_filter_query(chunk_filter.filter_type)
        # SQL, not the pages: the filter reads two short columns, a page is ~30 rows.
        condition, params = chunk_filter.sql("c")
        found = hydrate_rows(
            self._con, self._chunks, ids, ["id"], condition=condition, params=params
        )
        return [int(row["id"]) for row in found.rows]

    def get_chunk_by_id(self, chunk_id: int) -> dict[str, Any] | None:
        """Return one chunk with every column (``CHUNK_COLUMNS``); None when it does not exist."""
        rows = self.hydrate([chunk_id], columns=CHUNK_COLUMNS)
        return rows[0] if rows else None

    def chunk_ids(self) -> np.ndarray:
        """Return the id of every chunk in ``v_chunks``, in id order.

        Raises ``BadInputError`` when the catalog's chunks cannot be read.
        """
        try:
            rows = self._con.execute("SELECT id FROM v_chunks ORDER BY id").fetchall()
        except duckdb.Error as exc:
            raise BadInputError(f"catalog {self.catalog_path}: chunks unreadable: {exc}") from exc
        return np.array([row[0] for row in rows], dtype=np.int64)

    def chunk_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """Return (chunk ids, embedding matrix) of every chunk in ``v_chunks``, by id.

        Raises ``BadInputError`` when the catalog's chunks cannot be read.
        """
        try:
            sql = "SELECT id, embedding FROM v_chunks ORDER BY id"
            table = self._con.sql(sql).to_arrow_table()
        except duckdb.Error as exc:
            raise BadInputError(f"catalog {self.catalog_path}: chunks unreadable: {exc}") from exc
        ids = table.column("id").to_numpy()
        vectors = table.column("embedding").combine_chunks().flatten().to_numpy()
        dim = len(vectors) // len(ids) if len(ids) else 0
        return ids, np.ascontiguousarray(vectors.reshape(len(ids), dim), dtype=np.float32)

    def get_symbols_for_chunk(self, chunk_id: int) -> list[str]:
        """Return the SCIP symbols of a chunk ([] when the chunk does not exist)."""
        row = self._con.execute(
            f"SELECT symbols FROM {self._chunk_relation} WHERE id = ?", [int(chunk_id)]
        ).fetchone()
        return list(row[0]) if row and row[0] is not None else []

    def uri_modules(self) -> dict[str, tuple[str, str]]:
        """Return ``{uri: (module_id, language)}`` for every indexed file a module owns, by
        ``views.sql``'s ``uri_modules`` rule (the longest ``uri_prefix``), read once per
        reader: what ``join_modules`` adds to a chunk depends on its uri alone, so a
        warm reader (a search, the service) looks it up here instead of joining per query.
        """
        if self._modules is None:
            sql = (
                "SELECT uri, module_id, language FROM uri_modules("
                f"(SELECT list(DISTINCT uri) FROM {self._chunk_relation}))"
            )
            try:
                rows = self._con.execute(sql).fetchall()
            except duckdb.CatalogException:
                if not _ensure_macros(self._con):  # a catalog built before the macro
                    raise
                rows = self._con.execute(sql).fetchall()
            self._modules = {uri: (module, language) for uri, module, language in rows}
        return self._modules

    def span_chunk_ids(self, spans: Sequence[tuple[str, int, int]]) -> list[int]:
        """Return the ids of the chunks that hold the lines of the ``(uri, first, last)``
        spans (1-based inclusive), found by ``ChunkSpans`` (read once per reader)."""
        if not spans:
            return []
        if self._spans is None:
            self._spans = ChunkSpans(
                self._con.sql(
                    f"SELECT id, uri, start_line, end_line, start_byte FROM {self._chunk_relation}"
                ).to_arrow_table()
            )
        return self._spans.covering_all(spans)

    def span_lines(
        self,
        spans: Sequence[tuple[str, int, int]],
        rows: Sequence[dict[str, Any]] | None = None,
    ) -> list[list[str]]:
        """Return, per ``(uri, first, last)`` span, its lines (1-based inclusive) as indexed,
        put back together from the chunks of ``span_chunk_ids`` — ``rows`` when the caller
        fetched them already (with ``uri``, ``start_line``, ``start_byte``, ``content``),
        else fetched by id in one query; a span no chunk holds gives []."""
        if not spans:
            return []
        if rows is None:
            rows = self.hydrate(
                self.span_chunk_ids(spans),
                columns=("id", "uri", "start_line", "start_byte", "content"),
            )
        files: dict[str, dict[int, str]] = {}
        for row in sorted(rows, key=lambda r: (r["uri"], r["start_line"], r["start_byte"])):
            lines = files.setdefault(row["uri"], {})
            for offset, text in enumerate(row["content"].split("\n")):
                # A long line cut into character windows comes back in pieces.
                lines[row["start_line"] + offset] = lines.get(row["start_line"] + offset, "") + text
        return [
            [files[uri][n] for n in range(first, last + 1) if n in files.get(uri, {})]
            for uri, first, last in spans
        ]

    def query_by_symbols(
        self, symbols: Sequence[str], topk_per_symbol: int = 10
    ) -> list[dict[str, Any]]:
        """Return, per symbol, up to ``topk_per_symbol`` chunks whose ``symbols`` contain it.

        Each dict is a hydrated chunk plus ``symbol`` (the symbol asked for); rows come in
        the order of ``symbols``, then by uri and start line. Symbols match exactly (no
        wildcard). Raises ``BadInputError`` when ``topk_per_symbol`` < 1.
        """
        if topk_per_symbol < 1:
            raise BadInputError(f"topk_per_symbol {topk_per_symbol}: must be at least 1")
        wanted = list(dict.fromkeys(str(s) for s in symbols))
        if not wanted:
            return []
        columns = ", ".join(f"c.{name}" for name in CHUNK_COLUMNS)
        sql = (
            f"SELECT s.symbol, c.id AS chunk_id, {columns} "
            f"FROM unnest(?::VARCHAR[]) WITH ORDINALITY AS s(symbol, ord) "
            f"JOIN {self._chunk_relation} AS c ON list_contains(c.symbols, s.symbol) "
            "QUALIFY row_number() OVER "
            "(PARTITION BY s.ord ORDER BY c.uri, c.start_line, c.id) <= ? "
            "ORDER BY s.ord, c.uri, c.start_line, c.id"
        )
        return self._fetch_dicts(sql, [wanted, int(topk_per_symbol)])

    def query_by_module(self, module_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """Return up to ``limit`` chunks whose longest-prefix module is ``module_id``.

        Ordered by uri and start line; each dict carries ``module_id`` and ``language``.
        Raises ``BadInputError`` when ``limit`` < 1.
        """
        if limit < 1:
            raise BadInputError(f"limit {limit}: must be at least 1")
        columns = ", ".join(f"c.{name}" for name in CHUNK_COLUMNS)
        sql = (
            f"SELECT c.id AS chunk_id, {columns}, cm.module_id, cm.language "
            f"FROM v_chunk_modules AS cm JOIN {self._chunk_relation} AS c ON c.id = cm.chunk_id "
            "WHERE cm.module_id = ? ORDER BY c.uri, c.start_line, c.id LIMIT ?"
        )
        return self._fetch_dicts(sql, [str(module_id), int(limit)])

    def _fetch_dicts(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        cursor = self._con.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _ensure_macros(con: duckdb.DuckDBPyConnection) -> bool:
    """Create, for this connection only, the ``views.sql`` macros a catalog built before
    them lacks (``uri_modules``): a published version is never rebuilt, and a rollback
    may return to one. Return whether any was missing."""
    present = {
        row[0]
        for row in con.execute(
            "SELECT function_name FROM duckdb_functions() WHERE function_type = 'table_macro'"
        ).fetchall()
    }
    missing = [macro for macro in load_macro_definitions() if macro.name not in present]
    for macro in missing:
        con.execute(macro.ddl.replace("CREATE OR REPLACE MACRO", "CREATE TEMP MACRO", 1))
    return bool(missing)


def _pick(allowed: frozenset[str], relation: str) -> str:
    if relation not in allowed:
        raise BadInputError(f"relation {relation!r}: not one of {sorted(allowed)}")
    return relation
