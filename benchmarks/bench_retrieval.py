"""Benchmark retrieval quality and latency on a copy of standard-library packages.

Copies several packages of the running Python (≥ 50k lines) into a temporary
repository, chunks it three times — with our syntax-aware chunker at its default
budget (the 128 tokens the model was trained on), with our chunker at the model's
256-token limit, and with fixed 40-line windows — embeds each with the real default
model (all-MiniLM-L6-v2; vectors cached under ``benchmarks/out/`` between runs),
generates synthetic queries (the ``ast`` fallback of ``core.queries``: documented
definitions, five styles, ``heldout`` first) and prints MRR@10 and recall@10 per
channel (dense, bm25, hybrid, all scoring units as search does) and per style for
every chunking. Synthetic queries come from the corpus's own docstrings: judge ranking
on ``bench_external.py`` first. Latency: ``bench_search_latency.py``.

Run: ``python benchmarks/bench_retrieval.py [--queries 400]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from codeintel_assets.core import faiss_store
from codeintel_assets.core.channels import build_unit_channels, unit_documents
from codeintel_assets.core.chunk_table import ChunkBuildStats, build_chunk_table, chunk_repository
from codeintel_assets.core.chunking import Chunk, chunk_id
from codeintel_assets.core.embedding import (
    EmbeddingCache,
    SentenceTransformerEmbedder,
    embedding_matrix,
)
from codeintel_assets.core.evaluation import evaluate
from codeintel_assets.core.manifest import build_manifest
from codeintel_assets.core.queries import STYLES, remap_positives, synthetic_queries
from codeintel_assets.core.syntax import cst_nodes_table
from codeintel_assets.core.tuning import ExactOracle
from codeintel_assets.core.units import UnitSet, build_units

PACKAGES = (
    "email", "json", "http", "logging", "asyncio", "concurrent", "importlib", "urllib",
    "wsgiref", "tomllib",
)  # fmt: skip
WINDOW_LINES = 40
OUT = Path(__file__).resolve().parent / "out"
REPO = "bench"


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


def vectors_of(table: pa.Table) -> np.ndarray:
    return embedding_matrix(table)


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=400)
    args = parser.parse_args()
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
            table = build_chunk_table(chunks, embedder, cache, chunk_stats)
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

        for label, table in tables.items():
            ids = table["id"].to_numpy()
            vectors = vectors_of(table)
            index = faiss_store.build_index(ids, vectors)
            t = time.perf_counter()
            units = UnitSet(*build_units(REPO, nodes, table))
            channels = build_unit_channels(units, unit_documents(units.table, table))
            print(f"{label}: {len(units)} units, bm25 and {len(channels.definitions)} "
                  f"definitions built in {time.perf_counter() - t:.1f}s")  # fmt: skip
            oracle = ExactOracle(ids, vectors)
            result = evaluate(query_sets[label], table, index, channels, embedder, k=10,
                              k_factor=2, oracle=oracle)  # fmt: skip
            results[f"{label}_metrics"] = result.metrics
            (OUT / f"report_{label}.md").write_text(result.report_markdown, encoding="utf-8")
            result.write_plot(OUT / f"report_{label}.png")
            print_quality(f"{label} ({table.num_rows} chunks)", result.metrics)
    results["seconds"] = time.perf_counter() - started
    (OUT / "bench_retrieval.json").write_text(json.dumps(results, indent=2, default=float))
    print(f"\ntotal {results['seconds']:.0f}s; figures in {OUT / 'bench_retrieval.json'}")


if __name__ == "__main__":
    main()
