"""Tune then lock: choose an ANN index's search knobs by measuring recall against exact search.

The knobs valid for the index type are swept from cheap to expensive (``nprobe``
for IVF, ``efSearch`` for HNSW, nothing for Flat) and set through FAISS's
``ParameterSpace``. At each point the recall@k of the index against an exact
inner-product search over the same vectors is measured, with latency. The
cheapest point that reaches the target is kept and left set on the index (it is
"locked" by recording it in the audit sidecar, which ``read_index`` re-applies).
The query vectors an IVF was tuned with are kept beside it (``save_tuning_queries``), so
an index updated in place (``core.faiss_build``) re-measures its locked knobs with them
(``recheck_locked_knobs``) without the model.

``k_factor`` is how deep the ANN list is read, as a multiple of k: recall counts the
exact top k found in the ANN's top ⌈k·k_factor⌉ (1: plain recall@k; the eval pool's
``faiss`` source and search's candidate pools read deeper than k). An operator can lock
an explicit point on any index file (``lock_index_file``): the knobs are checked against
the index family, measured, and written to the sidecar beside the file.

Recall counts ties: an ANN hit whose score reaches the k-th exact score counts as
found even when the exact search listed another id with the same score, because
duplicated code gives identical vectors and either id is a correct answer. The ANN
hits are rescored exactly first (``ExactOracle.rescore``): a quantized index's own
scores are approximate and would pass misses off as ties.

Exact search of the same queries build after build is kept (``ExactCache``): each query's
vectors above a floor are stored beside the artifacts, and a corpus that changed by a few
vectors scores only those, with the hits a search of every vector gives.
"""

from __future__ import annotations

import math
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pyarrow.parquet as pq
import xxhash

from codeintel_assets.core import faiss_store
from codeintel_assets.core.checksums import (
    atomic_path,
    write_json_atomic,
    xxh64_bytes,
    xxh64_file,
)
from codeintel_assets.core.embedding import Embedder
from codeintel_assets.core.errors import BadInputError, CodeintelError
from codeintel_assets.core.layout import DEFAULT_INDEX_NAME, ArtifactLayout, audit_beside
from codeintel_assets.core.queries import synthetic_queries

# Scores within this of the k-th exact score count as ties (float rounding, FAISS #915).
TIE_EPSILON = 1e-5
EF_SEARCH_VALUES = (16, 32, 64, 128, 256, 512, 1024)

# ANN recall@k against exact search an index must reach (build, check, indexctl tune).
TARGET_RECALL = 0.95

# ``ExactCache`` keeps each query's vectors down to its (this·k)-th score: the margin that
# lets a later corpus lose a few of them and still answer its top k from what is kept.
EXACT_CACHE_DEPTH = 4


@dataclass(frozen=True)
class OperatingPoint:
    """The chosen knobs and what they measured; ``sweep`` lists every point tried."""

    knobs: str  # ParameterSpace string, "" for an exact index
    recall: float  # recall@k against exact search
    latency_ms: float  # per query, single-threaded batch
    met: bool  # recall reached the target
    target_recall: float
    k: int
    queries: int
    sweep: list[dict[str, Any]] = field(default_factory=list)
    k_factor: float = 1.0  # the ANN list is read ⌈k·k_factor⌉ deep

    def to_dict(self) -> dict[str, Any]:
        return {
            "knobs": self.knobs,
            "recall": self.recall,
            "latency_ms": self.latency_ms,
            "met": self.met,
            "target_recall": self.target_recall,
            "k": self.k,
            "k_factor": self.k_factor,
            "queries": self.queries,
            "sweep": self.sweep,
        }


