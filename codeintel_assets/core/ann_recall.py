"""ANN recall on files: a FAISS index against exact search over a catalog's chunk vectors.

``indexctl eval recall --duckdb F --index F [--queries F]``: the index is searched at its
locked operating point (the knobs of the sidecar beside it), the oracle is exact
inner-product search over the catalog's ``v_chunks`` embeddings, and the pool holds the
``faiss`` (top ⌈k·k_factor⌉) and ``oracle`` (top k) lists of every query vector. Query
vectors come from a ``.npy`` matrix or a Parquet file, or are sampled from the index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from codeintel_assets.core import faiss_store
from codeintel_assets.core.catalog import CatalogReader
from codeintel_assets.core.errors import BadInputError
from codeintel_assets.core.schemas import EVAL_POOL
from codeintel_assets.core.tuning import ExactOracle, recall_at_k, sample_query_vectors

VECTOR_COLUMNS = ("embedding", "vector")


@dataclass(frozen=True)
class AnnRecall:
    """The pool (``EVAL_POOL``: sources ``faiss`` and ``oracle``), its metrics and report."""

    pool: pa.Table
    metrics: dict[str, Any]
    report_markdown: str


def evaluate_index_file(
    index_path: Path,
    catalog_path: Path,
    queries_path: Path | None = None,
    *,
    k: int = 10,
    k_factor: float = 2.0,
    sample: int = 200,
) -> AnnRecall:
    """Return the ANN-vs-exact evaluation of an index file against a catalog.

    Raises ``BadInputError`` when the index is not a FAISS index, its ids are not exactly
    the catalog's chunk ids, or the query vectors are unreadable or of another dimension.
    """
    audit = faiss_store.read_audit(index_path) or {}
    index, held = faiss_store.read_keyed_index(index_path, audit.get("knobs", ""))
    with CatalogReader(catalog_path) as reader:
        chunk_ids, vectors = reader.chunk_vectors()
    faiss_store.check_ids_match(held, chunk_ids, index_path, catalog_path)
    if vectors.shape[1] != index.d:
        raise BadInputError(
            f"catalog {catalog_path} has {vectors.shape[1]}-dimensional embeddings but "
            f"index {index_path} has dimension {index.d}"
        )
    if queries_path is None:
        queries = sample_query_vectors(index.reconstruct_batch(held), sample)
        query_ids = [f"sample-{row}" for row in range(len(queries))]
        source = f"{len(queries)} vectors sampled from the index"
    else:
        query_ids, queries = read_query_vectors(queries_path, index.d)
        source = str(queries_path)
    oracle = ExactOracle(chunk_ids, vectors)
    result = ann_recall_pool(index, oracle, query_ids, queries, k=k, k_factor=k_factor)
    result.metrics.update(
        index=str(index_path),
        catalog=str(catalog_path),
        knobs=audit.get("knobs", ""),
        query_source=source,
    )
    return AnnRecall(result.pool, result.metrics, _report(result.metrics))


def ann_recall_pool(
    index: Any,
    oracle: ExactOracle,
    query_ids: list[str],
    queries: np.ndarray,
    *,
    k: int,
    k_factor: float,
) -> AnnRecall:
    """Return the ``faiss``/``oracle`` pool of ``queries`` and the ANN recall figures.

    ``ann_recall`` is recall@k (the ANN's top k against the exact top k, ties count);
    ``ann_recall_at_depth`` counts the exact top k found in the ANN's top ⌈k·k_factor⌉.
    """
    depth = math.ceil(k * k_factor)
    ann = faiss_store.search(index, queries, depth)
    exact = oracle.search(queries, k)
    rows: dict[str, list] = {name: [] for name in EVAL_POOL.names}
    for row, query_id in enumerate(query_ids):
        for source, hits in (("faiss", ann), ("oracle", exact)):
            ranked = [
                (int(i), float(s)) for i, s in zip(hits.ids[row], hits.scores[row], strict=True)
            ]
            for rank, (chunk_id, score) in enumerate(
                [(i, s) for i, s in ranked if i != -1], start=1
            ):
                rows["query_id"].append(query_id)
                rows["source"].append(source)
                rows["rank"].append(rank)
                rows["chunk_id"].append(chunk_id)
                rows["score"].append(score)
    metrics = {
        "k": k,
        "k_factor": k_factor,
        "queries": len(query_ids),
        "ann_recall": recall_at_k(ann, exact, k),
        "ann_recall_at_depth": recall_at_k(ann, exact, k, depth),
        "depth": depth,
    }
    pool = pa.table(rows, schema=EVAL_POOL)
    return AnnRecall(pool, metrics, _report(metrics))


def read_query_vectors(path: Path, dim: int) -> tuple[list[str], np.ndarray]:
    """Return (query ids, vectors) from a ``.npy`` matrix or a Parquet file.

    NPY: a 2-D float array, one query per row (ids ``q0``, ``q1``...). Parquet: a list
    column ``embedding`` or ``vector`` and optionally a string ``query_id``. Raises
    ``BadInputError`` naming the file when it is unreadable, empty, not 2-D, of another
    dimension than ``dim`` or holds non-finite values.
    """
    if not path.is_file():
        raise BadInputError(f"query vectors {path}: file not found")
    if path.suffix.lower() == ".npy":
        try:
            vectors = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise BadInputError(f"query vectors {path}: not a NumPy .npy file ({exc})") from exc
        ids = None
    else:
        ids, vectors = _parquet_vectors(path)
    if vectors.ndim != 2 or len(vectors) == 0 or not np.issubdtype(vectors.dtype, np.number):
        raise BadInputError(
            f"query vectors {path}: expected a non-empty 2-D float matrix, got shape "
            f"{vectors.shape} of {vectors.dtype}"
        )
    if vectors.shape[1] != dim:
        raise BadInputError(
            f"query vectors {path}: dimension {vectors.shape[1]}, but the index has {dim}"
        )
    if not np.isfinite(vectors).all():
        raise BadInputError(f"query vectors {path}: contains NaN or infinite values")
    ids = ids or [f"q{row}" for row in range(len(vectors))]
    return ids, np.ascontiguousarray(vectors, dtype=np.float32)


def _parquet_vectors(path: Path) -> tuple[list[str] | None, np.ndarray]:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise BadInputError(f"query vectors {path}: not a Parquet or .npy file ({exc})") from exc
    column = next((c for c in VECTOR_COLUMNS if c in table.column_names), None)
    if column is None:
        raise BadInputError(
            f"query vectors {path}: no vector column (expected one of {', '.join(VECTOR_COLUMNS)})"
        )
    values = table.column(column).to_pylist()
    lengths = {len(v) if v is not None else -1 for v in values}
    if len(lengths) > 1 or -1 in lengths:
        raise BadInputError(f"query vectors {path}: column '{column}' has rows of unequal length")
    ids = None
    if "query_id" in table.column_names:
        ids = [str(i) for i in table.column("query_id").to_pylist()]
    return ids, np.asarray(values, dtype=np.float32)


def _report(metrics: dict[str, Any]) -> str:
    k = metrics["k"]
    lines = [
        "# ANN recall against exact search",
        "",
        f"- queries: {metrics['queries']} ({metrics.get('query_source', 'given vectors')})",
        f"- knobs: {metrics.get('knobs') or '(none)'}",
        f"- recall@{k}: **{metrics['ann_recall']:.4f}**",
        f"- exact top {k} in the ANN's top {metrics['depth']} (k_factor "
        f"{metrics['k_factor']}): {metrics['ann_recall_at_depth']:.4f}",
    ]
    return "\n".join(lines) + "\n"
