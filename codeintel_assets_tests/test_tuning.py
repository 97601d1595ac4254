"""Tune then lock on real FAISS indexes of generated clustered vectors."""

from __future__ import annotations

import json

import faiss
import numpy as np
import pytest

from codeintel_assets.core import faiss_store
from codeintel_assets.core.checksums import xxh64_file
from codeintel_assets.core.errors import BadInputError, CodeintelError
from codeintel_assets.core.layout import audit_beside
from codeintel_assets.core.tuning import (
    ExactCache,
    ExactOracle,
    audit_sidecar,
    knob_candidates,
    lock_index_file,
    operator_knobs,
    recall_at_k,
    sample_query_vectors,
    tune_index,
)

DIM = 32


def clustered(count: int, clusters: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, DIM))
    x = centres[rng.integers(0, clusters, count)] + 0.8 * rng.normal(size=(count, DIM))
    x = np.ascontiguousarray(x, dtype=np.float32)
    faiss.normalize_L2(x)
    ids = rng.choice(10**12, size=count, replace=False).astype(np.int64) + 1
    return ids, x


@pytest.fixture(scope="module")
def data():
    ids, x = clustered(20_000, 400, seed=0)
    queries = sample_query_vectors(x, 200, seed=1)
    queries = queries + 0.05 * np.random.default_rng(2).normal(size=queries.shape)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    faiss.normalize_L2(queries)
    return ids, x, queries


def test_tune_picks_the_cheapest_nprobe_meeting_the_target(data):
    ids, x, queries = data
    index = faiss_store.build_index(ids, x, "IVF256,Flat")
    oracle = ExactOracle(ids, x)
    point = tune_index(index, queries, k=10, target_recall=0.95, oracle=oracle)

    # Measure every candidate independently: the chosen one must be the first reaching 0.95.
    exact = oracle.search(queries, 10)
    measured = {}
    for knobs in knob_candidates(index, 10):
        faiss_store.set_search_parameters(index, knobs)
        measured[knobs] = recall_at_k(faiss_store.search(index, queries, 10), exact, 10)
    first_meeting = next(kn for kn, r in measured.items() if r >= 0.95)
    assert point.met
    assert point.knobs == first_meeting
    assert point.knobs != "nprobe=1"  # the target is not trivially met; a real sweep happened
    assert point.recall == pytest.approx(measured[point.knobs])
    assert all(p["recall"] < 0.95 for p in point.sweep[:-1])
    assert point.sweep[-1]["knobs"] == point.knobs
    assert point.latency_ms > 0


def test_tune_locks_the_chosen_knobs_on_the_index(data):
    ids, x, queries = data
    index = faiss_store.build_index(ids, x, "IVF256,Flat")
    point = tune_index(index, queries, k=10, target_recall=0.9)
    assert faiss.extract_index_ivf(index).nprobe == int(point.knobs.split("=")[1])


def test_unreachable_target_returns_best_point_flagged(data):
    ids, x, queries = data
    index = faiss_store.build_index(ids[:5000], x[:5000], "IVF64,Flat")
    point = tune_index(index, queries, k=10, target_recall=1.01)
    assert not point.met
    assert point.knobs == "nprobe=64"  # probing every list is exact, the best there is
    assert point.recall == pytest.approx(1.0)
    assert len(point.sweep) == len(knob_candidates(index, 10))


def test_flat_recall_against_the_oracle_is_exactly_one(data):
    ids, x, queries = data
    index = faiss_store.build_index(ids[:8000], x[:8000], "IDMap2,Flat")
    point = tune_index(index, queries, k=10)
    assert point.knobs == ""
    assert point.recall == 1.0
    assert point.met and len(point.sweep) == 1


def test_hnsw_sweeps_ef_search(data):
    ids, x, queries = data
    index = faiss_store.build_index(ids[:4000], x[:4000], "IDMap2,HNSW16")
    assert knob_candidates(index, 10)[0] == "efSearch=16"
    assert knob_candidates(index, 20)[0] == "efSearch=32"
    point = tune_index(index, queries, k=10, target_recall=0.9)
    assert point.met and point.knobs.startswith("efSearch=")


def test_ties_count_as_found():
    exact = faiss_store.SearchHits(np.array([[1, 2]]), np.array([[0.9, 0.5]], dtype=np.float32))
    ann = faiss_store.SearchHits(np.array([[1, 3]]), np.array([[0.9, 0.5]], dtype=np.float32))
    worse = faiss_store.SearchHits(np.array([[1, 3]]), np.array([[0.9, 0.4]], dtype=np.float32))
    assert recall_at_k(ann, exact, 2) == 1.0
    assert recall_at_k(worse, exact, 2) == 0.5