class ExactOracle:
    """Exact inner-product search over a set of vectors keyed by chunk ids.

    With a ``cache`` (``ExactCache``) searches update the exact lists a previous build kept
    instead of scoring every vector again; the hits are the same.
    """

    def __init__(
        self, ids: np.ndarray, vectors: np.ndarray, cache: ExactCache | None = None
    ) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(ids) != len(vectors):
            raise CodeintelError(f"oracle: {len(ids)} ids but vectors of shape {vectors.shape}")
        self.ids = ids
        self.vectors = vectors
        self.cache = cache
        self._by_id = np.argsort(ids, kind="stable")

    @classmethod
    def from_index(cls, index: faiss.Index) -> ExactOracle:
        """Return the oracle over the vectors an id-keyed index holds (reconstructed by id)."""
        ids = faiss_store.index_ids(index)
        return cls(ids, index.reconstruct_batch(ids) if len(ids) else np.zeros((0, index.d)))

    @property
    def d(self) -> int:
        return self.vectors.shape[1]

    def search(self, queries: np.ndarray, k: int) -> faiss_store.SearchHits:
        """Return exact top-``k`` chunk ids (-1 pads) and scores per query row."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if self.cache is not None:
            return self.cache.search(self, queries, k)
        return self.search_rows(queries, np.arange(len(self.ids)), k)

    def search_rows(self, queries: np.ndarray, rows: np.ndarray, k: int) -> faiss_store.SearchHits:
        """Return the exact top-``k`` chunk ids and scores per query among the vectors at
        ``rows`` (ascending).

        A flat index over those rows in their order: FAISS scores each pair the same way
        whatever else the index holds, and breaks ties by row order, so on rows that hold
        every vector scoring at least a query's k-th score this is the search of all rows.
        """
        flat = faiss.IndexFlatIP(self.d)
        flat.add(self.vectors if len(rows) == len(self.ids) else self.vectors[rows])
        hits = faiss_store.search(flat, queries, k)
        found = np.where(hits.ids >= 0, rows[np.maximum(hits.ids, 0)], 0)
        ids = np.where(hits.ids >= 0, self.ids[found], -1)
        return faiss_store.SearchHits(ids=ids, scores=hits.scores)

    def rows_of(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (the row of each of ``ids``, whether the oracle holds it)."""
        sorted_ids = self.ids[self._by_id]
        if len(sorted_ids) == 0:
            return np.zeros(np.shape(ids), np.int64), np.zeros(np.shape(ids), bool)
        places = np.clip(np.searchsorted(sorted_ids, ids), 0, len(sorted_ids) - 1)
        return self._by_id[places], (ids != -1) & (sorted_ids[places] == ids)

    def rescore(self, queries: np.ndarray, hits: faiss_store.SearchHits) -> faiss_store.SearchHits:
        """Return ``hits`` with exact inner products in place of the index's scores.

        Quantized codes (PQ, SQ) approximate the scores; ``recall_at_k`` compares scores
        with the exact k-th score to count ties, so it must see exact ones. Ids the oracle
        does not hold score -inf.
        """
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        rows, held = self.rows_of(hits.ids)
        if len(self.ids) == 0:
            return faiss_store.SearchHits(hits.ids, np.full(hits.ids.shape, -np.inf, np.float32))
        exact = np.einsum("qd,qkd->qk", queries, self.vectors[rows])
        return faiss_store.SearchHits(hits.ids, np.where(held, exact, -np.inf).astype(np.float32))


@dataclass(frozen=True)
class _ExactLists:
    """What ``ExactCache`` keeps: per query, every vector scoring above its floor.

    ``known_ids``/``known_scores`` (-1 / -inf pads) hold, for each query, every vector of
    the corpus (``corpus_ids`` with ``corpus_hashes``, the xxh64 of each vector's bytes)
    whose exact score exceeds ``floors`` — all of them, as FAISS scored them.
    """

    queries_xxh64: str
    corpus_ids: np.ndarray  # sorted
    corpus_hashes: np.ndarray  # uint64, aligned with corpus_ids
    known_ids: np.ndarray  # (queries, depth)
    known_scores: np.ndarray
    floors: np.ndarray  # (queries,)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "corpus_ids": self.corpus_ids,
            "corpus_hashes": self.corpus_hashes,
            "known_ids": self.known_ids,
            "known_scores": self.known_scores,
            "floors": self.floors,
        }

    def checksum(self) -> str:
        """Return the xxh64 of every field (the file is trusted only when it matches)."""
        parts = [self.queries_xxh64, faiss.__version__]
        parts += [
            f"{name}:{a.dtype}:{a.shape}:{xxh64_bytes(a.tobytes())}"
            for name, a in self.arrays().items()
        ]
        return xxh64_bytes("\n".join(parts).encode())


