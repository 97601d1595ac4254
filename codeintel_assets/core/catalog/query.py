"""Read-only query API over a built catalog (used by search, the CLI and asset checks).

Every value travels as a bound parameter. The only identifiers placed into SQL are
the chunk and id-map relations, chosen from fixed sets when the reader opens (the
materialized tables when the catalog has them, the Parquet views otherwise), and the
SQL fragments of this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb
import numpy as np

from codeintel_assets.core import metrics
from codeintel_assets.core.catalog.catalog import CHUNKS_MAT, FAISS_IDMAP_MAT
from codeintel_assets.core.catalog.globs import PathFilter
from codeintel_assets.core.errors import BadInputError

_CHUNK_RELATIONS = frozenset({CHUNKS_MAT, "v_chunks"})
_IDMAP_RELATIONS = frozenset({FAISS_IDMAP_MAT, "faiss_idmap"})

# Columns of a hydrated chunk, in order (the embedding is never hydrated).
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

# The requested ids with their 1-based position; ids are deduplicated before binding.
_REQUESTED = "unnest(?::BIGINT[]) WITH ORDINALITY AS req(req_id, ord)"

# Longest-prefix module of each hit (one row per hit: never duplicates a chunk).
_JOIN_MODULES = """
, hit_module AS (
    SELECT hit.ord, m.module_id, m.language
    FROM hit JOIN modules AS m ON starts_with(hit.uri, m.uri_prefix)
    QUALIFY row_number() OVER (
        PARTITION BY hit.ord ORDER BY length(m.uri_prefix) DESC, m.module_id
    ) = 1
)"""

# Symbols whose SCIP definition lies inside the hit's lines, aggregated to one list.
_JOIN_SYMBOLS = """
, hit_defs AS (
    SELECT hit.ord, list_sort(list(DISTINCT d.symbol)) AS defined_symbols
    FROM hit JOIN v_scip_defs AS d
        ON d.uri = hit.uri AND d.line BETWEEN hit.start_line AND hit.end_line
    GROUP BY hit.ord
)"""

# One id-map row per hit (lowest index name, then lowest row, when several indexes).
_JOIN_FAISS = """
, hit_faiss AS (
    SELECT f.faiss_id, f.faiss_row, f.index_name, f.build_version
    FROM {idmap} AS f
    WHERE f.faiss_id IN (SELECT id FROM hit)
    QUALIFY row_number() OVER (PARTITION BY f.faiss_id ORDER BY f.index_name, f.faiss_row) = 1
)"""


@dataclass(frozen=True)
class ChunkFilter:
    """Include/exclude globs over the chunk uri and a language set (see ``globs``).

    Languages compare case-insensitively with the chunk's ``lang``.
    """

    include_globs: tuple[str, ...] = ()
    exclude_globs: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Accept lists from callers while keeping the dataclass hashable.
        object.__setattr__(self, "include_globs", tuple(self.include_globs))
        object.__setattr__(self, "exclude_globs", tuple(self.exclude_globs))
        object.__setattr__(self, "languages", tuple(self.languages))

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

    def sql(self, alias: str) -> tuple[str, list[Any]]:
        """Return the SQL condition over relation ``alias`` and its bound parameters."""
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
    """A read-only connection to one catalog file; use as a context manager.

    Raises ``BadInputError`` when the catalog does not exist.
    """

    catalog_path: Path
    _con: duckdb.DuckDBPyConnection = field(init=False, repr=False)
    _chunk_relation: str = field(init=False)
    _idmap_relation: str = field(init=False)

    def __post_init__(self) -> None:
        self.catalog_path = Path(self.catalog_path)
        if not self.catalog_path.exists():
            raise BadInputError(f"catalog {self.catalog_path}: not found (build the catalog first)")
        self._con = duckdb.connect(str(self.catalog_path), read_only=True)
        tables = {
            row[0] for row in self._con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        }
        self._chunk_relation = _pick(
            _CHUNK_RELATIONS, CHUNKS_MAT if CHUNKS_MAT in tables else "v_chunks"
        )
        self._idmap_relation = _pick(
            _IDMAP_RELATIONS, FAISS_IDMAP_MAT if FAISS_IDMAP_MAT in tables else "faiss_idmap"
        )

    @property
    def chunk_relation(self) -> str:
        """Where chunks are read from: ``chunks_mat`` when materialized, else ``v_chunks``."""
        return self._chunk_relation

    def close(self) -> None:
        """Close the connection."""
        self._con.close()

    def __enter__(self) -> CatalogReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def hydrate(
        self,
        ids: Sequence[int],
        *,
        filters: ChunkFilter | None = None,
        join_modules: bool = False,
        join_symbols: bool = False,
        join_faiss: bool = False,
    ) -> list[dict[str, Any]]:
        """Return the chunks of ``ids`` in input order, one dict per chunk.

        Ids that do not exist or fail ``filters`` are dropped; repeated ids keep their
        first position; an empty list returns []. Each dict has ``chunk_id`` (= ``id``) and
        ``CHUNK_COLUMNS``; ``join_modules`` adds ``module_id`` and ``language`` (longest
        prefix), ``join_symbols`` adds ``defined_symbols`` (SCIP definitions inside the
        lines), ``join_faiss`` adds ``faiss_row``, ``index_name`` and ``build_version``.
        Joins never duplicate a chunk. Raises ``BadInputError`` on a bad glob, and
        ``duckdb.Error`` naming the view and path when a joined source is missing.
        """
        chunk_filter = filters or NO_FILTER
        metrics.record_filter_query(chunk_filter.filter_type)
        unique = _unique_ids(ids)
        if not unique:
            return []
        condition, params = chunk_filter.sql("c")
        columns = ", ".join(f"c.{name}" for name in CHUNK_COLUMNS)
        ctes = [
            f"WITH hit AS (SELECT {columns}, req.ord FROM {_REQUESTED} "
            f"JOIN {self._chunk_relation} AS c ON c.id = req.req_id WHERE {condition})"
        ]
        select = ["hit.id AS chunk_id", "hit.*"]
        joins = []
        if join_modules:
            ctes.append(_JOIN_MODULES)
            select += ["hm.module_id", "hm.language"]
            joins.append("LEFT JOIN hit_module AS hm ON hm.ord = hit.ord")
        if join_symbols:
            ctes.append(_JOIN_SYMBOLS)
            select.append("coalesce(hd.defined_symbols, []::VARCHAR[]) AS defined_symbols")
            joins.append("LEFT JOIN hit_defs AS hd ON hd.ord = hit.ord")
        if join_faiss:
            ctes.append(_JOIN_FAISS.format(idmap=self._idmap_relation))
            select += ["hf.faiss_row", "hf.index_name", "hf.build_version"]
            joins.append("LEFT JOIN hit_faiss AS hf ON hf.faiss_id = hit.id")
        sql = (
            "".join(ctes)
            + f"\nSELECT {', '.join(select)} FROM hit "
            + " ".join(joins)
            + " ORDER BY hit.ord"
        )
        rows = self._fetch_dicts(sql, [unique, *params])
        for row in rows:
            del row["ord"]
        return self._post_filter(rows, chunk_filter)

    def filter_ids(self, ids: Sequence[int], filters: ChunkFilter | None) -> list[int]:
        """Return the ids that exist and pass ``filters``, in input order (first occurrence).

        Search over-fetches candidates and keeps what this returns.
        Raises ``BadInputError`` on a bad glob.
        """
        chunk_filter = filters or NO_FILTER
        metrics.record_filter_query(chunk_filter.filter_type)
        unique = _unique_ids(ids)
        if not unique:
            return []
        condition, params = chunk_filter.sql("c")
        sql = (
            f"SELECT c.id, c.uri FROM {_REQUESTED} JOIN {self._chunk_relation} AS c "
            f"ON c.id = req.req_id WHERE {condition} ORDER BY req.ord"
        )
        rows = self._con.execute(sql, [unique, *params]).fetchall()
        if chunk_filter.paths.needs_post_filter:
            rows = [row for row in rows if chunk_filter.paths.matches(row[1])]
        return [int(row[0]) for row in rows]

    def get_chunk_by_id(self, chunk_id: int) -> dict[str, Any] | None:
        """Return one chunk as ``hydrate`` would, or None when the id does not exist."""
        rows = self.hydrate([chunk_id])
        return rows[0] if rows else None

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

    @staticmethod
    def _post_filter(rows: list[dict[str, Any]], chunk_filter: ChunkFilter) -> list[dict[str, Any]]:
        if not chunk_filter.paths.needs_post_filter:
            return rows
        return [row for row in rows if chunk_filter.paths.matches(row["uri"])]


def _unique_ids(ids: Sequence[int]) -> list[int]:
    return list(dict.fromkeys(int(i) for i in ids))


def _pick(allowed: frozenset[str], relation: str) -> str:
    if relation not in allowed:
        raise BadInputError(f"relation {relation!r}: not one of {sorted(allowed)}")
    return relation
