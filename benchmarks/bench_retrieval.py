"""Benchmark retrieval quality and latency on a copy of standard-library packages.

Copies several packages of the running Python (≥ 50k lines) into a temporary
repository, chunks it three times — with our syntax-aware chunker at its default
budget (the 128 tokens the model was trained on), with our chunker at the model's
256-token limit, and with fixed 40-line windows — embeds each with the real default
model (all-MiniLM-L6-v2; vectors cached under ``benchmarks/out/`` between runs),
generates synthetic queries (the ``ast`` fallback of ``core.queries``: documented
definitions, four styles) and prints MRR@10 and recall@10 per channel (dense, bm25,
hybrid) and per style for every chunking.
Then search latency p50/p95 per mode at that size, and at 100k chunks with
generated vectors (jittered copies of the real chunk vectors, searched with the real
query vectors; Flat, and IVF tuned to recall@10 ≥ 0.95 on those queries) and a BM25
index over 100k chunk texts (the real chunks repeated).

Run: ``python benchmarks/bench_retrieval.py [--queries 400]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sysconfig
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa

from codeintel_assets.core import faiss_store
from codeintel_assets.core.channels import LexicalChannels
from codeintel_assets.core.chunk_table import ChunkBuildStats, build_chunk_table, chunk_repository
from codeintel_assets.core.chunking import Chunk, chunk_id
from codeintel_assets.core.definitions import DefinitionIndex, build_definitions
from codeintel_assets.core.embedding import (
    EmbeddingCache,
    SentenceTransformerEmbedder,
    embedding_text,
)
from codeintel_assets.core.evaluation import evaluate, ranking_quality
from codeintel_assets.core.fusion import rrf
from codeintel_assets.core.lexical import build_bm25
from codeintel_assets.core.manifest import build_manifest
from codeintel_assets.core.queries import STYLES, remap_positives, synthetic_queries
from codeintel_assets.core.syntax import cst_nodes_table
from codeintel_assets.core.tuning import ExactOracle, tune_index

PACKAGES = (
    "email", "json", "http", "logging", "asyncio", "concurrent", "importlib", "urllib",
    "wsgiref", "tomllib",
)  # fmt: skip
WINDOW_LINES = 40
OUT = Path(__file__).resolve().parent / "out"
REPO = "bench"
LARGE = 100_000
LATENCY_QUERIES = 200


def copy_corpus(target: Path) -> int:
    """Copy the packages (without tests and caches) under ``target``; return their line count."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    skip = shutil.ignore_patterns("__pycache__", "test", "tests", "*.pyc")
    for package in PACKAGES:
        shutil.copytree(stdlib / package, target / package, ignore=skip)
    return sum(p.read_text(encoding="utf-8").count("\n") for p in target.rglob("*.py"))


def window_chunks(root: Path, manifest: pa.Table) -> list[Chunk]:
    """Return fixed 40-line windows of every manifest file (the baseline chunker)."""
    chunks = []
    for uri, lang in zip(manifest["uri"].to_pylist(), manifest["lang"].to_pylist(), strict=True):
        lines = (root / uri).read_text(encoding="utf-8").splitlines(keepends=True)
        offset = 0
        for start in range(0, len(lines), WINDOW_LINES):
            content = "".join(lines[start : start + WINDOW_LINES])
            size = len(content.encode("utf-8"))
            chunks.append(
                Chunk(
                    id=chunk_id(REPO, uri, offset, offset + size),
                    uri=uri,
                    start_line=start + 1,
                    end_line=min(len(lines), start + WINDOW_LINES),
                    start_byte=offset,
                    end_byte=offset + size,
                    content=content,
                    lang=lang,
                    kind="window",
                    name=None,
                )
            )
            offset += size
    return chunks


def lexical_texts(table: pa.Table) -> list[str]:
    """Return what BM25 indexes per chunk: the embedded text (path, name, code)."""
    return [
        embedding_text(u, n, c)
        for u, n, c in zip(
            table["uri"].to_pylist(),
            table["name"].to_pylist(),
            table["content"].to_pylist(),
            strict=True,
        )
    ]


def vectors_of(table: pa.Table) -> np.ndarray:
    dim = table.schema.field("embedding").type.list_size
    return table["embedding"].combine_chunks().flatten().to_numpy().reshape(-1, dim)


