"""The BM25 index (built, saved, loaded, searched)."""

from __future__ import annotations

import numpy as np
import pytest

from codeintel_assets.core.channels import LexicalChannels, load_lexical_channels
from codeintel_assets.core.errors import CodeintelError
from codeintel_assets.core.lexical import build_bm25, load_bm25


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
    LexicalChannels(corpus).save(folder)
    loaded = load_lexical_channels(folder)
    assert loaded.bm25.search("http server", 3) == corpus.search("http server", 3)
    assert loaded.definitions is None
    other = build_bm25(np.array([7]), ["totally different words"])
    LexicalChannels(other).save(folder)
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
