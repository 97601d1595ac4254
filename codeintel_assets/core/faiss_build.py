"""The build's FAISS index: trained once, then updated in place while its training holds.

A rebuild trains the index from scratch and tunes its knobs with embedded text queries
(``tuning.tune_and_lock``), keeping those query vectors beside the index. An IVF index
whose previous build is still valid for reuse (same settings, family, list count,
dimension and metric; index file, audit sidecar and query vectors intact) is updated in
place instead: the ids of chunks that are gone or whose vector changed are removed, the
new and changed ones added, the quantizer (centroids) kept. Recall is then measured
again at the locked knobs with the stored query vectors against exact search over the
new vectors (their exact lists updated from the last build's, ``tuning.ExactCache``), and
the knobs swept again only when it fell below the target; no model is loaded on that path.

The audit's ``training`` records how many vectors the quantizer was trained on and the
vectors added and removed since (a changed vector counts once in each). Once that drift
exceeds ``RETRAIN_DRIFT`` of the trained count the index is rebuilt. The list count stays
the trained one meanwhile: within the bound the count moves by ≤ 10 %, so the 4·√n rule
of ``faiss_store.choose_factory`` would move it by ≤ ~5 %.

What an update keeps exact: the set of ids and every vector (each stored vector compared
bit for bit with the chunk's after each update) and recall ≥ target at the locked knobs
(measured). What it does not: the file's bytes and the lists' assignments, which a clean
build would train afresh.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

from codeintel_assets.core import faiss_store, tuning
from codeintel_assets.core.checksums import xxh64_file
from codeintel_assets.core.chunk_table import read_chunk_vectors
from codeintel_assets.core.embedding import Embedder
from codeintel_assets.core.errors import CodeintelError
from codeintel_assets.core.layout import ArtifactLayout

# Past this fraction of the trained count (vectors added + removed since training), retrain.
RETRAIN_DRIFT = 0.10

# Rows compared per batch: bounds the copies of vectors held at once (~25 MB at 384-d).
_COMPARE_ROWS = 16_384


@dataclass(frozen=True)
class IndexSettings:
    """What decides the index besides the vectors; any change rebuilds it."""

    flat_max: int  # the most vectors kept in an exact IDMap2,Flat index
    target_recall: float  # recall@k against exact search the knobs must reach
    recall_k: int
    tune_queries: int  # text queries made and embedded by a rebuild
    embedder: dict[str, Any]  # the embedder that made the vectors and the query vectors


@dataclass(frozen=True)
class IndexDelta:
    """The changes that make an index hold exactly a set of chunk vectors."""

    remove: np.ndarray  # ids gone, or kept with a changed vector
    add_ids: np.ndarray  # ids new, or kept with a changed vector
    add_vectors: np.ndarray
    changed: int  # ids in both whose vector changed

    @property
    def size(self) -> int:
        """Vectors added plus vectors removed: what this delta adds to the drift."""
        return len(self.remove) + len(self.add_ids)


@dataclass(frozen=True)
class IndexBuild:
    """What a build of the index did: its audit, operating point and stage metadata."""

    audit: dict[str, Any]
    point: tuning.OperatingPoint
    metadata: dict[str, Any]  # mode, reason, vectors added/removed, drift, recall...


@dataclass(frozen=True)
class _TrainedIndex:
    index: faiss.Index
    audit: dict[str, Any]
    queries: np.ndarray


class RebuildNeeded(Exception):
    """Raised when the previous index cannot be updated in place; the message says why."""


def build_or_update_index(
    layout: ArtifactLayout,
    ids: np.ndarray,
    vectors: np.ndarray,
    settings: IndexSettings,
    embedder: Callable[[], Embedder],
    build_version: str,
) -> IndexBuild:
    """Write the build's index over ``ids``/``vectors`` with its audit; return what was done.

    The previous build's IVF index is updated in place when it is valid for reuse and its
    drift stays within ``RETRAIN_DRIFT``; otherwise the index is rebuilt, and the reason
    is in the metadata. ``embedder`` is called (the model loaded) only by a rebuild of an
    index with knobs to tune.
    """
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    factory = faiss_store.choose_factory(len(ids), settings.flat_max)
    try:
        return update_in_place(layout, ids, vectors, settings, factory, build_version)
    except RebuildNeeded as why:
        return rebuild(layout, ids, vectors, settings, factory, embedder, build_version, str(why))


def rebuild(
    layout: ArtifactLayout,
    ids: np.ndarray,
    vectors: np.ndarray,
    settings: IndexSettings,
    factory: str,
    embedder: Callable[[], Embedder],
    build_version: str,
    reason: str,
) -> IndexBuild:
    """Train ``factory`` afresh over the vectors, tune and lock it; return what was done."""
    index = faiss_store.build_index(ids, vectors, factory)
    extra: dict[str, Any] = {"build_settings": dataclasses.asdict(settings)}
    if faiss_store.ivf_of(index) is not None:
        extra["training"] = {"trained_on": len(ids), "added_since": 0, "removed_since": 0}
    audit, point = tuning.tune_and_lock(
        index,
        ids,
        vectors,
        embedder,
        factory,
        layout,
        build_version,
        settings.target_recall,
        settings.recall_k,
        settings.tune_queries,
        **extra,
    )
    metadata = {
        "mode": "rebuilt",
        "reason": reason,
        "vectors_added": len(ids),
        "vectors_removed": 0,
        "vectors_changed": 0,
        "trained_on": len(ids) if "training" in extra else 0,
        "drift": 0,
        "recall_remeasured": False,
    }
    return IndexBuild(audit, point, metadata)


def update_in_place(
    layout: ArtifactLayout,
    ids: np.ndarray,
    vectors: np.ndarray,
    settings: IndexSettings,
    factory: str,
    build_version: str,
) -> IndexBuild:
    """Update the previous build's IVF index to hold exactly ``ids``/``vectors``, re-measure
    recall with the stored queries, write index and audit; return what was done.

    Raises ``RebuildNeeded`` when the previous index is not valid for reuse, the drift
    would pass ``RETRAIN_DRIFT``, or the updated index does not hold exactly the vectors.
    """
    previous = _trained_index(layout, settings, factory, vectors.shape[1])
    training = previous.audit["training"]
    delta = index_delta(previous.index, ids, vectors)
    added = training["added_since"] + len(delta.add_ids)
    removed = training["removed_since"] + len(delta.remove)
    trained_on = training["trained_on"]
    if added + removed > RETRAIN_DRIFT * trained_on:
        raise RebuildNeeded(
            f"drift: {added} vectors added and {removed} removed since the quantizer was "
            f"trained on {trained_on}, past {RETRAIN_DRIFT:.0%}"
        )
    apply_delta(previous.index, delta)
    check_holds_exactly(previous.index, ids, vectors)
    old_knobs = previous.audit["knobs"]
    exact = tuning.ExactCache(layout.faiss_tuning_exact)
    point, knobs_changed = tuning.recheck_locked_knobs(
        previous.index,
        previous.queries,
        tuning.ExactOracle(ids, vectors, exact),
        old_knobs,
        settings.target_recall,
        settings.recall_k,
    )
    # Unchanged, the file stays as it is: FAISS writes its id hashtable in the order of
    # the map in memory, so rewriting an unchanged index could change its bytes.
    if delta.size:
        faiss_store.write_index(previous.index, layout.faiss_index())
    audit = tuning.lock_written_index(
        previous.index,
        previous.audit["factory"],
        point,
        layout,
        build_version,
        build_settings=dataclasses.asdict(settings),
        training={"trained_on": trained_on, "added_since": added, "removed_since": removed},
        tuning_queries=previous.audit["tuning_queries"],
    )
    exact.save()
    metadata = {
        "mode": "updated_in_place",
        "factory_for_count": factory,
        "vectors_added": len(delta.add_ids),
        "vectors_removed": len(delta.remove),
        "vectors_changed": delta.changed,
        "trained_on": trained_on,
        "drift": added + removed,
        "drift_fraction": round((added + removed) / trained_on, 6),
        "recall_remeasured": True,
        "previous_recall": previous.audit.get("measured_recall"),
        "previous_knobs": old_knobs,
        "knobs_changed": knobs_changed,
        "exact_lists_updated": exact.updated,
    }
    return IndexBuild(audit, point, metadata)


def index_delta(index: faiss.Index, ids: np.ndarray, vectors: np.ndarray) -> IndexDelta:
    """Return what to remove from and add to ``index`` for it to hold exactly ``ids`` with
    ``vectors``: a chunk id can keep its number (its span) while its text, hence its
    vector, changes, so kept ids' stored vectors are compared bit for bit."""
    held, rows, differ = compare_stored(index, ids, vectors)
    in_index = np.zeros(len(ids), dtype=bool)
    in_index[rows[rows >= 0]] = True
    changed_rows = np.unique(rows[(rows >= 0) & differ]).astype(np.int64)
    gone = held[rows < 0]
    add_rows = np.sort(np.concatenate([np.flatnonzero(~in_index), changed_rows]))
    return IndexDelta(
        remove=np.concatenate([gone, ids[changed_rows]]).astype(np.int64),
        add_ids=ids[add_rows],
        add_vectors=vectors[add_rows],
        changed=len(changed_rows),
    )


