"""The FAISS vector index: where it is built, written, read and searched.

Vectors are L2-normalized, so inner product is cosine similarity; the metric is
passed to ``index_factory`` (setting it afterwards silently keeps L2). Ids are
chunk ids: ``IDMap2`` around Flat/HNSW (reconstruct by id works), while an IVF
index keeps ids itself (``add_with_ids``) with a hashtable direct map, because
IDMap over IVF breaks removal and reconstruction.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pyarrow as pa

from codeintel_assets.core.checksums import atomic_path, xxh64_file
from codeintel_assets.core.errors import BadInputError, CodeintelError
from codeintel_assets.core.layout import audit_beside
from codeintel_assets.core.schemas import FAISS_IDMAP, write_parquet

FLAT_MAX_VECTORS = 50_000


@dataclass(frozen=True)
class SearchHits:
    """Top-k results per query: chunk ids (-1 pads) and inner-product scores."""

    ids: np.ndarray
    scores: np.ndarray


def choose_factory(count: int, flat_max: int = FLAT_MAX_VECTORS) -> str:
    """Return the factory string for a corpus of ``count`` vectors.

    Exact ``IDMap2,Flat`` up to ``flat_max``; above it ``IVF{n},Flat`` with
    n ≈ 4·√count lists (FAISS's rule of thumb, ≥ 39 training points per list).
    """
    if count <= flat_max:
        return "IDMap2,Flat"
    nlist = max(16, min(65536, int(4 * math.sqrt(count))))
    return f"IVF{nlist},Flat"


def ivf_flat_lists(factory: str) -> int | None:
    """Return the list count of an ``IVF{n},Flat`` factory string, or None for any other."""
    match = re.fullmatch(r"IVF(\d+),Flat", factory)
    return int(match.group(1)) if match else None


def build_index(ids: np.ndarray, vectors: np.ndarray, factory: str | None = None) -> faiss.Index:
    """Return an inner-product index over ``vectors`` keyed by ``ids``.

    Raises ``CodeintelError`` when ids contain -1 or shapes disagree.
    """
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(ids) != len(vectors):
        raise CodeintelError(f"ids ({len(ids)}) and vectors {vectors.shape} do not match")
    if (ids == -1).any():
        raise CodeintelError("chunk id -1 is reserved by FAISS for 'no result'")
    factory = factory or choose_factory(len(ids))
    index = faiss.index_factory(vectors.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    ivf = ivf_of(index)
    if ivf is not None:
        index.train(vectors)
        ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
    if len(ids):
        index.add_with_ids(vectors, ids)
    return index


def ivf_of(index: faiss.Index) -> faiss.IndexIVF | None:
    """Return the IVF index inside ``index`` (under an id map or a pre-transform), or None."""
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def index_ids(index: faiss.Index) -> np.ndarray:
    """Return the external ids in the index's internal (row) order."""
    if hasattr(index, "id_map"):
        return faiss.vector_to_array(faiss.downcast_index(index).id_map).astype(np.int64)
    ivf = ivf_of(index)
    if ivf is None:
        raise CodeintelError("index keeps no ids (expected IDMap2 or IVF)")
    invlists = ivf.invlists
    rows = []
    for list_no in range(ivf.nlist):
        size = invlists.list_size(list_no)
        if size:
            ptr = invlists.get_ids(list_no)
            rows.append(faiss.rev_swig_ptr(ptr, size).copy())
    return np.concatenate(rows).astype(np.int64) if rows else np.zeros(0, dtype=np.int64)


def idmap_table(index: faiss.Index, index_name: str, build_version: str, ts) -> pa.Table:
    """Return the idmap rows (faiss_row, faiss_id, index_name, build_version, ts)."""
    ids = index_ids(index)
    n = len(ids)
    return pa.table(
        {
            "faiss_row": pa.array(np.arange(n, dtype=np.int64)),
            "faiss_id": pa.array(ids),
            "index_name": pa.array([index_name] * n, pa.string()),
            "build_version": pa.array([build_version] * n, pa.string()),
            "ts": pa.array([ts] * n, pa.timestamp("us", tz="UTC")),
        }
    )


def read_audit(index_path: Path) -> dict[str, Any] | None:
    """Return the audit sidecar beside ``index_path``, or None when there is none.

    Raises ``BadInputError`` when the sidecar is not a JSON object.
    """
    path = audit_beside(index_path)
    if not path.exists():
        return None
    try:
        audit = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(f"{path}: not a readable audit sidecar: {exc}") from exc
    if not isinstance(audit, dict):
        raise BadInputError(f"{path}: not a readable audit sidecar: expected a JSON object")
    return audit


def index_identity(index_path: Path, audit: dict[str, Any] | None) -> tuple[str, str, datetime]:
    """Return (index name, build version, build time) of an index file.

    From its audit sidecar when there is one; otherwise the file's stem, its xxh64 and
    its modification time, so an index copied without a sidecar still gets a stable id map.
    """
    if audit and {"index_name", "build_version", "built_at"} <= audit.keys():
        return (
            audit["index_name"],
            audit["build_version"],
            datetime.fromisoformat(audit["built_at"]),
        )
    mtime = datetime.fromtimestamp(index_path.stat().st_mtime, UTC)
    return index_path.stem, xxh64_file(index_path), mtime


def export_idmap(index_path: Path, target: Path) -> pa.Table:
    """Write the row -> chunk id map of the index at ``index_path`` to ``target``; return it.

    Raises ``BadInputError`` when the file is not a FAISS index or keeps no ids.
    """
    index, _ = read_keyed_index(index_path)
    table = idmap_table(index, *index_identity(index_path, read_audit(index_path)))
    write_parquet(table, target, FAISS_IDMAP)
    return table


def check_ids_match(held: np.ndarray, chunk_ids: np.ndarray, what: str, catalog: Path) -> None:
    """Raise ``BadInputError`` unless ``held`` (the ids of ``what``: an index or an id map
    file) are exactly the chunk ids of the catalog ``catalog``."""
    mine, known = set(held.tolist()), set(chunk_ids.tolist())
    unknown, absent = mine - known, known - mine
    if unknown or absent:
        example = sorted(unknown or absent)[0]
        raise BadInputError(
            f"{what} does not match catalog {catalog}: {len(unknown)} of its {len(mine)} ids "
            f"are no chunk of the catalog, {len(absent)} of the catalog's {len(known)} chunks "
            f"are not in it (e.g. id {example})"
        )


def index_type(index: faiss.Index) -> str:
    """Return the index's FAISS classes, outer first (``IndexIDMap2/IndexFlatIP``)."""
    names = []
    inner = faiss.downcast_index(index)
    while True:
        names.append(type(inner).__name__)
        if not isinstance(inner, faiss.IndexIDMap | faiss.IndexIDMap2):
            return "/".join(names)
        inner = faiss.downcast_index(inner.index)


def search(index: faiss.Index, queries: np.ndarray, k: int) -> SearchHits:
    """Return the top ``k`` ids and scores per query row (k is capped at the index size).

    Raises ``CodeintelError`` when the query dimension differs from the index's.
    """
    queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    if queries.shape[1] != index.d:
        raise CodeintelError(
            f"query vectors have dimension {queries.shape[1]} but the index has {index.d}; "
            "was the index built with another embedding model?"
        )
    k = max(1, min(k, index.ntotal)) if index.ntotal else 0
    if k == 0:
        empty = np.zeros((len(queries), 0))
        return SearchHits(empty.astype(np.int64), empty.astype(np.float32))
    scores, ids = index.search(queries, k)
    return SearchHits(ids=ids, scores=scores)


def set_search_parameters(index: faiss.Index, knobs: str) -> None:
    """Apply search knobs such as ``nprobe=16`` through FAISS's ``ParameterSpace``."""
    if knobs:
        faiss.ParameterSpace().set_index_parameters(index, knobs)


def write_index(index: faiss.Index, target: Path) -> None:
    """Write the index to ``target`` atomically."""
    with atomic_path(target) as tmp:
        faiss.write_index(index, str(tmp))


def read_index(path: Path, knobs: str = "") -> faiss.Index:
    """Read an index and apply its locked search knobs.

    Raises ``CodeintelError`` when the file is missing or not a FAISS index.
    """
    if not path.exists():
        raise CodeintelError(f"FAISS index {path} does not exist")
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as exc:
        # FAISS's message is a C++ location followed by the failed condition: keep the latter.
        reason = str(exc).rsplit("Error: ", 1)[-1].strip()
        raise BadInputError(
            f"FAISS index {path}: not a FAISS index or truncated (faiss: {reason})"
        ) from exc
    set_search_parameters(index, knobs)
    return index


def read_keyed_index(path: Path, knobs: str = "") -> tuple[faiss.Index, np.ndarray]:
    """Return an index file read with ``knobs`` and its ids in row order.

    Raises ``BadInputError`` naming the file when it is not a FAISS index or keeps no ids
    (neither ``IDMap2`` nor IVF).
    """
    index = read_index(path, knobs)
    try:
        return index, index_ids(index)
    except CodeintelError as exc:
        raise BadInputError(f"FAISS index {path}: {exc}") from exc
