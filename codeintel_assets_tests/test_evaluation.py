"""Evaluation pools and metrics on a real chunked corpus (json + email of the stdlib)."""

from __future__ import annotations

import shutil
import sysconfig
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from codeintel_assets.core import faiss_store
from codeintel_assets.core.channels import (
    build_unit_channels,
    rank_units,
    unit_channels,
    unit_documents,
)
from codeintel_assets.core.chunk_table import build_chunk_table, chunk_repository
from codeintel_assets.core.embedding import (
    CachedEmbedder,
    EmbeddingCache,
    HashingEmbedder,
    embedding_text,
)
from codeintel_assets.core.errors import BadInputError, CodeintelError
from codeintel_assets.core.evaluation import (
    evaluate,
    oracle_from_chunks,
    pool_metrics,
    read_pool_tsv,
)
from codeintel_assets.core.heldout import StrippedFiles, held_out_corpus, strip_python_docs
from codeintel_assets.core.lexical import TokenCache
from codeintel_assets.core.manifest import build_manifest
from codeintel_assets.core.queries import SyntheticQuery, synthetic_queries
from codeintel_assets.core.schemas import EVAL_POOL
from codeintel_assets.core.syntax import cst_nodes_table
from codeintel_assets.core.tokens import tokenize
from codeintel_assets.core.units import UnitSet, build_units, unit_texts

DIM = 32


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("repo")
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for package in ("json", "email"):
        shutil.copytree(
            stdlib / package, root / package, ignore=shutil.ignore_patterns("__pycache__", "test*")
        )
    embedder = HashingEmbedder(dim=DIM)
    chunks, stats = chunk_repository("r", root, build_manifest(root).files, embedder)
    cache = EmbeddingCache(root.parent / "cache", embedder.model_id, DIM)
    table = build_chunk_table(chunks, embedder, cache, stats)
    ids = table["id"].to_numpy()
    vectors = table["embedding"].combine_chunks().flatten().to_numpy().reshape(-1, DIM)
    files: dict[str, list[tuple[int, str]]] = {}
    for row in table.select(["uri", "start_byte", "content"]).to_pylist():
        files.setdefault(row["uri"], []).append((row["start_byte"], row["content"]))
    nodes, _ = cst_nodes_table(
        "r",
        [(uri, "python", "".join(c for _, c in sorted(p)).encode()) for uri, p in files.items()],
    )
    units = UnitSet(*build_units("r", nodes, table))
    texts = [
        embedding_text(uri, name, text)
        for uri, name, text in zip(
            units.table["uri"].to_pylist(),
            units.table["qualified_name"].to_pylist(),
            unit_texts(units.table, table),
            strict=True,
        )
    ]
    queries = synthetic_queries(None, None, table, count=45, seed=0)
    return embedder, table, ids, vectors, build_unit_channels(units, texts), queries


def test_pool_has_every_source_at_the_right_depth(built):
    embedder, table, ids, vectors, bm25, queries = built
    index = faiss_store.build_index(ids, vectors, "IDMap2,Flat")
    result = evaluate(queries, table, index, bm25, embedder, k=10, k_factor=2)
    pool = result.pool
    assert pool.schema == EVAL_POOL
    counts = pool.group_by(["query_id", "source"]).aggregate([("rank", "max"), ("rank", "count")])
    for row in counts.to_pylist():
        assert row["rank_max"] == row["rank_count"]  # ranks are 1..n without gaps
        limit = 10 if row["source"] == "oracle" else 20
        assert row["rank_count"] <= limit
        if row["source"] in ("faiss", "oracle"):
            assert row["rank_count"] == limit
    assert set(pool["source"].to_pylist()) == {"faiss", "oracle", "bm25", "hybrid"}
    assert set(pool["query_id"].to_pylist()) == {q.query_id for q in queries}
    # Flat is exact: recall of ANN against the oracle is exactly 1.
    assert result.metrics["ann_recall"] == 1.0
    assert result.metrics["overall"]["faiss"] == result.metrics["overall"]["oracle"]


def test_ivf_with_one_probe_loses_recall_and_the_pool_shows_it(built):
    embedder, table, ids, vectors, bm25, queries = built
    index = faiss_store.build_index(ids, vectors, "IVF64,Flat")
    faiss_store.set_search_parameters(index, "nprobe=1")
    result = evaluate(queries, table, index, bm25, embedder, k=10, k_factor=2)
    assert result.metrics["ann_recall"] < 0.95
    # The same figure computed directly from the two searches.
    q = embedder.embed([x.text for x in queries])
    ann = faiss_store.search(index, q, 10).ids
    exact = oracle_from_chunks(table).search(q, 10).ids
    direct = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(ann, exact, strict=True)])
    assert result.metrics["ann_recall"] == pytest.approx(direct, abs=0.02)