def percentiles(samples: list[float]) -> str:
    p50, p95 = np.percentile(np.array(samples) * 1000, [50, 95])
    return f"p50 {p50:7.2f} ms  p95 {p95:7.2f} ms"


def measure_modes(
    index: faiss.Index,
    lexical_index: LexicalChannels,
    query_texts: list[str],
    query_vectors: np.ndarray,
    embedder: SentenceTransformerEmbedder | None,
    k: int = 10,
    depth: int = 100,
) -> dict[str, list[float]]:
    """Return per-query seconds of each mode; the embedding step only when ``embedder`` is set."""
    times: dict[str, list[float]] = {m: [] for m in ("embed", "faiss", "bm25", "dense", "hybrid")}
    for text, vector in zip(query_texts, query_vectors, strict=True):
        t0 = time.perf_counter()
        if embedder is not None:
            vector = embedder.embed([text])[0]
        t1 = time.perf_counter()
        dense = faiss_store.search(index, vector[None, :], depth)
        t2 = time.perf_counter()
        lexical = lexical_index.channels(text, depth)  # bm25 and, when built, definition
        t3 = time.perf_counter()
        pairs = zip(dense.ids[0], dense.scores[0], strict=True)
        rrf({"dense": [(int(i), float(s)) for i, s in pairs if i != -1]} | lexical)
        t4 = time.perf_counter()
        faiss_store.search(index, vector[None, :], k)  # dense mode fetches only k
        t5 = time.perf_counter()
        lexical_k_start = time.perf_counter()
        lexical_index.bm25.search(text, k)
        t6 = time.perf_counter()
        times["embed"].append(t1 - t0)
        times["faiss"].append(t5 - t4)
        times["bm25"].append(t6 - lexical_k_start)
        times["dense"].append((t1 - t0) + (t5 - t4))
        times["hybrid"].append((t1 - t0) + (t2 - t1) + (t3 - t2) + (t4 - t3))
    return times


def print_quality(label: str, metrics: dict) -> None:
    print(f"\n== {label}: {metrics['queries']} queries, ANN recall@10 vs exact "
          f"{metrics['ann_recall']:.4f}")  # fmt: skip
    groups = {"overall": metrics["overall"], **metrics["by_style"]}
    print(f"{'group':10} {'n':>4} | " + " | ".join(f"{c:^17}" for c in ("dense", "bm25", "hybrid")))
    print(f"{'':10} {'':>4} | " + " | ".join(f"{'MRR@10  R@10':^17}" for _ in range(3)))
    for name, scores in groups.items():
        n = metrics["queries"] if name == "overall" else metrics["counts"]["style"][name]
        cells = [
            f"{scores[s]['mrr@10']:.3f}  {scores[s]['recall@10']:.3f}".center(17)
            for s in ("faiss", "bm25", "hybrid")
        ]
        print(f"{name:10} {n:>4} | " + " | ".join(cells))


def print_parts(queries: list, definition_lists: dict, plain: dict) -> dict:
    """Print MRR@10 / R@10 of the definition channel alone and of dense+BM25 fusion."""
    groups = {"overall": queries} | {
        style: [q for q in queries if q.style == style] for style in STYLES
    }
    out = {}
    print(f"{'':15} | {'definition':^17} | {'dense+bm25 RRF':^17}")
    for name, subset in groups.items():
        alone = ranking_quality(subset, definition_lists)
        fused = (plain["overall"] if name == "overall" else plain["by_style"][name])["hybrid"]
        out[name] = {"definition": alone, "dense+bm25": fused}
        cells = [f"{m['mrr@10']:.3f}  {m['recall@10']:.3f}".center(17) for m in (alone, fused)]
        print(f"{name:10} {len(subset):>4} | " + " | ".join(cells))
    return out


