"""Tune then lock: choose an ANN index's search knobs by measuring recall against exact search.

The knobs valid for the index type are swept from cheap to expensive (``nprobe``
for IVF, ``efSearch`` for HNSW, nothing for Flat) and set through FAISS's
``ParameterSpace``. At each point the recall@k of the index against an exact
inner-product search over the same vectors is measured, with latency. The
cheapest point that reaches the target is kept and left set on the index (it is
"locked" by recording it in the audit sidecar, which ``read_index`` re-applies).

Recall counts ties: an ANN hit whose score reaches the k-th exact score counts as
found even when the exact search listed another id with the same score, because
duplicated code gives identical vectors and either id is a correct answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import faiss
import numpy as np

from codeintel_assets.core import faiss_store
from codeintel_assets.core.errors import CodeintelError

# Scores within this of the k-th exact score count as ties (float rounding, FAISS #915).
TIE_EPSILON = 1e-5
EF_SEARCH_VALUES = (16, 32, 64, 128, 256, 512, 1024)


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "knobs": self.knobs,
            "recall": self.recall,
            "latency_ms": self.latency_ms,
            "met": self.met,
            "target_recall": self.target_recall,
            "k": self.k,
            "queries": self.queries,
            "sweep": self.sweep,
        }


class ExactOracle:
    """Exact inner-product search over a set of vectors keyed by chunk ids."""

    def __init__(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(ids) != len(vectors):
            raise CodeintelError(f"oracle: {len(ids)} ids but vectors of shape {vectors.shape}")
        self.ids = ids
        self.flat = faiss.IndexFlatIP(vectors.shape[1])
        self.flat.add(vectors)

    @classmethod
    def from_index(cls, index: faiss.Index) -> ExactOracle:
        """Return the oracle over the vectors an id-keyed index holds (reconstructed by id)."""
        ids = faiss_store.index_ids(index)
        return cls(ids, index.reconstruct_batch(ids) if len(ids) else np.zeros((0, index.d)))

    @property
    def d(self) -> int:
        return self.flat.d

    def search(self, queries: np.ndarray, k: int) -> faiss_store.SearchHits:
        """Return exact top-``k`` chunk ids (-1 pads) and scores per query row."""
        hits = faiss_store.search(self.flat, queries, k)
        ids = np.where(hits.ids >= 0, self.ids[np.maximum(hits.ids, 0)], -1)
        return faiss_store.SearchHits(ids=ids, scores=hits.scores)


def recall_at_k(ann: faiss_store.SearchHits, exact: faiss_store.SearchHits, k: int) -> float:
    """Return the mean fraction of the exact top ``k`` found in the ANN top ``k`` (ties count).

    Queries whose exact list is empty are skipped; with none left the recall is 1.0.
    """
    total = 0.0
    counted = 0
    for q in range(len(exact.ids)):
        truth = [int(i) for i in exact.ids[q][:k] if i != -1]
        if not truth:
            continue
        floor = float(exact.scores[q][len(truth) - 1]) - TIE_EPSILON
        found = 0
        truth_set = set(truth)
        for i, score in zip(ann.ids[q][:k], ann.scores[q][:k], strict=True):
            if i != -1 and (int(i) in truth_set or float(score) >= floor):
                found += 1
        total += min(found, len(truth)) / len(truth)
        counted += 1
    return total / counted if counted else 1.0


def knob_candidates(index: faiss.Index, k: int) -> list[str]:
    """Return the knob settings to sweep for ``index``, cheapest first (``[""]`` for Flat)."""
    ivf = _ivf_of(index)
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
    target_recall: float = 0.95,
    oracle: ExactOracle | None = None,
) -> OperatingPoint:
    """Sweep the index's knobs cheapest first; set and return the cheapest meeting the target.

    ``oracle`` is the exact search over the same vectors (built from the index by
    reconstruction when None). When no point meets the target, the point with the best
    recall is set and returned with ``met=False``. Raises ``CodeintelError`` when the
    query dimension differs from the index's or there are no queries.
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
    sweep: list[dict[str, Any]] = []
    chosen: dict[str, Any] | None = None
    for knobs in knob_candidates(index, k):
        faiss_store.set_search_parameters(index, knobs)
        hits, latency = _timed_search(index, queries, k)
        point = {"knobs": knobs, "recall": recall_at_k(hits, exact, k), "latency_ms": latency}
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
        "target_recall": point.target_recall,
        "target_met": point.met,
        "latency_ms": point.latency_ms,
        "tune_queries": point.queries,
        "sweep": point.sweep,
        "faiss_version": faiss.__version__,
        **extra,
    }


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


def _ivf_of(index: faiss.Index) -> faiss.IndexIVF | None:
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def _hnsw_of(index: faiss.Index) -> faiss.IndexHNSW | None:
    inner = faiss.downcast_index(index)
    if isinstance(inner, faiss.IndexIDMap | faiss.IndexIDMap2):
        inner = faiss.downcast_index(inner.index)
    return inner if isinstance(inner, faiss.IndexHNSW) else None