def test_metrics_arithmetic_on_a_hand_made_pool():
    queries = [
        SyntheticQuery("q1", "a", "doc", "s1", [5], "m/a.py", 1),
        SyntheticQuery("q2", "b", "name", "s2", [7, 8], "n/b.py", 1),
    ]
    rows = [
        ("q1", "bm25", 1, 4, 2.0),
        ("q1", "bm25", 2, 5, 1.0),
        ("q2", "bm25", 1, 8, 3.0),
        ("q2", "bm25", 2, 1, 2.0),
        ("q2", "bm25", 3, 7, 1.0),
        ("q1", "faiss", 1, 9, 0.9),
    ]
    rows = [(*row, None) for row in rows]  # no unit ids: scored by chunk, as a TSV pool
    pool = pa.table(
        dict(zip(EVAL_POOL.names, zip(*rows, strict=True), strict=True)), schema=EVAL_POOL
    )
    metrics = pool_metrics(pool, queries, k=10, module_of={5: "m", 7: "n"})
    bm25 = metrics["overall"]["bm25"]
    assert bm25["mrr@10"] == pytest.approx((1 / 2 + 1 / 1) / 2)
    assert bm25["recall@1"] == pytest.approx((0 + 1 / 2) / 2)
    assert bm25["recall@5"] == pytest.approx((1 + 1) / 2)
    assert metrics["overall"]["faiss"]["recall@10"] == 0.0
    assert metrics["by_style"]["doc"]["bm25"]["mrr@10"] == pytest.approx(0.5)
    assert metrics["by_module"]["n"]["bm25"]["recall@1"] == pytest.approx(0.5)
    assert metrics["counts"]["module"] == {"m": 1, "n": 1}
    assert metrics["ann_recall"] is None  # no oracle in this pool
    assert metrics["level"] == "chunk"
    # With unit ids, a query is answered when its positive's unit is returned, once.
    unit_of = {4: 40, 5: 40, 8: 80, 7: 80, 1: 10, 9: 90}
    by_unit = pool.set_column(
        5, "unit_id", pa.array([unit_of[c] for c in pool["chunk_id"].to_pylist()], pa.int64())
    )
    unit_metrics = pool_metrics(by_unit, queries, k=10, unit_of=unit_of)
    assert unit_metrics["level"] == "unit"
    # q1: chunk 4 shares chunk 5's unit, so rank 1; q2: both positives are unit 80, rank 1.
    assert unit_metrics["overall"]["bm25"]["mrr@10"] == pytest.approx(1.0)
    assert unit_metrics["overall"]["bm25"]["recall@1"] == pytest.approx(1.0)