@dataclass
class ExactCache:
    """Exact top-k lists of fixed query vectors kept between builds in one file (``path``).

    A rebuild changes a few vectors of a corpus of 10⁵: scoring only the changed ones
    against the kept lists gives the same hits as scoring all. Each query keeps every
    vector scoring above a floor (the ``EXACT_CACHE_DEPTH``·k-th score of a full search);
    a later corpus drops the gone and changed vectors from those lists and scores the new
    and changed ones, and a query whose kept vectors above its floor are still ≥ k is
    answered by a flat search over the kept and added vectors alone, which holds every
    vector that can be among its top k. Otherwise every vector is searched and the lists
    are kept afresh. The lists are trusted only for the same query vectors (xxh64),
    corpus vectors matched by id and xxh64 of their bytes, the same FAISS version and a
    file whose checksum matches; anything else is a full search. ``save`` writes the
    lists of the last search (atomically).
    """

    path: Path
    _lists: _ExactLists | None = None
    updated: bool = False  # the last search updated kept lists rather than searching all

    def search(self, oracle: ExactOracle, queries: np.ndarray, k: int) -> faiss_store.SearchHits:
        """Return ``oracle``'s exact top-``k`` hits of ``queries`` (as ``search_rows`` over
        every row), through the kept lists when they apply."""
        key = f"{queries.shape}:{xxh64_bytes(queries.tobytes())}"
        hashes = _vector_hashes(oracle.vectors)
        depth = EXACT_CACHE_DEPTH * k
        ids = oracle.ids[oracle._by_id]
        if len(ids) <= depth or np.any(ids[1:] == ids[:-1]):
            self._lists = None
            return oracle.search_rows(queries, np.arange(len(oracle.ids)), k)
        kept = self._lists if self._lists is not None else self._load()
        if (
            kept is not None
            and kept.queries_xxh64 == key
            and kept.known_ids.shape == (len(queries), depth)
        ):
            found = _updated_lists(oracle, queries, k, kept, hashes)
            if found is not None:
                self.updated = True
                self._lists = found[1]
                return found[0]
        self.updated = False
        deep = oracle.search_rows(queries, np.arange(len(oracle.ids)), depth)
        floors = deep.scores[:, depth - 1].copy()
        lists = _lists_above(key, oracle, hashes, deep, floors)
        self._lists = lists
        found = _hits_from_lists(oracle, queries, k, lists)
        return (
            found
            if found is not None
            else oracle.search_rows(queries, np.arange(len(oracle.ids)), k)
        )

    def save(self) -> None:
        """Write the lists of the last search; without any, remove the file."""
        if self._lists is None:
            self.path.unlink(missing_ok=True)
            return
        lists = self._lists
        with atomic_path(self.path) as tmp, open(tmp, "wb") as handle:
            np.savez(
                handle,
                queries_xxh64=np.array(lists.queries_xxh64),
                faiss_version=np.array(faiss.__version__),
                checksum=np.array(lists.checksum()),
                **lists.arrays(),
            )

    def _load(self) -> _ExactLists | None:
        if not self.path.is_file():
            return None
        try:
            with np.load(self.path, allow_pickle=False) as data:
                if str(data["faiss_version"]) != faiss.__version__:
                    return None
                lists = _ExactLists(
                    queries_xxh64=str(data["queries_xxh64"]),
                    corpus_ids=data["corpus_ids"],
                    corpus_hashes=data["corpus_hashes"],
                    known_ids=data["known_ids"],
                    known_scores=data["known_scores"],
                    floors=data["floors"],
                )
                checksum = str(data["checksum"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None
        return lists if lists.checksum() == checksum else None


def _vector_hashes(vectors: np.ndarray) -> np.ndarray:
    """Return the xxh64 of each row's bytes."""
    return np.fromiter((xxhash.xxh64_intdigest(row) for row in vectors), np.uint64, len(vectors))


def _lists_above(
    key: str,
    oracle: ExactOracle,
    hashes: np.ndarray,
    deep: faiss_store.SearchHits,
    floors: np.ndarray,
) -> _ExactLists:
    """Return the lists to keep: the hits of ``deep`` scoring above each query's floor."""
    above = (deep.ids != -1) & (deep.scores > floors[:, None])
    return _ExactLists(
        queries_xxh64=key,
        corpus_ids=oracle.ids[oracle._by_id],
        corpus_hashes=hashes[oracle._by_id],
        known_ids=np.where(above, deep.ids, -1),
        known_scores=np.where(above, deep.scores, -np.inf).astype(np.float32),
        floors=floors.astype(np.float32),
    )


def _hits_from_lists(
    oracle: ExactOracle, queries: np.ndarray, k: int, lists: _ExactLists
) -> faiss_store.SearchHits | None:
    """Return the exact top-``k`` hits from a flat search over the listed vectors, or None
    when a query lists fewer than ``k`` (its top k may hold vectors not listed)."""
    if np.any((lists.known_ids != -1).sum(axis=1) < k):
        return None
    rows, _ = oracle.rows_of(lists.known_ids[lists.known_ids != -1])
    return oracle.search_rows(queries, np.unique(rows), k)


def _updated_lists(
    oracle: ExactOracle,
    queries: np.ndarray,
    k: int,
    kept: _ExactLists,
    hashes: np.ndarray,
) -> tuple[faiss_store.SearchHits, _ExactLists] | None:
    """Return (the exact top-``k`` hits, the lists to keep) of ``oracle``'s corpus from
    lists kept for another corpus, or None when some query would list fewer than ``k``.

    A vector scoring above a query's floor in the new corpus is either one the kept lists
    hold (same id, same bytes) or one added or changed since; a flat search over those
    rows finds each query's vectors above its floor, and its top k when there are k.
    """
    places = np.clip(np.searchsorted(kept.corpus_ids, oracle.ids), 0, len(kept.corpus_ids) - 1)
    same = (kept.corpus_ids[places] == oracle.ids) & (kept.corpus_hashes[places] == hashes)
    listed = kept.known_ids != -1
    rows, held = oracle.rows_of(kept.known_ids)
    still = listed & held & same[rows]
    candidates = np.unique(np.concatenate([rows[still], np.flatnonzero(~same)]))
    if len(candidates) < k:
        return None
    depth = kept.known_ids.shape[1]
    deep = oracle.search_rows(queries, candidates, min(depth, len(candidates)))
    above = (deep.ids != -1) & (deep.scores > kept.floors[:, None])
    if np.any(above.sum(axis=1) < k):
        return None
    hits = oracle.search_rows(queries, candidates, k)
    if deep.ids.shape[1] < depth:
        pad = depth - deep.ids.shape[1]
        deep = faiss_store.SearchHits(
            np.pad(deep.ids, ((0, 0), (0, pad)), constant_values=-1),
            np.pad(deep.scores, ((0, 0), (0, pad)), constant_values=-np.inf),
        )
        floors = kept.floors
    else:
        floors = np.maximum(kept.floors, deep.scores[:, depth - 1])
    key = kept.queries_xxh64
    return hits, _lists_above(key, oracle, hashes, deep, floors)


def recall_at_k(
    ann: faiss_store.SearchHits, exact: faiss_store.SearchHits, k: int, depth: int | None = None
) -> float:
    """Return the mean fraction of the exact top ``k`` found in the ANN top ``depth`` (default
    ``k``; ties count).

    Queries whose exact list is empty are skipped; with none left the recall is 1.0.
    """
    depth = depth or k
    total = 0.0
    counted = 0
    for q in range(len(exact.ids)):
        truth = [int(i) for i in exact.ids[q][:k] if i != -1]
        if not truth:
            continue
        floor = float(exact.scores[q][len(truth) - 1]) - TIE_EPSILON
        found = 0
        truth_set = set(truth)
        for i, score in zip(ann.ids[q][:depth], ann.scores[q][:depth], strict=True):
            if i != -1 and (int(i) in truth_set or float(score) >= floor):
                found += 1
        total += min(found, len(truth)) / len(truth)
        counted += 1
    return total / counted if counted else 1.0


def knob_candidates(index: faiss.Index, k: int) -> list[str]:
    """Return the knob settings to sweep for ``index``, cheapest first (``[""]`` for Flat)."""
    ivf = faiss_store.ivf_of(index)
    if ivf is not None:
        values = [1 << p for p in range(32) if 1 << p < ivf.nlist] + [ivf.nlist]
        return [f"nprobe={v}" for v in values]
    if _hnsw_of(index) is not None:
        return [f"efSearch={v}" for v in EF_SEARCH_VALUES if v >= k]
    return [""]


def tune_index(
    index: faiss.Index,
    queries: np.ndarray,
    k: int = 10,
    target_recall: float = TARGET_RECALL,
    oracle: ExactOracle | None = None,
    k_factor: float = 1.0,
    candidates: list[str] | None = None,
    repeats: int = 3,
) -> OperatingPoint:
    """Sweep the index's knobs cheapest first; set and return the cheapest meeting the target.

    ``oracle`` is the exact search over the same vectors (built from the index by
    reconstruction when None). ``candidates`` replaces the sweep (one entry: measure that
    point). Latency is the best of ``repeats`` searches. When no point meets the target,
    the point with the best recall is set and returned with ``met=False``. Raises
    ``CodeintelError`` when the query dimension differs from the index's or there are no
    queries.
    """
    queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    if len(queries) == 0:
        raise CodeintelError("tuning needs at least one query vector")
    if queries.shape[1] != index.d:
        raise CodeintelError(
            f"query dimension {queries.shape[1]} differs from the index's {index.d}"
        )
    oracle = oracle or ExactOracle.from_index(index)
    if oracle.d != index.d:
        raise CodeintelError(f"oracle dimension {oracle.d} differs from the index's {index.d}")
    exact = oracle.search(queries, k)
    depth = math.ceil(k * k_factor)
    sweep: list[dict[str, Any]] = []
    chosen: dict[str, Any] | None = None
    for knobs in candidates if candidates is not None else knob_candidates(index, k):
        faiss_store.set_search_parameters(index, knobs)
        hits, latency = _timed_search(index, queries, depth, repeats)
        recall = recall_at_k(oracle.rescore(queries, hits), exact, k, depth)
        point = {"knobs": knobs, "recall": recall, "latency_ms": latency}
        sweep.append(point)
        # Cost grows with every knob swept here, so the first point reaching the target is cheapest.
        if point["recall"] >= target_recall:
            chosen = point
            break
    met = chosen is not None
    if chosen is None:
        chosen = max(sweep, key=lambda p: (p["recall"], -p["latency_ms"]))
    faiss_store.set_search_parameters(index, chosen["knobs"])
    return OperatingPoint(
        knobs=chosen["knobs"],
        recall=chosen["recall"],
        latency_ms=chosen["latency_ms"],
        met=met,
        target_recall=target_recall,
        k=k,
        queries=len(queries),
        sweep=sweep,
        k_factor=k_factor,
    )


def sample_query_vectors(vectors: np.ndarray, count: int = 200, seed: int = 0) -> np.ndarray:
    """Return ``count`` rows of ``vectors`` (all when fewer), chosen deterministically by ``seed``.

    A fallback only: indexed vectors sit at the centre of their own IVF list, so they
    flatter recall. On 100k jittered MiniLM vectors they reached recall@10 0.99 at
    ``nprobe=1`` where embedded text queries needed ``nprobe=16`` (0.56 at 1). Tune
    with embedded queries (e.g. ``synthetic_queries``) whenever there are any.
    """
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(vectors), size=min(count, len(vectors)), replace=False)
    return np.ascontiguousarray(vectors[np.sort(rows)], dtype=np.float32)


def audit_sidecar(
    *,
    index: faiss.Index,
    factory: str,
    point: OperatingPoint,
    build_version: str,
    metric: str = "inner_product",
    **extra: Any,
) -> dict[str, Any]:
    """Return the audit record of a tuned index (factory, knobs, metric, size, measured figures).

    ``extra`` entries (checksums, index name, timestamps) are added as given.
    """
    return {
        "factory": factory,
        "knobs": point.knobs,
        "metric": metric,
        "dim": int(index.d),
        "ntotal": int(index.ntotal),
        "build_version": build_version,
        "measured_recall": point.recall,
        "recall_k": point.k,
        "k_factor": point.k_factor,
        "target_recall": point.target_recall,
        "target_met": point.met,
        "latency_ms": point.latency_ms,
        "tune_queries": point.queries,
        "sweep": point.sweep,
        "faiss_version": faiss.__version__,
        **extra,
    }


def tune_and_lock(
    index: faiss.Index,
    ids: np.ndarray,
    vectors: np.ndarray,
    embedder: Callable[[], Embedder],
    factory: str,
    layout: ArtifactLayout,
    build_version: str,
    target_recall: float,
    k: int,
    queries: int,
    **extra: Any,
) -> tuple[dict[str, Any], OperatingPoint]:
    """Tune the index's knobs against exact search, write index and audit sidecar; return both.

    The cheapest operating point reaching ``target_recall`` is locked in the sidecar,
    which searches and the recall check read. ``embedder`` is called (the model loaded)
    only when the index has knobs to tune with text queries; those query vectors are then
    kept beside the index (``save_tuning_queries``) for updates to re-measure recall with.
    ``extra`` entries join the sidecar.
    """
    # An exact index has nothing to tune and recall 1.0 for any query: a sample of the
    # corpus vectors measures its latency without making and embedding text queries.
    exact = None
    if knob_candidates(index, k) == [""]:
        query_vectors = sample_query_vectors(vectors, queries)
        layout.faiss_tuning_queries.unlink(missing_ok=True)
        layout.faiss_tuning_exact.unlink(missing_ok=True)
    else:
        query_vectors = tuning_queries(layout, vectors, embedder(), queries)
        extra["tuning_queries"] = save_tuning_queries(layout.faiss_tuning_queries, query_vectors)
        exact = ExactCache(layout.faiss_tuning_exact)
    oracle = ExactOracle(ids, vectors, exact)
    point = tune_index(index, query_vectors, k=k, target_recall=target_recall, oracle=oracle)
    faiss_store.write_index(index, layout.faiss_index())
    audit = lock_written_index(index, factory, point, layout, build_version, **extra)
    if exact is not None:
        exact.save()  # the exact lists an update re-measures recall with
    return audit, point


def lock_written_index(
    index: faiss.Index,
    factory: str,
    point: OperatingPoint,
    layout: ArtifactLayout,
    build_version: str,
    **extra: Any,
) -> dict[str, Any]:
    """Write the audit sidecar locking ``point`` on the build's index file (already written
    from ``index``); return the audit. ``extra`` entries join it."""
    audit = audit_sidecar(
        index=index,
        factory=factory,
        point=point,
        build_version=build_version,
        index_name=DEFAULT_INDEX_NAME,
        built_at=datetime.now(UTC).isoformat(),
        index_xxh64=xxh64_file(layout.faiss_index()),
        chunks_xxh64=xxh64_file(layout.chunks),
        **extra,
    )
    write_json_atomic(layout.faiss_audit(), audit)
    return audit


def recheck_locked_knobs(
    index: faiss.Index,
    queries: np.ndarray,
    oracle: ExactOracle,
    knobs: str,
    target_recall: float,
    k: int,
) -> tuple[OperatingPoint, bool]:
    """Return the operating point after measuring recall at the locked ``knobs`` again, and
    whether the knobs changed: kept while they reach ``target_recall``, swept again (cheapest
    first) when they no longer do. The locked point's latency is one search's: the recall is
    what an update re-measures, and the sweep that chose the knobs took the best of three."""
    point = tune_index(
        index,
        queries,
        k=k,
        target_recall=target_recall,
        oracle=oracle,
        candidates=[knobs],
        repeats=1,
    )
    if point.met:
        return point, False
    swept = tune_index(index, queries, k=k, target_recall=target_recall, oracle=oracle)
    return swept, swept.knobs != knobs


def save_tuning_queries(path: Path, queries: np.ndarray) -> dict[str, Any]:
    """Write the tuning query vectors to ``path`` (``.npy``, atomically); return the audit's
    record of them (file name, xxh64, count, dimension)."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        # A file object: given a path, numpy would append ".npy" to the temporary name.
        np.save(handle, queries, allow_pickle=False)
    return {
        "file": path.name,
        "xxh64": xxh64_file(path),
        "count": int(queries.shape[0]),
        "dim": int(queries.shape[1]),
    }


def load_tuning_queries(path: Path, record: Any, dim: int) -> np.ndarray:
    """Return the tuning query vectors at ``path`` that the audit's ``record`` describes.

    Raises ``BadInputError`` naming the reason when the record is missing, the file is
    missing or differs from its checksum, or it holds no finite matrix of dimension ``dim``.
    """
    if not isinstance(record, dict) or not {"xxh64", "count", "dim"} <= record.keys():
        raise BadInputError("the audit sidecar records no tuning query vectors")
    if not path.exists():
        raise BadInputError(f"the tuning query vectors {path.name} are missing")
    if xxh64_file(path) != record["xxh64"]:
        raise BadInputError(f"the tuning query vectors {path.name} differ from their checksum")
    try:
        queries = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise BadInputError(f"the tuning query vectors {path.name} are unreadable: {exc}") from exc
    expected = (record["count"], dim)
    if queries.ndim != 2 or queries.shape != expected or not np.isfinite(queries).all():
        raise BadInputError(
            f"the tuning query vectors {path.name} are not a finite {expected} matrix "
            f"(shape {queries.shape})"
        )
    if queries.shape[0] == 0:
        raise BadInputError(f"the tuning query vectors {path.name} are empty")
    return np.ascontiguousarray(queries, dtype=np.float32)


def tuning_queries(
    layout: ArtifactLayout, vectors: np.ndarray, embedder: Embedder, count: int
) -> np.ndarray:
    """Return query vectors to tune with: real text queries made from the chunks.

    Corpus vectors make IVF look far better than it is for text queries (nprobe=1 gave
    0.99 recall on them but 0.56 on real queries), so they are only the fallback.
    """
    columns = ["id", "uri", "start_line", "end_line", "start_byte", "content", "lang"]
    chunks = pq.read_table(layout.chunks, columns=columns)
    texts = [q.text for q in synthetic_queries(None, None, chunks, count=count)]
    if not texts:
        return sample_query_vectors(vectors, count)
    return embedder.embed(texts)


def operator_knobs(
    index: faiss.Index, index_path: Path, nprobe: int | None, ef_search: int | None
) -> str:
    """Return the ParameterSpace string of an operator's knobs (``""`` when none are given).

    Raises ``BadInputError`` when the index family has no such knob (``nprobe`` needs
    IVF, ``efSearch`` HNSW: the index itself or an IVF's quantizer) or a value exceeds
    what the index has (``nprobe`` above its list count).
    """
    family = faiss_store.index_type(index)
    ivf, hnsw = faiss_store.ivf_of(index), _hnsw_of(index)
    parts = []
    if nprobe is not None:
        if ivf is None:
            raise BadInputError(f"index {index_path} is {family}: it has no nprobe (an IVF knob)")
        if nprobe > ivf.nlist:
            raise BadInputError(
                f"index {index_path}: --nprobe {nprobe} exceeds its {ivf.nlist} lists"
            )
        parts.append(f"nprobe={nprobe}")
    if ef_search is not None:
        quantizer = faiss.downcast_index(ivf.quantizer) if ivf is not None else None
        if hnsw is not None:
            parts.append(f"efSearch={ef_search}")
        elif isinstance(quantizer, faiss.IndexHNSW):
            parts.append(f"quantizer_efSearch={ef_search}")
        else:
            raise BadInputError(
                f"index {index_path} is {family}: it has no efSearch (an HNSW knob)"
            )
    return ",".join(parts)


def lock_index_file(
    index_path: Path,
    *,
    nprobe: int | None = None,
    ef_search: int | None = None,
    k_factor: float | None = None,
    k: int = 10,
    queries: int = 200,
    target_recall: float = TARGET_RECALL,
) -> dict[str, Any]:
    """Lock an operating point on an index file and write its audit sidecar; return the audit.

    With knobs (``nprobe``, ``ef_search``, ``k_factor``) that point is measured as given
    (an operator's lock); without them the family's knobs are swept and the cheapest point reaching
    ``target_recall`` is locked. Recall and latency are measured against exact search
    over the index's own vectors, on ``queries`` of them sampled as queries, reading the
    ANN list ⌈k·k_factor⌉ deep. The index file is not rewritten (searches apply the
    sidecar's knobs); fields of an existing sidecar (index name, build version, chunk
    checksum) are kept. Raises ``BadInputError`` when the file is not a FAISS index or a
    knob does not fit its family; nothing is written then.
    """
    index, ids = faiss_store.read_keyed_index(index_path)
    knobs = operator_knobs(index, index_path, nprobe, ef_search)
    if len(ids) == 0:
        raise BadInputError(f"index {index_path} is empty: nothing to measure")
    vectors = index.reconstruct_batch(ids)
    explicit = nprobe is not None or ef_search is not None or k_factor is not None
    point = tune_index(
        index,
        sample_query_vectors(vectors, queries),
        k=k,
        target_recall=target_recall,
        oracle=ExactOracle(ids, vectors),
        k_factor=1.0 if k_factor is None else k_factor,
        candidates=[knobs] if explicit else None,
    )
    old = faiss_store.read_audit(index_path) or {}
    index_name, build_version, built_at = faiss_store.index_identity(index_path, old or None)
    audit = audit_sidecar(
        index=index,
        factory=old.get("factory") or faiss_store.index_type(index),
        point=point,
        build_version=build_version,
        index_name=index_name,
        built_at=built_at.isoformat(),
        index_type=faiss_store.index_type(index),
        index_xxh64=xxh64_file(index_path),
        chunks_xxh64=old.get("chunks_xxh64"),
        locked_by="operator" if explicit else "sweep",
        locked_at=datetime.now(UTC).isoformat(),
        query_source="sampled index vectors",
    )
    write_json_atomic(audit_beside(index_path), audit)
    return audit


def _timed_search(
    index: faiss.Index, queries: np.ndarray, k: int, repeats: int = 3
) -> tuple[faiss_store.SearchHits, float]:
    """Return the hits and the best-of-``repeats`` latency in ms per query."""
    best = float("inf")
    hits = None
    for _ in range(repeats):
        start = time.perf_counter()
        hits = faiss_store.search(index, queries, k)
        best = min(best, time.perf_counter() - start)
    return hits, 1000.0 * best / len(queries)


def _hnsw_of(index: faiss.Index) -> faiss.IndexHNSW | None:
    inner = faiss.downcast_index(index)
    if isinstance(inner, faiss.IndexIDMap | faiss.IndexIDMap2):
        inner = faiss.downcast_index(inner.index)
    return inner if isinstance(inner, faiss.IndexHNSW) else None
