"""The embedding cache's delta file: small saves write it alone, and what is loaded back
is what rewriting the whole cache every time would hold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from codeintel_assets.core.embedding import EmbeddingCache, HashingEmbedder

DIM = 16


class WholeCache(EmbeddingCache):
    """The cache rewritten whole at every save (what the delta must be equal to)."""

    DELTA_SHARE = 10**9


def _session(cls: type[EmbeddingCache], folder: Path, texts: list[str], limit: int) -> None:
    cache = cls(folder, "hashing", DIM, max_entries=limit)
    cache.embed(texts, HashingEmbedder(dim=DIM))
    cache.save()


def _contents(folder: Path, limit: int) -> dict[str, tuple[int, list[float]]]:
    cache = EmbeddingCache(folder, "hashing", DIM, max_entries=limit)
    return {
        key: (cache._generation[key], vector.tolist()) for key, vector in cache._vectors.items()
    }


def test_small_saves_write_the_delta_alone(tmp_path: Path) -> None:
    texts = [f"def f{i}(): return {i}" for i in range(40)]
    _session(EmbeddingCache, tmp_path, texts, 1000)
    cache = EmbeddingCache(tmp_path, "hashing", DIM)
    base = cache.path.read_bytes()
    assert not cache.delta_path.exists()
    _session(EmbeddingCache, tmp_path, [*texts[:2], "def g(): pass"], 1000)
    assert cache.path.read_bytes() == base
    assert cache.delta_path.exists()
    vectors, _ = EmbeddingCache(tmp_path, "hashing", DIM).embed(
        ["def g(): pass"], HashingEmbedder(dim=DIM)
    )
    assert np.array_equal(vectors, HashingEmbedder(dim=DIM).embed(["def g(): pass"]))


def test_loaded_entries_match_whole_rewrites(tmp_path: Path) -> None:
    sessions = [
        [f"def f{i}(): return {i}" for i in range(60)],
        ["def f1(): return 1", "def new(): pass"],
        [f"def h{i}(): pass" for i in range(5)],
        [f"def k{i}(): pass" for i in range(30)],  # a delta too large: compacted
        ["def f2(): return 2"],
    ]
    for limit in (1000, 70):  # 70: entries are evicted on the way
        delta, whole = tmp_path / f"delta{limit}", tmp_path / f"whole{limit}"
        for texts in sessions:
            _session(EmbeddingCache, delta, texts, limit)
            _session(WholeCache, whole, texts, limit)
            assert _contents(delta, limit) == _contents(whole, limit)


def test_an_unreadable_cache_file_is_not_used(tmp_path: Path) -> None:
    texts = [f"def f{i}(): return {i}" for i in range(40)]
    _session(EmbeddingCache, tmp_path, texts, 1000)
    _session(EmbeddingCache, tmp_path, ["def g(): pass"], 1000)
    cache = EmbeddingCache(tmp_path, "hashing", DIM)
    assert cache.delta_path.exists()
    cache.delta_path.write_bytes(b"not parquet")
    with pytest.warns(UserWarning, match="delta.parquet: unreadable embedding cache"):
        kept = EmbeddingCache(tmp_path, "hashing", DIM)
    assert len(kept._vectors) == 40  # the file's entries; the delta's text is embedded again
    cache.path.write_bytes(cache.path.read_bytes()[:100])
    with pytest.warns(UserWarning, match="unreadable embedding cache"):
        empty = EmbeddingCache(tmp_path, "hashing", DIM)
    vectors, stats = empty.embed(["def g(): pass"], HashingEmbedder(dim=DIM))
    assert stats.misses == 1 and vectors.shape == (1, DIM)


def test_the_first_file_keeps_its_vectors_as_a_matrix_beside_it(tmp_path: Path) -> None:
    texts = [f"def f{i}(): return {i}" for i in range(40)]
    _session(EmbeddingCache, tmp_path, texts, 1000)
    cache = EmbeddingCache(tmp_path, "hashing", DIM)
    assert pq.read_schema(cache.path).names == ["key", "generation"]
    assert cache.matrix_path.exists()
    vectors, stats = cache.embed(texts, HashingEmbedder(dim=DIM))
    assert stats.misses == 0
    assert np.array_equal(vectors, HashingEmbedder(dim=DIM).embed(texts))
    cache.matrix_path.write_bytes(cache.matrix_path.read_bytes()[:-8])
    with pytest.warns(UserWarning, match=r"unreadable embedding cache.*\.npy\) are missing"):
        damaged = EmbeddingCache(tmp_path, "hashing", DIM)
    assert len(damaged._vectors) == 0


def test_a_cache_of_the_older_form_is_read_and_rewritten(tmp_path: Path) -> None:
    texts = [f"def f{i}(): return {i}" for i in range(40)]
    _session(WholeCache, tmp_path / "now", texts, 1000)
    expected = _contents(tmp_path / "now", 1000)
    cache = EmbeddingCache(tmp_path / "old", "hashing", DIM)
    vectors = HashingEmbedder(dim=DIM).embed(texts)
    keys = sorted(expected)
    by_key = {k: expected[k][1] for k in keys}
    old = pa.table(
        {
            "key": pa.array(keys, pa.string()),
            "generation": pa.array([expected[k][0] for k in keys], pa.int64()),
            "embedding": pa.FixedSizeListArray.from_arrays(
                pa.array(np.asarray([by_key[k] for k in keys], np.float32).reshape(-1)), DIM
            ),
        }
    )
    cache.path.parent.mkdir(parents=True)
    pq.write_table(old, cache.path)
    assert _contents(tmp_path / "old", 1000) == expected
    reread = EmbeddingCache(tmp_path / "old", "hashing", DIM)
    found, stats = reread.embed(texts[:1], HashingEmbedder(dim=DIM))
    assert stats.misses == 0 and np.array_equal(found, vectors[:1])
    reread.save()  # one entry used: a delta would do, but the old form is rewritten
    assert pq.read_schema(cache.path).names == ["key", "generation"]
    assert not reread.delta_path.exists()
    assert {k: v[1] for k, v in _contents(tmp_path / "old", 1000).items()} == by_key
