"""Search over a published index: modes, explain data, and bad queries."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from codeintel_assets.core.catalog import ChunkFilter
from codeintel_assets.core.embedding import HashingEmbedder
from codeintel_assets.core.errors import CodeintelError, EmptyQueryError
from codeintel_assets.core.excerpts import count_tokens
from codeintel_assets.core.search import CodeIndex

pytestmark = pytest.mark.integration


def test_modes_and_channel_explanations(published: str):
    with CodeIndex.open(published) as index:
        lexical = index.search("parse_config json", k=3, mode="bm25")
        assert (lexical[0].uri, lexical[0].qualified_name) == ("pkg/parse.py", "parse_config")
        assert set(lexical[0].channels) == {"bm25"}
        dense = index.search("parse_config json", k=3, mode="dense")
        assert set(dense[0].channels) == {"dense"}
        hybrid = index.search("parse_config json", k=3, mode="hybrid")
        top = hybrid[0]
        # The result is the whole definition: its kind, name and lines.
        assert (top.uri, top.kind, top.name) == ("pkg/parse.py", "function", "parse_config")
        assert (top.start_line, top.end_line) == (6, 8)
        assert top.excerpt.startswith("def parse_config(text):") and not top.truncated
        assert top.start_line <= top.match_end_line and top.match_start_line <= top.end_line
        # "parse_config" names a definition: the definition channel ranks it first.
        assert top.channels["bm25"]["rank"] == 1 and top.channels["definition"]["rank"] == 1
        # RRF with k=60: the fused score is the sum of 1/(60 + rank) over channels.
        expected = sum(1 / (60 + hit["rank"]) for hit in top.channels.values())
        assert top.score == pytest.approx(expected)
        assert top.module_id == "pkg.parse"
        fields = set(top.to_dict())
        assert {"chunk_id", "uri", "start_line", "end_line", "lang", "score", "rank"} <= fields
        assert {"unit_id", "kind", "qualified_name", "match_start_line", "excerpt"} <= fields


def test_a_unit_is_returned_once_and_nested_units_keep_their_own_rank(published: str):
    with CodeIndex.open(published) as index:
        for mode in ("hybrid", "dense", "bm25"):
            for query in ("count increment", "vector store", "parse render report"):
                ids = [r.unit_id for r in index.search(query, k=50, mode=mode, kind="all")]
                assert len(ids) == len(set(ids)), (mode, query)
        method = index.search("Counter.increment()", k=5)[0]
        assert (method.kind, method.qualified_name) == ("method", "Counter.increment")
        parent = index.units.row(index.units.row(method.unit_id)["parent_unit_id"])
        assert (parent["kind"], parent["name"]) == ("class", "Counter")


def test_filters_and_kind_apply_before_the_cut(published: str):
    with CodeIndex.open(published) as index:
        js = index.search("count", k=5, filters=ChunkFilter(languages=["javascript"]))
        assert js and {r.lang for r in js} == {"javascript"}
        web = index.search("distance", k=5, filters=ChunkFilter(include_globs=["web/**"]))
        assert web and all(r.uri.startswith("web/") for r in web)
        code = index.search("usage fixture", k=20, mode="bm25")
        assert all(r.uri != "README.md" for r in code)
        docs = index.search("usage fixture", k=20, mode="bm25", kind="docs")
        assert docs and {r.uri for r in docs} == {"README.md"}
        in_module = index.search("normalize vector report", k=10, module="pkg.parse")
        assert in_module and {r.module_id for r in in_module} == {"pkg.parse"}
        with pytest.raises(CodeintelError, match="unknown kind"):
            index.search("x", kind="tests")


def test_max_tokens_bounds_the_excerpts_and_says_so(published: str):
    with CodeIndex.open(published) as index:
        whole = index.search("render report rows table", k=4, max_tokens=None)
        assert not any(r.truncated for r in whole)
        assert not any("max_tokens" in note for note in index.notes)
        small = index.search("render report rows table", k=4, max_tokens=30)
        assert sum(count_tokens(r.excerpt) for r in small) <= 30
        assert any(r.truncated for r in small)
        assert any("max_tokens=30" in note for note in index.notes)
        first = next(r for r in small if r.name == "render_report")
        assert first.excerpt.startswith("def render_report(rows):")
        with pytest.raises(CodeintelError, match="max_tokens"):
            index.search("x", max_tokens=0)


def test_bad_queries(published: str):
    with CodeIndex.open(published) as index:
        with pytest.raises(EmptyQueryError):
            index.search("  \n ")
        punctuation = index.search("?!.,;", k=3)
        assert len(punctuation) == 3 and all(set(h.channels) == {"dense"} for h in punctuation)
        everything = index.search("vector", k=10_000, mode="dense", kind="all")
        # k beyond the corpus: every unit that owns a chunk, each once.
        assert len(everything) == len(set(index.units.unit_of.values()))
        long_query = " ".join(["normalize the vector to unit length"] * 80)
        assert index.search(long_query, k=2)
        assert any("tokens" in note for note in index.notes)
        with pytest.raises(CodeintelError, match="unknown search mode"):
            index.search("x", mode="sparse")


def test_index_dimension_must_match_the_model(published: str):
    with pytest.raises(CodeintelError, match="dimension 64 but the embedding model has 32"):
        CodeIndex.open(published, embedder=HashingEmbedder(dim=32))


def test_published_catalog_joins_units_and_chunks(published: str):
    import duckdb

    with CodeIndex.open(published) as index:
        catalog = index.layout.catalog
        chunks = index.index.ntotal
    con = duckdb.connect(str(catalog), read_only=True)
    try:
        per_chunk = con.execute(
            "SELECT count(*), count(DISTINCT chunk_id) FROM v_chunk_units"
        ).fetchone()
        named = con.execute(
            "SELECT uri, start_line, kind FROM definitions WHERE name = ?", ["parse_config"]
        ).fetchall()
        methods = con.execute(
            "SELECT u.qualified_name FROM v_units u JOIN v_units p "
            "ON p.unit_id = u.parent_unit_id WHERE p.name = ? ORDER BY u.start_line",
            ["Counter"],
        ).fetchall()
    finally:
        con.close()
    assert per_chunk == (chunks, chunks)  # every chunk has exactly one unit
    assert named == [("pkg/parse.py", 6, "function")]
    assert [m[0] for m in methods] == ["Counter.constructor", "Counter.increment"]


def test_threads_search_one_index_at_once_each_with_its_own_notes(published: str):
    # A server's request threads share one CodeIndex: answers and notes must be those of
    # each thread's own query, as if it had searched alone.
    queries = [
        ("render report rows table", 30),  # cut: a max_tokens note
        ("parse_config json", None),  # whole: no note
        ("normalize vector", 4000),
        ("Counter.increment()", 30),
    ]
    with CodeIndex.open(published) as index:

        def answer(query: tuple[str, int | None]) -> tuple[list[dict], list[str]]:
            text, budget = query
            results = index.search(text, k=5, max_tokens=budget, kind="all")
            return [r.to_dict() for r in results], list(index.notes)

        alone = [answer(q) for q in queries]
        assert any(notes for _, notes in alone) and not all(notes for _, notes in alone)
        with ThreadPoolExecutor(max_workers=4) as pool:
            together = list(pool.map(answer, queries * 8))
    assert together == alone * 8