def test_report_and_plot(built, tmp_path):
    embedder, table, ids, vectors, bm25, queries = built
    index = faiss_store.build_index(ids, vectors, "IDMap2,Flat")
    result = evaluate(queries, table, index, bm25, embedder)
    md = result.report_markdown
    assert "ANN recall@10 against exact search: **1.0000**" in md
    for heading in ("## Overall", "### doc", "### name", "### masked", "## By module"):
        assert heading in md
    assert "| email |" in md  # the default module is the chunk's directory
    result.write_plot(tmp_path / "eval" / "report.png")
    assert (tmp_path / "eval" / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dimension_mismatch_is_a_clear_error(built):
    _, table, ids, vectors, bm25, queries = built
    index = faiss_store.build_index(ids, vectors, "IDMap2,Flat")
    with pytest.raises(CodeintelError, match="dimension 32 but the embedding model has 16"):
        evaluate(queries, table, index, bm25, HashingEmbedder(dim=16))


def test_read_pool_tsv(tmp_path):
    path = tmp_path / "pool.tsv"
    path.write_text(
        "query_id\tsource\trank\tchunk_id\tscore\n"
        "q1\tfaiss\t1\t-9223372036854775808\t0.5\n\n"
        "q1\tbm25\t1\t42\t7\n",
        encoding="utf-8",
    )
    table = read_pool_tsv(path)
    assert table.schema == EVAL_POOL
    assert table.to_pylist()[0] == {
        "query_id": "q1",
        "source": "faiss",
        "rank": 1,
        "chunk_id": -(2**63),
        "score": 0.5,
        "unit_id": None,
    }
    assert table.num_rows == 2


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("q1\tfaiss\t1\t5", "expected 5 tab-separated fields"),
        ("q1\tdense\t1\t5\t0.1", "field 'source' is 'dense'"),
        ("q1\tfaiss\tone\t5\t0.1", "field 'rank' is 'one', not an integer"),
        ("q1\tfaiss\t0\t5\t0.1", "field 'rank' is 0"),
        ("q1\tfaiss\t2\t5.5\t0.1", "field 'chunk_id' is '5.5'"),
        ("q1\tfaiss\t2\t99999999999999999999\t0.1", "out of the BIGINT range"),
        ("q1\tfaiss\t2\t5\tnan", "not a finite number"),
        ("\tfaiss\t2\t5\t0.1", "field 'query_id' is empty"),
        ("q1\tfaiss\t1\t6\t0.1", "duplicate rank 1"),
    ],
)
def test_read_pool_tsv_bad_rows_name_the_line(tmp_path, row, message):
    path = tmp_path / "pool.tsv"
    path.write_text("q1\tfaiss\t1\t5\t0.9\n" + row + "\n", encoding="utf-8")
    with pytest.raises(BadInputError, match=rf"pool\.tsv:2: .*{message}"):
        read_pool_tsv(path)


def test_hybrid_pool_is_what_search_ranks_at_unit_level(built):
    embedder, table, ids, vectors, channels, queries = built
    index = faiss_store.build_index(ids, vectors, "IDMap2,Flat")
    result = evaluate(queries, table, index, channels, embedder, fusion_depth=50)
    assert result.metrics["hybrid_channels"] == ["dense", "bm25", "definition"]
    assert result.metrics["level"] == "unit"
    assert "of dense, bm25, definition" in result.report_markdown
    # The pool's hybrid list is exactly the RRF of the three unit channels' lists.
    query = next(q for q in queries if q.style == "name")
    dense = faiss_store.search(index, embedder.embed([query.text]), 50)
    pairs = [(int(i), float(s)) for i, s in zip(dense.ids[0], dense.scores[0], strict=True)]
    ranked, _ = unit_channels(channels, query.text, "hybrid", pairs, 50)
    expected = [u for u, _ in rank_units(ranked, "hybrid", channels.units)[:20]]
    rows = [r for r in result.pool.to_pylist() if r["query_id"] == query.query_id]
    got = [r["unit_id"] for r in sorted(rows, key=lambda r: r["rank"]) if r["source"] == "hybrid"]
    assert got == expected and len(set(got)) == len(got)
    # Every hybrid row's chunk belongs to its unit, or is the chunk holding its first line.
    for row in rows:
        if row["source"] == "hybrid":
            unit = row["unit_id"]
            own = channels.units.chunks_of.get(unit, [])
            assert row["chunk_id"] in own or row["chunk_id"] == channels.units.best_chunk(unit)
    # Name queries spell a definition: hybrid (with the definition channel) beats BM25.
    by_style = result.metrics["by_style"]
    assert by_style["name"]["hybrid"]["mrr@10"] > by_style["name"]["bm25"]["mrr@10"]


def test_cached_embedder_embeds_each_text_once(tmp_path):
    class Counting(HashingEmbedder):
        def __init__(self) -> None:
            super().__init__(dim=DIM)
            self.embedded: list[str] = []

        def embed(self, texts):
            self.embedded.extend(texts)
            return super().embed(texts)

    model = Counting()
    cache = EmbeddingCache(tmp_path / "cache", model.model_id, DIM)
    cached = CachedEmbedder(model, cache)
    first = cached.embed(["parse the header", "open a socket"])
    cache.save()
    again = CachedEmbedder(model, EmbeddingCache(tmp_path / "cache", model.model_id, DIM))
    second = again.embed(["open a socket", "parse the header", "close it"])
    assert model.embedded == ["parse the header", "open a socket", "close it"]
    np.testing.assert_array_equal(second[:2], first[::-1])
    np.testing.assert_array_equal(
        second, HashingEmbedder(dim=DIM).embed(["open a socket", "parse the header", "close it"])
    )
    assert (cached.dim, cached.max_tokens, cached.model_id) == (DIM, 256, model.model_id)


