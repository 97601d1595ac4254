"""Search latency: ranking units against the chunk ranking it replaced, in one run.

Corpus: packages of the running Python's standard library, chunked with our chunker
(~10k chunks), and a 100k-chunk corpus made of copies of it (file paths prefixed per
copy, vectors jittered so every copy is distinct). Vectors come from the fast hashing
embedder — latency does not depend on what the vectors mean — and the query embedding
is timed apart with the real model and added to every hybrid figure.

Per query, one thread, 200 queries (identifiers and docstring sentences of the corpus):

* ``chunks`` (before): FAISS top 100 chunks, BM25 over chunk texts top 100, the
  definition channel over chunks, RRF;
* ``units`` (now): FAISS top 100 chunks grouped into units (``dense_units``), BM25 over
  unit texts top 100, the definition channel over units, RRF, spread over files
  (``rank_units``; ``core.channels``).

Hydration (one catalog query for the best chunks, one per result for its lines) is
timed end to end by ``bench_external.py`` and the service benchmark.
Run: ``python benchmarks/bench_search_latency.py``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import jittered_copies  # noqa: E402

from codeintel_assets.core import faiss_store
from codeintel_assets.core.channels import (
    build_unit_channels,
    rank_units,
    unit_channels,
    unit_documents,
)
from codeintel_assets.core.chunk_table import build_chunk_table, chunk_repository
from codeintel_assets.core.definitions import DefinitionIndex, definition_key
from codeintel_assets.core.embedding import (
    EmbedderSpec,
    EmbeddingCache,
    HashingEmbedder,
    embedding_text,
    load_embedder,
)
from codeintel_assets.core.fusion import rrf
from codeintel_assets.core.lexical import build_bm25
from codeintel_assets.core.manifest import build_manifest
from codeintel_assets.core.schemas import DEFINITIONS
from codeintel_assets.core.search import use_query_threads
from codeintel_assets.core.syntax import CST_DEFINITION_KINDS, cst_nodes_table
from codeintel_assets.core.units import UnitSet, build_units

PACKAGES = ("email", "json", "http", "logging", "asyncio", "concurrent", "importlib", "urllib",
            "xml", "wsgiref", "tomllib", "unittest", "multiprocessing")  # fmt: skip
LARGE = 100_000
DEPTH = 100
QUERIES = 200


def corpus(root: Path) -> tuple[pa.Table, pa.Table]:
    """Return (chunks, cst_nodes) of the packages copied under ``root``."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    skip = shutil.ignore_patterns("__pycache__", "test", "tests", "*.pyc")
    for package in PACKAGES:
        shutil.copytree(stdlib / package, root / package, ignore=skip)
    embedder = HashingEmbedder(dim=384)
    manifest = build_manifest(root).files
    chunks, stats = chunk_repository("bench", root, manifest, embedder, 128)
    cache = EmbeddingCache(root.parent / "cache", embedder.model_id, embedder.dim)
    table = build_chunk_table(chunks, embedder, cache, stats)
    files = [(r["uri"], r["lang"], (root / r["uri"]).read_bytes()) for r in manifest.to_pylist()]
    nodes, _ = cst_nodes_table("bench", [f for f in files if f[1] == "python"])
    return table, nodes


def copies(table: pa.Table, nodes: pa.Table, count: int) -> tuple[pa.Table, pa.Table]:
    """Return about ``count`` chunks: whole copies of ``table`` (and their syntax nodes)."""
    repeat = max(1, round(count / table.num_rows))
    dim = table.schema.field("embedding").type.list_size
    base = table["embedding"].combine_chunks().flatten().to_numpy().reshape(-1, dim)
    jittered = jittered_copies(base, repeat * len(base), sigma=0.03)
    parts, node_parts = [], []
    for c in range(repeat):
        vectors = jittered[c * len(base) : (c + 1) * len(base)]
        part = table.set_column(0, "id", pa.array(table["id"].to_numpy() + c * (1 << 40)))
        part = part.set_column(1, "uri", pa.array([f"c{c}/{u}" for u in table["uri"].to_pylist()]))
        embedding = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim)
        parts.append(
            part.set_column(part.schema.get_field_index("embedding"), "embedding", embedding)
        )
        node_parts.append(
            nodes.set_column(1, "uri", pa.array([f"c{c}/{u}" for u in nodes["uri"].to_pylist()]))
        )
    return pa.concat_tables(parts), pa.concat_tables(node_parts)


