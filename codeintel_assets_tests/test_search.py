"""Search over a published index: modes, explain data, and bad queries."""

from __future__ import annotations

import pytest

from codeintel_assets.core.embedding import HashingEmbedder
from codeintel_assets.core.errors import CodeintelError, EmptyQueryError
from codeintel_assets.core.search import CodeIndex

pytestmark = pytest.mark.integration


def test_modes_and_channel_explanations(published: str):
    with CodeIndex.open(published) as index:
        lexical = index.search("parse_config json", k=3, mode="bm25")
        assert lexical[0].uri == "pkg/parse.py"
        assert set(lexical[0].channels) == {"bm25"}
        dense = index.search("parse_config json", k=3, mode="dense")
        assert set(dense[0].channels) == {"dense"}
        hybrid = index.search("parse_config json", k=3, mode="hybrid")
        assert hybrid[0].uri == "pkg/parse.py"
        top = hybrid[0].channels
        # "parse_config" names a definition: the definition channel ranks its chunk first.
        assert set(top) == {"dense", "bm25", "definition"} and top["bm25"]["rank"] == 1
        assert top["definition"]["rank"] == 1
        # RRF with k=60: the fused score is the sum of 1/(60 + rank) over channels.
        expected = sum(1 / (60 + hit["rank"]) for hit in top.values())
        assert hybrid[0].score == pytest.approx(expected)
        assert hybrid[0].module_id == "pkg.parse"
        assert any(s.endswith("parse_config().") for s in hybrid[0].symbols)


def test_bad_queries(published: str):
    with CodeIndex.open(published) as index:
        with pytest.raises(EmptyQueryError):
            index.search("  \n ")
        punctuation = index.search("?!.,;", k=3)
        assert len(punctuation) == 3 and all(set(h.channels) == {"dense"} for h in punctuation)
        everything = index.search("vector", k=10_000, mode="dense")
        assert len(everything) == index.index.ntotal
        long_query = " ".join(["normalize the vector to unit length"] * 80)
        assert index.search(long_query, k=2)
        assert any("tokens" in note for note in index.notes)
        with pytest.raises(CodeintelError, match="unknown search mode"):
            index.search("x", mode="sparse")


def test_index_dimension_must_match_the_model(published: str):
    with pytest.raises(CodeintelError, match="dimension 64 but the embedding model has 32"):
        CodeIndex.open(published, embedder=HashingEmbedder(dim=32))


def test_published_catalog_holds_the_definition_index(published: str):
    import duckdb

    with CodeIndex.open(published) as index:
        assert index.lexical.definitions is not None and len(index.lexical.definitions) > 0
        catalog = index.layout.catalog
    con = duckdb.connect(str(catalog), read_only=True)
    try:
        rows = con.execute(
            "SELECT d.name, c.uri, c.start_line FROM definitions d "
            "JOIN v_chunks c ON c.id = d.chunk_id WHERE d.key = ?",
            ["parseconfig"],
        ).fetchall()
    finally:
        con.close()
    assert rows and rows[0][0] == "parse_config" and rows[0][1] == "pkg/parse.py"
