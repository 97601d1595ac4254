"""The BM25 index (built, saved, loaded, searched)."""

from __future__ import annotations

import bm25s
import numpy as np
import pyarrow as pa
import pytest

from codeintel_assets.core.checksums import atomic_folder
from codeintel_assets.core.errors import CodeintelError
from codeintel_assets.core.lexical import TokenCache, bm25_model, build_bm25, load_bm25
from codeintel_assets.core.tokens import tokenize


@pytest.fixture()
def corpus():
    ids = np.array([101, 102, 103, 104], dtype=np.int64)
    texts = [
        "def parse_url(text):\n    return urlsplit(text)",
        "class HTTPServer:\n    def serve_forever(self): ...",
        "def read_config(path):\n    '''Read the configuration file.'''",
        "x = 1",
    ]
    return build_bm25(ids, texts)


def test_bm25_finds_split_identifier_parts(corpus):
    hits = corpus.search("http server", 10)
    assert hits[0][0] == 102
    assert [i for i, _ in corpus.search("parse URL", 10)][0] == 101
    assert [i for i, _ in corpus.search("parseUrl", 10)][0] == 101
    scores = [s for _, s in corpus.search("read config server", 10)]
    assert scores == sorted(scores, reverse=True)


def test_bm25_empty_punctuation_and_unknown_queries_return_nothing(corpus):
    assert corpus.search("", 5) == []
    assert corpus.search("   ", 5) == []
    assert corpus.search("?!();", 5) == []
    assert corpus.search("zebra quantum", 5) == []
    assert corpus.search("http", 0) == []


def test_bm25_k_larger_than_corpus_returns_every_match(corpus):
    hits = corpus.search("def parse read http serve x", 1000)
    assert sorted(i for i, _ in hits) == [101, 102, 103, 104]
    assert len(corpus.search("http", 1000)) == 1


def test_bm25_save_load_roundtrip_and_overwrite(tmp_path, corpus):
    folder = tmp_path / "bm25"
    with atomic_folder(folder) as tmp:
        corpus.save(tmp)
    loaded = load_bm25(folder)
    assert loaded.search("http server", 3) == corpus.search("http server", 3)
    other = build_bm25(np.array([7]), ["totally different words"])
    with atomic_folder(folder) as tmp:
        other.save(tmp)
    assert load_bm25(folder).search("different", 3)[0][0] == 7
    # Nothing is left beside the folder: temp and old copies are cleaned up.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bm25"]


def test_bm25_empty_corpus_and_bad_inputs(tmp_path):
    empty = build_bm25(np.array([], dtype=np.int64), [])
    assert empty.search("anything", 10) == []
    (tmp_path / "empty").mkdir()
    empty.save(tmp_path / "empty")
    assert load_bm25(tmp_path / "empty").search("anything", 10) == []
    with pytest.raises(CodeintelError, match="2 ids but 1 texts"):
        build_bm25(np.array([1, 2]), ["one"])
    with pytest.raises(CodeintelError, match="missing or incomplete"):
        load_bm25(tmp_path / "nowhere")


TEXTS = [
    "def parse_url(text):\n    return urlsplit(text)",
    "class HTTPServer:\n    def serve_forever(self): ...",
    "def read_config(path):\n    '''Read the configuration file.'''",
]


def test_token_cache_gives_the_tokens_of_a_clean_run_and_keeps_only_this_runs_texts(tmp_path):
    path = tmp_path / "cache" / "tokens.arrow"
    first = TokenCache(path)
    assert first.tokenize(TEXTS) == [tokenize(t) for t in TEXTS] and first.hits == 0
    first.save()

    again = TokenCache(path)
    edited = [TEXTS[0], "def read_config(path, strict):\n    ...", TEXTS[2]]
    assert again.tokenize(edited) == [tokenize(t) for t in edited]
    assert again.hits == 2  # the edited text alone is tokenized
    again.save()
    assert _rows(path) == 3  # TEXTS[1] left with the run that used it

    # Through the cache or not, the index is the same.
    ids = np.arange(3, dtype=np.int64)
    cached = build_bm25(ids, edited, TokenCache(path))
    assert cached.search("read config", 3) == build_bm25(ids, edited).search("read config", 3)


def _rows(path) -> int:
    """Return the number of texts a token cache file holds."""
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all().num_rows


def test_an_unreadable_token_cache_is_an_empty_one(tmp_path):
    path = tmp_path / "tokens.arrow"
    path.write_bytes(b"not arrow")
    cache = TokenCache(path)
    assert cache.tokenize(TEXTS) == [tokenize(t) for t in TEXTS] and cache.hits == 0
    cache.save()
    assert TokenCache(path).tokenize(TEXTS[:1]) == [tokenize(TEXTS[0])]