def chunk_definitions(nodes: pa.Table, chunks: pa.Table) -> DefinitionIndex:
    """The definition channel as it was: each definition → the chunk holding its start."""
    by_uri: dict[str, list[tuple[int, int, int]]] = {}
    for r in chunks.select(["uri", "start_line", "end_line", "id"]).to_pylist():
        by_uri.setdefault(r["uri"], []).append((r["start_line"], r["end_line"], r["id"]))
    rows = []
    for n in nodes.select(["uri", "kind", "start_line", "name"]).to_pylist():
        if not n["name"] or n["kind"] not in CST_DEFINITION_KINDS:
            continue
        holder = next(
            (c for s, e, c in by_uri.get(n["uri"], []) if s <= n["start_line"] <= e), None
        )
        key = definition_key(n["name"])
        if holder is not None and key:
            rows.append({"key": key, "name": n["name"], "kind": n["kind"], "uri": n["uri"],
                         "start_line": n["start_line"], "unit_id": holder})  # fmt: skip
    return DefinitionIndex(pa.Table.from_pylist(rows, schema=DEFINITIONS))


def percentiles(samples: list[float]) -> tuple[float, float]:
    p50, p95 = np.percentile(np.array(samples) * 1000, [50, 95])
    return float(p50), float(p95)


def measure(table: pa.Table, nodes: pa.Table, queries: list[str], vectors: np.ndarray) -> dict:
    """Return p50/p95 ms of the chunk ranking and of the unit ranking over ``table``."""
    dim = vectors.shape[1]
    ids = table["id"].to_numpy()
    flat = table["embedding"].combine_chunks().flatten().to_numpy().reshape(-1, dim)
    index = faiss_store.build_index(ids, flat, faiss_store.choose_factory(len(ids)))
    columns = (table[c].to_pylist() for c in ("uri", "name", "content"))
    texts = [embedding_text(u, n, c) for u, n, c in zip(*columns, strict=True)]
    chunk_bm25 = build_bm25(ids, texts)
    chunk_defs = chunk_definitions(nodes, table)
    units = UnitSet(*build_units("bench", nodes, table))
    channels = build_unit_channels(units, unit_documents(units.table, table))
    before, after = [], []
    for text, vector in zip(queries, vectors, strict=True):
        t0 = time.perf_counter()
        hits = faiss_store.search(index, vector[None, :], DEPTH)
        dense = [(int(i), float(s)) for i, s in zip(hits.ids[0], hits.scores[0], strict=True)]
        rrf({"dense": dense, "bm25": chunk_bm25.search(text, DEPTH),
             "definition": chunk_defs.search(text, DEPTH)})  # fmt: skip
        t1 = time.perf_counter()
        hits = faiss_store.search(index, vector[None, :], DEPTH)
        dense = [(int(i), float(s)) for i, s in zip(hits.ids[0], hits.scores[0], strict=True)]
        ranked, _ = unit_channels(channels, text, "hybrid", dense, DEPTH)
        rank_units(ranked, "hybrid", units)
        t2 = time.perf_counter()
        before.append(t1 - t0)
        after.append(t2 - t1)
    return {"chunks": table.num_rows, "units": len(units), "before": percentiles(before),
            "after": percentiles(after)}  # fmt: skip


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "corpus"
        root.mkdir()
        table, nodes = corpus(root)
        names = [n for n in nodes["name"].to_pylist() if n][: QUERIES // 2]
        docs = [c.split("\n")[1].strip(' "') for c in table["content"].to_pylist()
                if c.count("\n") > 2][: QUERIES - len(names)]  # fmt: skip
        queries = [q for q in names + docs if q][:QUERIES]
        use_query_threads(1)  # as a serving process does
        spec = EmbedderSpec()
        model = load_embedder(spec)
        model.embed(queries[:4])  # warm
        embed = []
        for q in queries:
            t = time.perf_counter()
            model.embed([q])
            embed.append(time.perf_counter() - t)
        e50, e95 = percentiles(embed)
        print(
            f"query embedding (real MiniLM, {spec.backend}, one query): "
            f"p50 {e50:.2f} ms  p95 {e95:.2f} ms"
        )
        vectors = HashingEmbedder(dim=384).embed(queries)
        for label, (chunks, syntax) in (
            ("~10k", (table, nodes)),
            ("100k", copies(table, nodes, LARGE)),
        ):
            m = measure(chunks, syntax, queries, vectors)
            b, a = m["before"], m["after"]
            print(
                f"{label}: {m['chunks']} chunks, {m['units']} units | ranking before (chunks) "
                f"p50 {b[0]:.2f} / p95 {b[1]:.2f} ms; now (units) p50 {a[0]:.2f} / p95 {a[1]:.2f}"
                f" ms; ratio p50 {a[0] / b[0]:.2f}, p95 {a[1] / b[1]:.2f}; with the query "
                f"embedding: before {b[0] + e50:.1f} ms, now {a[0] + e50:.1f} ms p50"
            )


if __name__ == "__main__":
    main()