def test_strip_python_docs_blanks_docstrings_and_comments_keeping_lines():
    text = (
        '"""Module doc."""\n'
        "import os  # why\n"
        "def f(x):\n"
        '    """Return x.\n'
        '\n    More."""\n'
        "    # a comment\n"
        "    return x  # trailing\n"
        'def g(): "same line"\n'
    )
    stripped = strip_python_docs(text)
    assert stripped.count("\n") == text.count("\n")
    assert "doc" not in stripped.lower().replace("def g", "") and "More" not in stripped
    assert "comment" not in stripped and "trailing" not in stripped and "why" not in stripped
    assert "    return x" in stripped and 'def g(): "same line"' in stripped
    assert strip_python_docs("def (:") == "def (:"  # does not parse: unchanged


def test_held_out_targets_are_searched_without_their_docstrings(built):
    embedder, table, ids, vectors, channels, queries = built
    held = [q for q in queries if q.style == "heldout"]
    assert held and all(
        q.text == next(d.text for d in queries if d.style == "doc" and d.symbol == q.symbol)
        for q in held
        if any(d.style == "doc" and d.symbol == q.symbol for d in queries)
    )
    corpus = held_out_corpus(queries, table, channels, embedder)
    assert corpus is not None and len(corpus.chunk_ids) > 0
    original = dict(
        zip(
            channels.units.table["unit_id"].to_pylist(),
            unit_documents(channels.units.table, table),
            strict=True,
        )
    )
    for query in held:
        for unit in {channels.units.unit_of[p] for p in query.positives}:
            # The query is the docstring's sentence: indexed as built, gone when held out.
            words = set(tokenize(query.text))
            assert words & set(tokenize(original[unit]))
            assert query.text not in corpus.documents[unit]
            assert not words & set(tokenize(corpus.documents[unit])) - set(
                tokenize(strip_python_docs(original[unit]))
            )
    index = faiss_store.build_index(ids, vectors, "IDMap2,Flat")
    result = evaluate(queries, table, index, channels, embedder, fusion_depth=50)
    assert result.metrics["held_out_chunks"] == len(corpus.chunk_ids)
    doc, held_out = result.metrics["by_style"]["doc"], result.metrics["by_style"]["heldout"]
    # Without its own answer in the index, BM25 loses what it had on the doc style.
    assert held_out["bm25"]["mrr@10"] < doc["bm25"]["mrr@10"]
    md = result.report_markdown
    assert md.index("## Held out") < md.index("## By style (MRR@10)") < md.index("## Overall")
    assert "| heldout | " in md and "| shares text with target |" in md


def _cached_keys(path: Path) -> list[str]:
    """Return the text hashes a token cache file (Arrow IPC) holds."""
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all()["text_xxh64"].to_pylist()


def test_held_out_caches_give_the_uncached_evaluation_and_keep_only_their_texts(built, tmp_path):
    embedder, table, ids, vectors, channels, queries = built
    index = faiss_store.build_index(ids, vectors, "IDMap2,Flat")
    # The build's tokens, as the BM25 stage leaves them.
    build_tokens = TokenCache(tmp_path / "tokens.arrow")
    build_tokens.tokenize(unit_documents(channels.units.table, table))
    build_tokens.save()

    def run(cold: bool) -> tuple:
        if cold:
            tokens, stripped = None, None
        else:
            tokens = TokenCache(tmp_path / "heldout.arrow", base=TokenCache(build_tokens.path))
            stripped = StrippedFiles(tmp_path / "stripped.parquet")
        result = evaluate(
            queries, table, index, channels, embedder, tokens=tokens, stripped=stripped
        )
        if not cold:
            tokens.save()
            stripped.save()
        return result, tokens, stripped

    clean, _, _ = run(cold=True)
    first, tokens, stripped = run(cold=False)
    from_build = tokens.hits  # all from the build's cache: the held-out one was empty
    assert 0 < from_build < len(channels.units.table) and stripped.hits == 0
    again, tokens, stripped = run(cold=False)
    assert tokens.hits == len(channels.units.table) and stripped.hits > 0
    for result in (first, again):
        assert result.pool.equals(clean.pool)
        assert result.metrics == clean.metrics
    # The held-out file keeps only the stripped texts' tokens: the rest are the build's.
    kept = _cached_keys(tmp_path / "heldout.arrow")
    assert set(kept).isdisjoint(_cached_keys(build_tokens.path))
    assert 0 < len(kept) <= len(channels.units.table) - from_build