def test_dimension_mismatch_and_no_queries_are_clear_errors(data):
    ids, x, _ = data
    index = faiss_store.build_index(ids[:1000], x[:1000], "IDMap2,Flat")
    with pytest.raises(CodeintelError, match="dimension 16 differs"):
        tune_index(index, np.zeros((3, 16), dtype=np.float32))
    with pytest.raises(CodeintelError, match="at least one query"):
        tune_index(index, np.zeros((0, DIM), dtype=np.float32))


def test_audit_sidecar_records_the_operating_point(data):
    ids, x, queries = data
    index = faiss_store.build_index(ids[:3000], x[:3000], "IVF32,Flat")
    point = tune_index(index, queries[:50], k=5, target_recall=0.9)
    audit = audit_sidecar(
        index=index, factory="IVF32,Flat", point=point, build_version="v1", index_xxh64="ab"
    )
    assert audit["knobs"] == point.knobs and audit["measured_recall"] == point.recall
    assert (audit["dim"], audit["ntotal"], audit["metric"]) == (DIM, 3000, "inner_product")
    assert audit["build_version"] == "v1" and audit["index_xxh64"] == "ab"
    assert audit["recall_k"] == 5 and audit["latency_ms"] == point.latency_ms


def test_k_factor_reads_a_quantized_index_deeper(data):
    # Quantized codes approximate the scores, so true neighbours rank below k and a deeper read
    # finds them; exact-distance codes (Flat, IVF-Flat, HNSW-Flat) rank every visited true
    # neighbour within the top k, where k_factor changes nothing.
    ids, x, queries = data
    ids, x = ids[:5000], x[:5000]
    index = faiss_store.build_index(ids, x, "IVF16,SQ4")
    faiss_store.set_search_parameters(index, "nprobe=16")
    oracle = ExactOracle(ids, x)
    exact = oracle.search(queries, 10)
    shallow_hits = faiss_store.search(index, queries, 10)
    shallow = recall_at_k(oracle.rescore(queries, shallow_hits), exact, 10)
    deep_hits = faiss_store.search(index, queries, 40)
    deep = recall_at_k(oracle.rescore(queries, deep_hits), exact, 10, depth=40)
    assert deep > shallow + 0.05
    point = tune_index(index, queries, k=10, oracle=oracle, k_factor=4.0, candidates=["nprobe=16"])
    assert point.k_factor == 4.0 and point.recall == pytest.approx(deep)
    # The index's own (approximate) scores would pass misses off as ties of the k-th score.
    assert recall_at_k(shallow_hits, exact, 10) > shallow
    by_id = np.mean(
        [len(set(shallow_hits.ids[q]) & set(exact.ids[q])) / 10 for q in range(len(queries))]
    )
    assert shallow == pytest.approx(by_id, abs=0.01)


def test_rescore_gives_exact_scores_and_minus_inf_for_unknown_ids(data):
    ids, x, queries = data
    oracle = ExactOracle(ids[:100], x[:100])
    hits = faiss_store.SearchHits(
        ids=np.array([[ids[3], -1, 12345]]), scores=np.zeros((1, 3), np.float32)
    )
    scores = oracle.rescore(queries[:1], hits).scores[0]
    assert scores[0] == pytest.approx(float(queries[0] @ x[3]), abs=1e-5)
    assert scores[1] == scores[2] == -np.inf


def test_operator_knobs_must_fit_the_index_family(data, tmp_path):
    ids, x, _ = data
    flat = faiss_store.build_index(ids[:500], x[:500], "IDMap2,Flat")
    ivf = faiss_store.build_index(ids[:2000], x[:2000], "IVF16,Flat")
    hnsw = faiss_store.build_index(ids[:500], x[:500], "IDMap2,HNSW8")
    path = tmp_path / "i.faiss"
    assert operator_knobs(ivf, path, 4, None) == "nprobe=4"
    assert operator_knobs(hnsw, path, None, 64) == "efSearch=64"
    assert operator_knobs(flat, path, None, None) == ""
    with pytest.raises(BadInputError, match="IndexIDMap2/IndexFlat: it has no nprobe"):
        operator_knobs(flat, path, 4, None)
    with pytest.raises(BadInputError, match="it has no efSearch"):
        operator_knobs(ivf, path, None, 64)
    with pytest.raises(BadInputError, match="--nprobe 17 exceeds its 16 lists"):
        operator_knobs(ivf, path, 17, None)