def repeated_definitions(
    definitions: DefinitionIndex, table: pa.Table, ids: np.ndarray
) -> DefinitionIndex:
    """Return ``definitions`` (over ``table``'s chunks) repeated as the chunks are under ``ids``:
    row r of copy c is id ``ids[c·n + r]``, its file lives under ``c/``."""
    n = table.num_rows
    row_of = {chunk_id: r for r, chunk_id in enumerate(table["id"].to_pylist())}
    base = definitions.table.to_pylist()
    rows = [
        {**d, "uri": f"{c}/{d['uri']}", "chunk_id": int(ids[c * n + row_of[d["chunk_id"]]])}
        for c in range(len(ids) // n)
        for d in base
    ]
    return DefinitionIndex(pa.Table.from_pylist(rows, schema=definitions.table.schema))


def jittered_copies(real: np.ndarray, count: int, sigma: float, seed: int = 0) -> np.ndarray:
    """Return ``count`` unit vectors: the real chunk vectors repeated, each copy jittered.

    Copies of real embeddings keep the model's uneven, clumpy distribution, which is
    what makes IVF lose recall; Gaussian noise of ``sigma`` per dimension makes every
    copy distinct (cosine to its source ≈ 1 / sqrt(1 + sigma² · dim)).
    """
    rng = np.random.default_rng(seed)
    x = real[np.arange(count) % len(real)] + rng.normal(scale=sigma, size=(count, real.shape[1]))
    x = np.ascontiguousarray(x, dtype=np.float32)
    faiss.normalize_L2(x)
    return x


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=400)
    args = parser.parse_args()
    faiss.omp_set_num_threads(1)  # latency of one query on one core; the machine is shared
    OUT.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "corpus"
        root.mkdir()
        lines = copy_corpus(root)
        manifest = build_manifest(root).files
        # The syntax tree's definitions, for the definition channel of every chunking.
        nodes, _ = cst_nodes_table(REPO, [
            (uri, lang, (root / uri).read_bytes())
            for uri, lang in zip(manifest["uri"].to_pylist(), manifest["lang"].to_pylist(),
                                 strict=True)
        ])  # fmt: skip
        print(f"corpus: {manifest.num_rows} files, {lines} lines ({', '.join(PACKAGES)})")
        t = time.perf_counter()
        embedder = SentenceTransformerEmbedder()
        print(f"model loaded in {time.perf_counter() - t:.1f}s: {embedder.model_id}")
        cache = EmbeddingCache(OUT / "embedding_cache", embedder.model_id, embedder.dim)

        t = time.perf_counter()
        ours_chunks, stats = chunk_repository(REPO, root, manifest, embedder)
        print(f"our chunker: {len(ours_chunks)} chunks in {time.perf_counter() - t:.1f}s "
              f"(budget {embedder.chunk_tokens} tokens)")  # fmt: skip
        limit_chunks, limit_stats = chunk_repository(
            REPO, root, manifest, embedder, max_tokens=embedder.max_tokens
        )
        print(f"our chunker at the model's limit: {len(limit_chunks)} chunks "
              f"(budget {embedder.max_tokens} tokens)")  # fmt: skip
        windows = window_chunks(root, manifest)
        print(f"40-line windows: {len(windows)} chunks")
        tables = {}
        for label, chunks, chunk_stats in (
            ("ours", ours_chunks, stats),
            (f"ours-{embedder.max_tokens}", limit_chunks, limit_stats),
            ("windows", windows, ChunkBuildStats(chunks=len(windows))),
        ):
            t = time.perf_counter()
            table, _ = build_chunk_table(chunks, embedder, cache, chunk_stats)
            cache.save()
            took = time.perf_counter() - t
            print(f"embedded {label}: {chunk_stats.embedded} new, {chunk_stats.from_cache} "
                  f"cached, {took:.1f}s; over budget: {chunk_stats.over_budget}")  # fmt: skip
            tables[label] = table
            results[f"{label}_chunks"] = table.num_rows
            results[f"{label}_over_budget"] = chunk_stats.over_budget

        queries = synthetic_queries(None, None, tables["ours"], count=args.queries, seed=0)
        styles = {s: sum(q.style == s for q in queries) for s in STYLES}
        print(f"synthetic queries (ast fallback): {len(queries)} {styles}")
        query_sets = {
            label: queries if label == "ours" else remap_positives(queries, table)
            for label, table in tables.items()
        }

        indexes = {}
        for label, table in tables.items():
            ids = table["id"].to_numpy()
            vectors = vectors_of(table)
            index = faiss_store.build_index(ids, vectors)
            t = time.perf_counter()
            definitions = build_definitions(nodes, table)
            bm25 = LexicalChannels(build_bm25(ids, lexical_texts(table)), definitions)
            print(f"{label}: bm25 and {len(definitions)} definitions built in "
                  f"{time.perf_counter() - t:.1f}s")  # fmt: skip
            indexes[label] = (index, bm25)
            oracle = ExactOracle(ids, vectors)
            result = evaluate(query_sets[label], table, index, bm25, embedder, k=10, k_factor=2,
                              oracle=oracle)  # fmt: skip
            results[f"{label}_metrics"] = result.metrics
            (OUT / f"report_{label}.md").write_text(result.report_markdown, encoding="utf-8")
            result.write_plot(OUT / f"report_{label}.png")
            print_quality(f"{label} ({table.num_rows} chunks)", result.metrics)
            # What hybrid fuses, shown apart: the definition channel alone, and the
            # fusion of dense and BM25 without it.
            plain = evaluate(query_sets[label], table, index,
                             dataclasses.replace(bm25, definitions=None), embedder, k=10,
                             k_factor=2, oracle=oracle).metrics  # fmt: skip
            alone = {q.query_id: definitions.search(q.text, 20) for q in query_sets[label]}
            extra = print_parts(query_sets[label], alone, plain)
            results[f"{label}_parts"] = extra

        print("\n== latency at corpus size (one thread, one query at a time)")
        stride = max(1, len(queries) // LATENCY_QUERIES)  # every style, not only the first
        texts = [q.text for q in queries[::stride]]
        for label, (index, bm25) in indexes.items():
            times = measure_modes(index, bm25, texts, np.zeros((len(texts), index.d)), embedder)
            results[f"{label}_latency"] = {m: list(np.percentile(v, [50, 95]) * 1000)
                                           for m, v in times.items()}  # fmt: skip
            for mode, samples in times.items():
                print(f"{label:8} {index.ntotal:6} chunks  {mode:7} {percentiles(samples)}")

        print(
            f"\n== latency at {LARGE} chunks (jittered copies of the real vectors, "
            "BM25 and definitions over the real chunks repeated)"
        )
        vectors = jittered_copies(vectors_of(tables["ours"]), LARGE, sigma=0.03)
        ids = np.arange(1, LARGE + 1, dtype=np.int64)
        base = lexical_texts(tables["ours"])
        t = time.perf_counter()
        texts_large = [base[i % len(base)] for i in range(LARGE)]
        ours_definitions = indexes["ours"][1].definitions
        definitions_large = repeated_definitions(ours_definitions, tables["ours"], ids)
        bm25_large = LexicalChannels(build_bm25(ids, texts_large), definitions_large)
        print(f"bm25 and {len(bm25_large.definitions)} definitions over {LARGE} chunks built in "
              f"{time.perf_counter() - t:.1f}s")  # fmt: skip
        # The real synthetic queries, embedded: the queries an index of this corpus would get.
        query_vectors = embedder.embed([q.text for q in queries])
        oracle = ExactOracle(ids, vectors)
        for factory in ("IDMap2,Flat", faiss_store.choose_factory(LARGE)):
            t = time.perf_counter()
            index = faiss_store.build_index(ids, vectors, factory)
            built = time.perf_counter() - t
            point = tune_index(index, query_vectors, k=10, target_recall=0.95, oracle=oracle)
            print(f"{factory}: built {built:.1f}s; tuned {point.knobs or '(exact)'} "
                  f"recall@10 {point.recall:.4f} met={point.met}")  # fmt: skip
            print("  sweep: " + ", ".join(f"{p['knobs'] or 'exact'}→{p['recall']:.3f}"
                                          for p in point.sweep))  # fmt: skip
            times = measure_modes(index, bm25_large, texts, query_vectors[::stride], None)
            results[f"large_{factory}"] = {
                "knobs": point.knobs, "recall": point.recall, "sweep": point.sweep,
                "latency": {m: list(np.percentile(v, [50, 95]) * 1000)
                            for m, v in times.items() if m != "embed"},
            }  # fmt: skip
            for mode in ("faiss", "bm25", "hybrid"):
                print(f"{factory:12} {LARGE} chunks  {mode:7} {percentiles(times[mode])}"
                      + ("  (+ query embedding)" if mode == "hybrid" else ""))  # fmt: skip
    results["seconds"] = time.perf_counter() - started
    (OUT / "bench_retrieval.json").write_text(json.dumps(results, indent=2, default=float))
    print(f"\ntotal {results['seconds']:.0f}s; figures in {OUT / 'bench_retrieval.json'}")


if __name__ == "__main__":
    main()
