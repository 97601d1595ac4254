"""The build's FAISS index on real FAISS: an IVF index updated in place holds exactly the
chunks' ids and vectors, without loading the model; drift, damage and changed settings
rebuild it with a reason."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from codeintel_assets.core import faiss_build, faiss_store
from codeintel_assets.core.checksums import xxh64_file
from codeintel_assets.core.embedding import HashingEmbedder
from codeintel_assets.core.faiss_build import IndexSettings, build_or_update_index
from codeintel_assets.core.layout import ArtifactLayout
from codeintel_assets.core.tuning import save_tuning_queries

DIM = 32
COUNT = 3000
FLAT_MAX = 1000  # below COUNT: the index is IVF{4·√3000},Flat = IVF219,Flat
SETTINGS = IndexSettings(
    flat_max=FLAT_MAX,
    target_recall=0.95,
    recall_k=10,
    tune_queries=100,
    embedder={"kind": "hashing", "model_path": None, "dim": DIM, "backend": "torch"},
)


def clustered(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(60, DIM))
    x = centres[rng.integers(0, 60, count)] + 0.6 * rng.normal(size=(count, DIM))
    x = np.ascontiguousarray(x, dtype=np.float32)
    faiss.normalize_L2(x)
    ids = rng.choice(10**12, size=count, replace=False).astype(np.int64) + 1
    return ids, x


def write_chunks(layout: ArtifactLayout, ids: np.ndarray, vectors: np.ndarray) -> None:
    """A chunks table with what the index stage reads (no docstrings: sampled queries)."""
    n = len(ids)
    table = pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "uri": pa.array([f"m{i % 50}.py" for i in range(n)]),
            "start_line": pa.array(np.arange(n, dtype=np.int32)),
            "end_line": pa.array(np.arange(n, dtype=np.int32)),
            "start_byte": pa.array(np.arange(n, dtype=np.int64)),
            "content": pa.array([f"x{i} = {i}" for i in range(n)]),
            "lang": pa.array(["python"] * n),
            "embedding": pa.FixedSizeListArray.from_arrays(
                pa.array(vectors.ravel(), pa.float32()), DIM
            ),
        }
    )
    layout.chunks.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, layout.chunks)


def hashing() -> HashingEmbedder:
    return HashingEmbedder(dim=DIM)


def no_model() -> HashingEmbedder:
    raise AssertionError("the embedding model was loaded for an in-place update")


def build(layout, ids, vectors, settings=SETTINGS, embedder=hashing):
    write_chunks(layout, ids, vectors)
    return build_or_update_index(layout, ids, vectors, settings, embedder, "v")


def held(layout: ArtifactLayout) -> tuple[faiss.Index, np.ndarray]:
    index = faiss.read_index(str(layout.faiss_index()))
    return index, faiss_store.index_ids(index)


@pytest.fixture
def built(tmp_path: Path):
    layout = ArtifactLayout(tmp_path / "build")
    ids, vectors = clustered(COUNT, seed=0)
    first = build(layout, ids, vectors)
    return layout, ids, vectors, first


def edited(ids: np.ndarray, vectors: np.ndarray, deleted: int, added: int, changed: int, seed=1):
    """Return ids/vectors with ``deleted`` rows dropped, ``changed`` rows given a new vector
    under the same id and ``added`` new rows; and the changed ids."""
    rng = np.random.default_rng(seed)
    keep = np.ones(len(ids), dtype=bool)
    keep[rng.choice(len(ids), deleted, replace=False)] = False
    ids, vectors = ids[keep], vectors[keep].copy()
    rows = rng.choice(len(ids), changed, replace=False)
    _, fresh = clustered(changed + added, seed=seed + 100)
    vectors[rows] = fresh[:changed]
    new_ids = rng.choice(10**12, size=added, replace=False).astype(np.int64) + 10**12
    return (
        np.concatenate([ids, new_ids]),
        np.concatenate([vectors, fresh[changed:]]),
        ids[rows],
    )


def test_first_build_trains_and_keeps_its_tuning_queries(built):
    layout, ids, _, first = built
    assert first.metadata["mode"] == "rebuilt" and first.metadata["reason"] == "no previous index"
    audit = json.loads(layout.faiss_audit().read_text())
    assert audit["factory"] == "IVF219,Flat"
    assert audit["training"] == {"trained_on": COUNT, "added_since": 0, "removed_since": 0}
    assert audit["build_settings"]["target_recall"] == 0.95
    record = audit["tuning_queries"]
    assert record["count"] == np.load(layout.faiss_tuning_queries).shape[0] > 0
    assert audit["target_met"] and audit["measured_recall"] >= 0.95


def test_an_update_holds_exactly_the_new_ids_and_vectors_without_the_model(built):
    layout, ids, vectors, _ = built
    before, _ = held(layout)
    centroids = before.quantizer.reconstruct_n(0, before.nlist)
    new_ids, new_vectors, changed = edited(ids, vectors, deleted=7, added=9, changed=1)
    result = build(layout, new_ids, new_vectors, embedder=no_model)

    meta = result.metadata
    assert meta["mode"] == "updated_in_place", meta.get("reason")
    assert (meta["vectors_added"], meta["vectors_removed"], meta["vectors_changed"]) == (10, 8, 1)
    assert meta["drift"] == 18 and meta["trained_on"] == COUNT
    index, index_ids = held(layout)
    # Exactly the chunk ids, none stale, each with the chunk's vector (the changed one too).
    assert index.ntotal == len(new_ids)
    assert np.array_equal(np.sort(index_ids), np.sort(new_ids))
    np.testing.assert_array_equal(index.reconstruct_batch(new_ids), new_vectors)
    assert not np.array_equal(index.reconstruct(int(changed[0])), vectors[ids == changed[0]][0])
    # The quantizer was kept, not trained again.
    np.testing.assert_array_equal(index.quantizer.reconstruct_n(0, index.nlist), centroids)
    audit = json.loads(layout.faiss_audit().read_text())
    assert audit["training"] == {"trained_on": COUNT, "added_since": 10, "removed_since": 8}
    assert audit["measured_recall"] >= 0.95 and meta["recall_remeasured"] is True
    assert audit["index_xxh64"] == xxh64_file(layout.faiss_index())


def test_unchanged_vectors_leave_the_index_file_as_it_was(built):
    layout, ids, vectors, first = built
    before = layout.faiss_index().read_bytes()
    result = build(layout, ids, vectors, embedder=no_model)
    assert result.metadata["mode"] == "updated_in_place"
    assert (result.metadata["vectors_added"], result.metadata["vectors_removed"]) == (0, 0)
    assert layout.faiss_index().read_bytes() == before
    assert result.audit["index_xxh64"] == first.audit["index_xxh64"]
    assert result.metadata["knobs_changed"] is False


def test_drift_past_ten_percent_of_the_trained_count_rebuilds(built):
    layout, ids, vectors, _ = built
    # 120 deleted + 120 added = 240 = 8 %: updated; another 8 % makes 16 %: retrained.
    ids, vectors, _ = edited(ids, vectors, deleted=120, added=120, changed=0, seed=2)
    assert build(layout, ids, vectors, embedder=no_model).metadata["mode"] == "updated_in_place"
    ids, vectors, _ = edited(ids, vectors, deleted=120, added=120, changed=0, seed=3)
    result = build(layout, ids, vectors)
    assert result.metadata["mode"] == "rebuilt"
    assert result.metadata["reason"].startswith("drift: 240 vectors added and 240 removed")
    assert result.audit["training"] == {"trained_on": COUNT, "added_since": 0, "removed_since": 0}
    index, index_ids = held(layout)
    assert np.array_equal(np.sort(index_ids), np.sort(ids))


def _garble(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


DAMAGE = {
    "audit not JSON": (
        lambda lay: lay.faiss_audit().write_text("{not json"),
        "not a readable audit sidecar",
    ),
    "audit missing": (lambda lay: lay.faiss_audit().unlink(), "no previous index"),
    "queries changed": (
        lambda lay: _garble(lay.faiss_tuning_queries),
        "tuning query vectors tuning_queries.npy differ from their checksum",
    ),
    "queries missing": (
        lambda lay: lay.faiss_tuning_queries.unlink(),
        "tuning query vectors tuning_queries.npy are missing",
    ),
    "index changed": (
        lambda lay: _garble(lay.faiss_index()),
        "index file chunks.faiss differs from its audit's checksum",
    ),
    "index missing": (lambda lay: lay.faiss_index().unlink(), "chunks.faiss is missing"),
    "no training record": (
        lambda lay: lay.faiss_audit().write_text(
            json.dumps({**json.loads(lay.faiss_audit().read_text()), "training": None})
        ),
        "records no training",
    ),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_previous_index_rebuilds_with_its_reason(built, damage: str):
    layout, ids, vectors, _ = built
    harm, reason = DAMAGE[damage]
    harm(layout)
    new_ids, new_vectors, _ = edited(ids, vectors, deleted=1, added=1, changed=1)
    result = build(layout, new_ids, new_vectors)
    assert result.metadata["mode"] == "rebuilt"
    assert reason in result.metadata["reason"]
    index, index_ids = held(layout)
    assert np.array_equal(np.sort(index_ids), np.sort(new_ids))
    # The rebuild made a consistent state again: the next build updates in place.
    assert build(layout, new_ids, new_vectors, embedder=no_model).metadata["mode"] == (
        "updated_in_place"
    )


def test_changed_settings_rebuild(built):
    layout, ids, vectors, _ = built
    settings = dataclasses.replace(SETTINGS, target_recall=0.9)
    result = build(layout, ids, vectors, settings=settings)
    assert result.metadata["mode"] == "rebuilt"
    assert result.metadata["reason"] == "settings changed: target_recall 0.95 -> 0.9"


def test_recall_below_target_at_the_locked_knobs_sweeps_again_with_the_stored_queries(built):
    layout, ids, vectors, _ = built
    # Queries far from the corpus and a lock at nprobe=1 (the audit as a user might have it).
    rng = np.random.default_rng(7)
    queries = np.ascontiguousarray(rng.normal(size=(100, DIM)), dtype=np.float32)
    faiss.normalize_L2(queries)
    audit = json.loads(layout.faiss_audit().read_text())
    audit["tuning_queries"] = save_tuning_queries(layout.faiss_tuning_queries, queries)
    audit["knobs"] = "nprobe=1"
    layout.faiss_audit().write_text(json.dumps(audit))
    new_ids, new_vectors, _ = edited(ids, vectors, deleted=2, added=2, changed=2)
    result = build(layout, new_ids, new_vectors, embedder=no_model)
    meta = result.metadata
    assert meta["mode"] == "updated_in_place" and meta["previous_knobs"] == "nprobe=1"
    assert meta["knobs_changed"] is True and result.audit["knobs"] != "nprobe=1"
    assert result.point.sweep[0]["knobs"] == "nprobe=1"
    assert result.audit["measured_recall"] >= 0.95 and result.audit["target_met"]


def test_a_corpus_that_shrinks_under_the_flat_limit_is_built_exact(built):
    layout, ids, vectors, _ = built
    result = build(layout, ids[:FLAT_MAX], vectors[:FLAT_MAX])
    assert result.metadata["mode"] == "rebuilt"
    assert result.metadata["reason"] == "IDMap2,Flat is exact: nothing trained to keep"
    assert result.audit["factory"] == "IDMap2,Flat" and "training" not in result.audit
    assert not layout.faiss_tuning_queries.exists()
    # Growing past it again trains a new IVF, not an update of the exact index.
    grown = build(layout, ids, vectors)
    assert grown.metadata["mode"] == "rebuilt" and grown.audit["factory"] == "IVF219,Flat"
    assert grown.metadata["reason"] == "the previous index is IDMap2,Flat, not IVF219,Flat"


def test_index_delta_finds_a_changed_vector_under_a_kept_id():
    ids, vectors = clustered(400, seed=4)
    index = faiss_store.build_index(ids, vectors, "IVF16,Flat")
    new = vectors.copy()
    new[5, 0] = np.nextafter(new[5, 0], np.float32(2))  # one bit of one coordinate
    delta = faiss_build.index_delta(index, ids, new)
    assert delta.changed == 1 and delta.remove.tolist() == delta.add_ids.tolist() == [ids[5]]
    np.testing.assert_array_equal(delta.add_vectors, new[5:6])


def test_retune_keeps_the_training_so_the_next_build_updates(built):
    layout, ids, vectors, _ = built
    audit = faiss_build.retune(layout, hashing(), target_recall=0.95, k=10, queries=100)
    assert audit["training"]["trained_on"] == COUNT
    new_ids, new_vectors, _ = edited(ids, vectors, deleted=1, added=1, changed=0)
    assert build(layout, new_ids, new_vectors, embedder=no_model).metadata["mode"] == (
        "updated_in_place"
    )
