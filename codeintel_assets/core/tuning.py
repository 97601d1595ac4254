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
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pyarrow.parquet as pq

from codeintel_assets.core import faiss_store
from codeintel_assets.core.checksums import atomic_path, write_json_atomic, xxh64_file
from codeintel_assets.core.embedding import Embedder
from codeintel_assets.core.errors import BadInputError, CodeintelError
from codeintel_assets.core.layout import DEFAULT_INDEX_NAME, ArtifactLayout, audit_beside
from codeintel_assets.core.queries import synthetic_queries

# Scores within this of the k-th exact score count as ties (float rounding, FAISS #915).
TIE_EPSILON = 1e-5
EF_SEARCH_VALUES = (16, 32, 64, 128, 256, 512, 1024)

# ANN recall@k against exact search an index must reach (build, check, indexctl tune).
TARGET_RECALL = 0.95


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
    """Exact inner-product search over a set of vectors keyed by chunk ids."""

    def __init__(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(ids) != len(vectors):
            raise CodeintelError(f"oracle: {len(ids)} ids but vectors of shape {vectors.shape}")
        self.ids = ids
        self.flat = faiss.IndexFlatIP(vectors.shape[1])
        self.flat.add(vectors)
        self._by_id = np.argsort(ids, kind="stable")

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

    def rescore(self, queries: np.ndarray, hits: faiss_store.SearchHits) -> faiss_store.SearchHits:
        """Return ``hits`` with exact inner products in place of the index's scores.

        Quantized codes (PQ, SQ) approximate the scores; ``recall_at_k`` compares scores
        with the exact k-th score to count ties, so it must see exact ones. Ids the oracle
        does not hold score -inf.
        """
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        sorted_ids = self.ids[self._by_id]
        places = np.clip(np.searchsorted(sorted_ids, hits.ids), 0, max(len(sorted_ids) - 1, 0))
        held = (hits.ids != -1) & (sorted_ids[places] == hits.ids) if len(sorted_ids) else None
        if held is None:
            return faiss_store.SearchHits(hits.ids, np.full(hits.ids.shape, -np.inf, np.float32))
        rows = self._by_id[places]
        vectors = self.flat.reconstruct_batch(rows.ravel()).reshape(*rows.shape, self.d)
        exact = np.einsum("qd,qkd->qk", queries, vectors)
        return faiss_store.SearchHits(hits.ids, np.where(held, exact, -np.inf).astype(np.float32))


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
) -> OperatingPoint:
    """Sweep the index's knobs cheapest first; set and return the cheapest meeting the target.

    ``oracle`` is the exact search over the same vectors (built from the index by
    reconstruction when None). ``candidates`` replaces the sweep (one entry: measure that
    point). When no point meets the target, the point with the best recall is set and
    returned with ``met=False``. Raises ``CodeintelError`` when the query dimension
    differs from the index's or there are no queries.
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
        hits, latency = _timed_search(index, queries, depth)
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
    if knob_candidates(index, k) == [""]:
        query_vectors = sample_query_vectors(vectors, queries)
        layout.faiss_tuning_queries.unlink(missing_ok=True)
    else:
        query_vectors = tuning_queries(layout, vectors, embedder(), queries)
        extra["tuning_queries"] = save_tuning_queries(layout.faiss_tuning_queries, query_vectors)
    point = tune_index(
        index, query_vectors, k=k, target_recall=target_recall, oracle=ExactOracle(ids, vectors)
    )
    faiss_store.write_index(index, layout.faiss_index())
    return lock_written_index(index, factory, point, layout, build_version, **extra), point


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
    first) when they no longer do."""
    point = tune_index(
        index, queries, k=k, target_recall=target_recall, oracle=oracle, candidates=[knobs]
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