def compare_stored(
    index: faiss.Index, ids: np.ndarray, vectors: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (the ids an IVF index holds, in its row order; the row of ``ids`` holding
    each, -1 for none; whether its stored vector differs from that row's in any bit).

    An IVF-Flat's codes are its vectors' float32 bytes: they are compared list by list
    where they lie, without a hashtable lookup per id or a copy of every vector. Other
    codes are reconstructed by id, in batches.
    """
    held = faiss_store.index_ids(index)
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]

    def rows_of(wanted: np.ndarray) -> np.ndarray:
        if len(sorted_ids) == 0:
            return np.full(len(wanted), -1, dtype=np.int64)
        places = np.clip(np.searchsorted(sorted_ids, wanted), 0, len(sorted_ids) - 1)
        return np.where(sorted_ids[places] == wanted, order[places], -1)

    rows = rows_of(held)
    differ = np.zeros(len(held), dtype=bool)
    ivf = faiss_store.ivf_of(index)
    if ivf is not None and ivf.code_size == 4 * index.d:
        invlists, start = ivf.invlists, 0
        for list_no in range(ivf.nlist):
            size = invlists.list_size(list_no)
            if not size:
                continue
            codes = faiss.rev_swig_ptr(invlists.get_codes(list_no), size * ivf.code_size)
            stored = np.frombuffer(codes, dtype=np.uint32).reshape(size, index.d)
            differ[start : start + size] = _differ(stored, vectors, rows[start : start + size])
            start += size
        return held, rows, differ
    for start in range(0, len(held), _COMPARE_ROWS):
        part = slice(start, start + _COMPARE_ROWS)
        stored = np.ascontiguousarray(index.reconstruct_batch(held[part]), dtype=np.float32)
        differ[part] = _differ(stored.view(np.uint32), vectors, rows[part])
    return held, rows, differ


def apply_delta(index: faiss.Index, delta: IndexDelta) -> None:
    """Remove then add the delta's ids in ``index`` (the quantizer is kept).

    Raises ``RebuildNeeded`` when an id to remove is not in the index.
    """
    if len(delta.remove):
        # With the hashtable direct map FAISS removes by id lookup (an IDSelectorArray).
        removed = index.remove_ids(delta.remove)
        if removed != len(delta.remove):
            raise RebuildNeeded(f"removed {removed} of {len(delta.remove)} ids from the index")
    if len(delta.add_ids):
        index.add_with_ids(delta.add_vectors, delta.add_ids)


def check_holds_exactly(index: faiss.Index, ids: np.ndarray, vectors: np.ndarray) -> None:
    """Raise ``RebuildNeeded`` unless ``index`` holds exactly ``ids``, each with its vector."""
    held, _, differ = compare_stored(index, ids, vectors)
    if len(held) != len(ids) or not np.array_equal(np.sort(held), np.sort(ids)):
        raise RebuildNeeded(
            f"the updated index holds {len(held)} ids, not exactly the {len(ids)} chunk ids"
        )
    if differ.any():
        raise RebuildNeeded(
            f"the updated index holds {int(differ.sum())} vectors unlike the chunks'"
        )


def retune(
    layout: ArtifactLayout, embedder: Embedder, target_recall: float, k: int, queries: int
) -> dict[str, Any]:
    """Re-tune the build's index with fresh text queries (``indexctl tune --repo``); return
    the new audit. The index is not trained again, so its training record is kept, and the
    build settings take the new target, k and query count (a build with other settings
    rebuilds)."""
    ids, vectors = read_chunk_vectors(layout.chunks, layout.chunk_vectors)
    index = faiss_store.read_index(layout.faiss_index())
    old = json.loads(layout.faiss_audit().read_text(encoding="utf-8"))
    kept: dict[str, Any] = {}
    if isinstance(old.get("training"), dict):
        kept["training"] = old["training"]
    settings = _settings_of(old)
    if settings is not None:
        kept["build_settings"] = dataclasses.asdict(
            dataclasses.replace(
                settings, target_recall=target_recall, recall_k=k, tune_queries=queries
            )
        )
    audit, _ = tuning.tune_and_lock(
        index,
        ids,
        vectors,
        lambda: embedder,
        old["factory"],
        layout,
        old["build_version"],
        target_recall,
        k,
        queries,
        **kept,
    )
    return audit


def _trained_index(
    layout: ArtifactLayout, settings: IndexSettings, factory: str, dim: int
) -> _TrainedIndex:
    """Return the previous build's index, audit and tuning queries when valid for an update.

    Raises ``RebuildNeeded`` naming the first reason it is not.
    """
    if faiss_store.ivf_flat_lists(factory) is None:
        raise RebuildNeeded(f"{factory} is exact: nothing trained to keep")
    index_path = layout.faiss_index()
    try:
        audit = faiss_store.read_audit(index_path)
    except CodeintelError as exc:
        raise RebuildNeeded(str(exc)) from exc
    if audit is None:
        raise RebuildNeeded("no previous index")
    lists = faiss_store.ivf_flat_lists(str(audit.get("factory")))
    if lists is None:
        raise RebuildNeeded(f"the previous index is {audit.get('factory')}, not {factory}")
    _check_settings(audit, settings)
    _check_training(audit)
    if not isinstance(audit.get("knobs"), str):
        raise RebuildNeeded("the audit sidecar records no locked knobs")
    if audit.get("dim") != dim or audit.get("metric") != "inner_product":
        raise RebuildNeeded(
            f"the previous index has dimension {audit.get('dim')} and metric "
            f"{audit.get('metric')}, the vectors {dim} and inner_product"
        )
    if not index_path.exists():
        raise RebuildNeeded(f"the previous index file {index_path.name} is missing")
    if xxh64_file(index_path) != audit.get("index_xxh64"):
        raise RebuildNeeded(f"the index file {index_path.name} differs from its audit's checksum")
    try:
        index = faiss_store.read_index(index_path)
        queries = tuning.load_tuning_queries(
            layout.faiss_tuning_queries, audit.get("tuning_queries"), dim
        )
    except CodeintelError as exc:
        raise RebuildNeeded(str(exc)) from exc
    ivf = faiss_store.ivf_of(index)
    if (
        ivf is None
        or ivf.nlist != lists
        or ivf.direct_map.type != faiss.DirectMap.Hashtable
        or index.metric_type != faiss.METRIC_INNER_PRODUCT
        or index.d != dim
        or index.ntotal != audit.get("ntotal")
    ):
        raise RebuildNeeded(
            f"the index file is not the {audit.get('factory')} of {audit.get('ntotal')} "
            "vectors (inner product, id hashtable) its audit describes"
        )
    return _TrainedIndex(index, audit, queries)


def _check_training(audit: dict[str, Any]) -> None:
    training = audit.get("training")
    fields = ("trained_on", "added_since", "removed_since")
    if not isinstance(training, dict) or not all(
        isinstance(training.get(f), int) and training[f] >= 0 for f in fields
    ):
        raise RebuildNeeded(
            "the audit sidecar records no training (an index built before in-place updates, "
            "or locked by `indexctl tune` with knobs)"
        )
    if training["trained_on"] == 0:
        raise RebuildNeeded("the audit sidecar says the quantizer was trained on no vectors")


def _check_settings(audit: dict[str, Any], settings: IndexSettings) -> None:
    old = audit.get("build_settings")
    new = dataclasses.asdict(settings)
    if not isinstance(old, dict):
        raise RebuildNeeded("the audit sidecar records no build settings")
    changed = [f"{k} {old.get(k)!r} -> {v!r}" for k, v in new.items() if old.get(k) != v]
    if changed:
        raise RebuildNeeded("settings changed: " + ", ".join(changed))


def _settings_of(audit: dict[str, Any]) -> IndexSettings | None:
    try:
        return IndexSettings(**audit["build_settings"])
    except (KeyError, TypeError):
        return None


def _differ(stored: np.ndarray, vectors: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Return, per stored vector (as uint32 words), whether it differs in any bit from the
    chunk vector at its row of ``rows`` (-1: no row; reported as not differing)."""
    held = rows >= 0
    out = np.zeros(len(rows), dtype=bool)
    if held.any():
        mine = vectors[rows[held]].view(np.uint32)
        out[held] = np.any(stored[held] != mine, axis=1)
    return out