def test_an_operator_lock_keeps_the_sidecar_identity_and_the_index_file(data, tmp_path):
    ids, x, _ = data
    path = tmp_path / "chunks.faiss"
    faiss_store.write_index(faiss_store.build_index(ids[:2000], x[:2000], "IVF16,Flat"), path)
    before = xxh64_file(path)
    old = {"index_name": "chunks", "build_version": "b1", "built_at": "2026-01-01T00:00:00+00:00"}
    audit_beside(path).write_text(json.dumps({**old, "factory": "IVF16,Flat"}))
    audit = lock_index_file(path, nprobe=4, k=10, queries=50)
    assert json.loads(audit_beside(path).read_text()) == audit
    assert {k: audit[k] for k in old} == old and audit["factory"] == "IVF16,Flat"
    assert audit["knobs"] == "nprobe=4" and audit["locked_by"] == "operator"
    assert audit["tune_queries"] == 50 and audit["index_xxh64"] == before == xxh64_file(path)
    # Searches read the knobs back from the sidecar.
    assert faiss.extract_index_ivf(faiss_store.read_index(path, audit["knobs"])).nprobe == 4


def _edited(rng, ids, x, make):
    """Return the corpus with a few vectors gone, changed and added (some mid-table)."""
    keep = np.ones(len(ids), bool)
    keep[rng.choice(len(ids), int(rng.integers(0, 4)), replace=False)] = False
    ids, x = ids[keep], x[keep].copy()
    changed = rng.choice(len(ids), int(rng.integers(0, 3)), replace=False)
    x[changed] = make(len(changed))
    fresh = np.setdiff1d(rng.integers(1, 10**6, 4), ids)[: int(rng.integers(0, 4))]
    at = int(rng.integers(0, len(ids) + 1))
    ids = np.concatenate([ids[:at], fresh.astype(np.int64), ids[at:]])
    x = np.concatenate([x[:at], make(len(fresh)), x[at:]])
    return ids, np.ascontiguousarray(x, dtype=np.float32)


@pytest.mark.parametrize("nq", [5, 200])
def test_kept_exact_lists_give_the_hits_of_a_full_search(tmp_path, nq):
    # Vectors of a few small integers: duplicates and tied scores everywhere, the case
    # where which of the tied ids FAISS keeps depends on the row order.
    rng = np.random.default_rng(nq)

    def make(count):
        return rng.integers(-3, 4, size=(count, 16)).astype(np.float32)

    ids = rng.choice(10**6, size=1500, replace=False).astype(np.int64) + 1
    x = make(500)[rng.integers(0, 500, len(ids))]
    queries = make(nq)
    updated = 0
    for _ in range(12):
        cache = ExactCache(tmp_path / "exact.npz")
        got = ExactOracle(ids, x, cache).search(queries, 10)
        want = ExactOracle(ids, x).search(queries, 10)
        assert np.array_equal(got.ids, want.ids)
        assert np.array_equal(got.scores.view(np.uint32), want.scores.view(np.uint32))
        updated += cache.updated
        cache.save()
        ids, x = _edited(rng, ids, x, make)
    assert updated > 0


def test_kept_exact_lists_update_after_a_small_change(tmp_path, data):
    ids, x, queries = data
    ExactCache(tmp_path / "exact.npz")
    cache = ExactCache(tmp_path / "exact.npz")
    ExactOracle(ids, x, cache).search(queries, 10)
    assert not cache.updated
    cache.save()
    # The first query's nearest vector changes; a new one lands beside another query.
    x = x.copy()
    top = ExactOracle(ids, x).search(queries[:1], 1).ids[0, 0]
    x[np.flatnonzero(ids == top)[0]] = -queries[0]
    ids = np.concatenate([ids, [7]])
    x = np.concatenate([x, queries[1:2]])
    cache = ExactCache(tmp_path / "exact.npz")
    got = ExactOracle(ids, x, cache).search(queries, 10)
    assert cache.updated
    want = ExactOracle(ids, x).search(queries, 10)
    assert np.array_equal(got.ids, want.ids) and np.array_equal(got.scores, want.scores)
    assert got.ids[1, 0] == 7 and top not in got.ids[0]


def test_stale_or_damaged_exact_lists_are_not_used(tmp_path, data):
    ids, x, queries = data
    path = tmp_path / "exact.npz"
    cache = ExactCache(path)
    ExactOracle(ids, x, cache).search(queries, 10)
    cache.save()
    other = np.ascontiguousarray(queries[::-1])
    cache = ExactCache(path)
    ExactOracle(ids, x, cache).search(other, 10)  # other query vectors
    assert not cache.updated
    cache = ExactCache(path)
    ExactOracle(ids, x, cache).search(queries, 10)
    assert cache.updated
    cache.save()
    data_bytes = bytearray(path.read_bytes())
    data_bytes[len(data_bytes) // 2] ^= 0xFF
    path.write_bytes(bytes(data_bytes))
    cache = ExactCache(path)
    got = ExactOracle(ids, x, cache).search(queries, 10)
    assert not cache.updated
    assert np.array_equal(got.ids, ExactOracle(ids, x).search(queries, 10).ids)