def _columns(model) -> dict[str, tuple[list[int], list[float]]]:
    """Return each token's column of a bm25s model: (documents, scores), by token."""
    token_of = {i: t for t, i in model.vocab_dict.items()}
    data, rows, starts = (model.scores[k] for k in ("data", "indices", "indptr"))
    return {
        token_of[c]: (
            rows[starts[c] : starts[c + 1]].tolist(),
            data[starts[c] : starts[c + 1]].tolist(),
        )
        for c in range(len(starts) - 1)
    }


def test_the_vectorized_index_scores_every_token_as_bm25s_does():
    rng = np.random.default_rng(7)
    words = ["parse", "url", "http", "server", "read", "config", "Größe", "x", "self", "_"]
    docs = [list(rng.choice(words, size=int(rng.integers(0, 40)))) for _ in range(300)]
    docs += [[], ["parse"] * 200, [w for w in words for _ in range(3)]]
    reference = bm25s.BM25()
    reference.index(docs, show_progress=False)
    mine = bm25_model(pa.array(docs, pa.list_(pa.string())))
    # Float32 scores equal bit for bit, column by column, and so do query scores.
    assert _columns(mine) == _columns(reference)
    assert mine.vocab_dict.keys() == reference.vocab_dict.keys()
    query = ["parse", "server", "Größe"]
    assert np.array_equal(
        mine.get_scores_from_ids(mine.get_tokens_ids(query)),
        reference.get_scores_from_ids(reference.get_tokens_ids(query)),
    )


def test_a_corpus_without_a_single_token_is_searchable():
    index = build_bm25(np.array([1, 2]), ["", "?!"])
    assert index.search("anything", 5) == [] and len(index) == 2


def test_the_token_cache_keeps_a_text_given_twice_once(tmp_path):
    path = tmp_path / "tokens.arrow"
    cache = TokenCache(path)
    assert cache.tokenize([TEXTS[0], TEXTS[0]]) == [tokenize(TEXTS[0])] * 2
    cache.save()
    assert _rows(path) == 1
    again = TokenCache(path)
    assert again.tokenize([TEXTS[1], TEXTS[0]]) == [tokenize(TEXTS[1]), tokenize(TEXTS[0])]
    assert again.hits == 1


def test_a_token_cache_that_tokenized_nothing_saves_an_empty_file(tmp_path):
    path = tmp_path / "tokens.arrow"
    unused = TokenCache(path)
    unused.save()
    empty = TokenCache(path)
    assert empty.tokenize([]) == []
    empty.save()
    assert _rows(path) == 0


def test_coded_tokens_give_the_index_and_files_plain_tokens_give(tmp_path):
    """Tokens coded into a vocabulary holding other tokens too (a cache's pool) make the
    model, and the files, that the same tokens as strings make."""
    rng = np.random.default_rng(3)
    words = ["parse", "url", "http", "server", "read", "config", "Größe", "x", "_"]
    docs = [list(rng.choice(words, size=int(rng.integers(0, 30)))) for _ in range(200)]
    plain = pa.array(docs, pa.list_(pa.string()))
    vocabulary = pa.array(["unused", *reversed(words), "also unused"])
    position = {w: i for i, w in enumerate(vocabulary.to_pylist())}
    flat = [position[w] for d in docs for w in d]
    offsets = np.cumsum([0] + [len(d) for d in docs])
    coded = pa.ListArray.from_arrays(
        pa.array(offsets, pa.int32()),
        pa.DictionaryArray.from_arrays(pa.array(flat, pa.int32()), vocabulary),
    )
    a, b = bm25_model(plain), bm25_model(coded)
    assert _columns(a) == _columns(b)
    assert list(a.vocab_dict.items()) == list(b.vocab_dict.items())
    a.save(str(tmp_path / "a"), show_progress=False)
    b.save(str(tmp_path / "b"), show_progress=False)
    for name in sorted(p.name for p in (tmp_path / "a").iterdir()):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_a_cache_with_a_base_codes_its_texts_into_one_vocabulary(tmp_path):
    base = TokenCache(tmp_path / "base.arrow")
    base.tokenize(TEXTS[:2])
    base.save()
    (tmp_path / "own.parquet").write_bytes(b"the older form")
    own = TokenCache(tmp_path / "own.arrow", base=TokenCache(base.path))
    texts = [TEXTS[2], TEXTS[0], "def server_config(): ...", TEXTS[1]]
    assert own.tokenize(texts) == [tokenize(t) for t in texts] and own.hits == 2
    own.save()
    assert _rows(own.path) == 2  # its own texts only: the base holds the others
    assert not (tmp_path / "own.parquet").exists()
    again = TokenCache(own.path, base=TokenCache(base.path))
    assert again.tokenize(texts) == [tokenize(t) for t in texts] and again.hits == 4
