"""What an edit costs the FAISS stage: a full rebuild and tune against an in-place update.

Makes ``--count`` random-but-clustered unit vectors (384-d, MiniLM's dimension) as chunk
vectors, and ``--queries`` query vectors drawn off the corpus (a corpus vector plus as
much noise again, normalized: like text queries they fall between lists, so IVF needs
several probes), then times in one process, through ``core.faiss_build``:

* a full rebuild and tune (train ``IVF{4·√n},Flat``, add, sweep ``nprobe``, write index
  and audit). Its query vectors are given, not made: the model load (~12 s of imports
  at the library's scale) and the synthetic queries from chunk texts are **not counted**;
* an in-place update after 1 changed vector (same id, new vector), and after 1 % of the
  vectors changed, each re-measuring recall at the locked knobs with the stored queries;
* the update's parts once more, one by one (read, delta, apply, check, recall, write).

Prints seconds, knobs and recall@10 at the locked knobs against exact search for each.

Run: ``python benchmarks/bench_faiss_update.py [--count 150000] [--queries 200]``
(``--flat-max`` lowers the exact-index limit for a quick run on fewer vectors).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from codeintel_assets.core import faiss_build, faiss_store, tuning
from codeintel_assets.core.faiss_build import IndexSettings
from codeintel_assets.core.layout import ArtifactLayout

DIM = 384


def clustered(count: int, clusters: int, spread: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (ids, unit vectors) around ``clusters`` random unit centres, with noise of
    length ``spread`` before normalizing."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, DIM)).astype(np.float32)
    faiss.normalize_L2(centres)
    x = centres[rng.integers(0, clusters, count)]
    x = x + rng.normal(scale=spread / np.sqrt(DIM), size=(count, DIM)).astype(np.float32)
    x = np.ascontiguousarray(x, dtype=np.float32)
    faiss.normalize_L2(x)
    ids = rng.choice(2**62, size=count, replace=False).astype(np.int64)
    return ids, x


def off_corpus_queries(vectors: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Return ``count`` corpus vectors moved by noise of their own length, normalized."""
    rng = np.random.default_rng(seed)
    picked = vectors[rng.choice(len(vectors), count, replace=False)]
    noise = rng.normal(size=picked.shape).astype(np.float32)
    faiss.normalize_L2(noise)
    queries = np.ascontiguousarray(picked + noise, dtype=np.float32)
    faiss.normalize_L2(queries)
    return queries


def write_chunks(layout: ArtifactLayout, ids: np.ndarray, vectors: np.ndarray) -> None:
    """The chunks table the audit checksums (ids and embeddings)."""
    layout.chunks.parent.mkdir(parents=True, exist_ok=True)
    embedding = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM)
    pq.write_table(pa.table({"id": pa.array(ids), "embedding": embedding}), layout.chunks)


def changed(vectors: np.ndarray, rows: int, seed: int) -> np.ndarray:
    """Return a copy of ``vectors`` with ``rows`` rows given other vectors of the corpus,
    moved slightly (an edited function stays near its neighbours)."""
    rng = np.random.default_rng(seed)
    out = vectors.copy()
    picked = rng.choice(len(vectors), rows, replace=False)
    others = vectors[rng.choice(len(vectors), rows, replace=False)]
    moved = others + rng.normal(scale=0.1 / np.sqrt(DIM), size=others.shape).astype(np.float32)
    moved = np.ascontiguousarray(moved, dtype=np.float32)
    faiss.normalize_L2(moved)
    out[picked] = moved
    return out


def timed_build(layout, ids, vectors, settings, embedder) -> tuple[float, faiss_build.IndexBuild]:
    write_chunks(layout, ids, vectors)
    start = time.perf_counter()
    built = faiss_build.build_or_update_index(layout, ids, vectors, settings, embedder, "bench")
    return time.perf_counter() - start, built


def _no_model():
    raise SystemExit("an in-place update loaded the model")


def report(what: str, seconds: float, built: faiss_build.IndexBuild) -> None:
    meta, audit = built.metadata, built.audit
    print(
        f"{what:<34} {seconds:8.2f} s  mode={meta['mode']:<16} {audit['knobs']:<11} "
        f"recall@10 {audit['measured_recall']:.4f}  added {meta['vectors_added']:>7} "
        f"removed {meta['vectors_removed']:>5} drift {meta['drift']}"
    )


def update_parts(layout, ids, vectors, settings) -> None:
    """Time the in-place update's parts one by one (the same functions it calls)."""
    parts = {}
    start = time.perf_counter()
    index = faiss_store.read_index(layout.faiss_index())
    queries = np.load(layout.faiss_tuning_queries)
    parts["read index + queries"] = time.perf_counter() - start
    start = time.perf_counter()
    delta = faiss_build.index_delta(index, ids, vectors)
    parts["delta (reconstruct all, compare)"] = time.perf_counter() - start
    start = time.perf_counter()
    faiss_build.apply_delta(index, delta)
    parts["remove_ids + add_with_ids"] = time.perf_counter() - start
    start = time.perf_counter()
    faiss_build.check_holds_exactly(index, ids, vectors)
    parts["check ids and vectors"] = time.perf_counter() - start
    start = time.perf_counter()
    oracle = tuning.ExactOracle(ids, vectors)
    knobs = faiss_store.read_audit(layout.faiss_index())["knobs"]
    tuning.recheck_locked_knobs(
        index, queries, oracle, knobs, settings.target_recall, settings.recall_k
    )
    parts["recall at locked knobs (exact)"] = time.perf_counter() - start
    start = time.perf_counter()
    faiss_store.write_index(index, layout.root / "faiss" / "parts.faiss")
    parts["write index"] = time.perf_counter() - start
    for name, seconds in parts.items():
        print(f"    {name:<34} {seconds:6.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=150_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--spread", type=float, default=1.0, help="cluster noise / centre")
    parser.add_argument("--flat-max", type=int, default=faiss_store.FLAT_MAX_VECTORS)
    args = parser.parse_args()

    ids, vectors = clustered(args.count, args.clusters, args.spread, seed=0)
    queries = off_corpus_queries(vectors, args.queries, seed=1)
    # The rebuild's text queries are these vectors: no model, no synthetic queries timed.
    tuning.tuning_queries = lambda *_args: queries
    settings = IndexSettings(
        flat_max=args.flat_max,
        target_recall=0.95,
        recall_k=10,
        tune_queries=args.queries,
        embedder={"kind": "bench"},
    )
    factory = faiss_store.choose_factory(args.count, args.flat_max)
    print(
        f"{args.count:,} vectors of {DIM} d in {args.clusters} clusters (spread {args.spread}), "
        f"{args.queries} off-corpus queries, {factory}, "
        f"{faiss.omp_get_max_threads()} OpenMP threads"
    )
    with tempfile.TemporaryDirectory(prefix="bench-faiss-") as tmp:
        layout = ArtifactLayout(Path(tmp))
        # The rebuild asks for its embedder, which the patched tuning_queries ignores.
        built = timed_build(layout, ids, vectors, settings, lambda: None)
        report("full rebuild + tune", *built)

        one = changed(vectors, 1, seed=2)
        report("update: 1 changed vector", *timed_build(layout, ids, one, settings, _no_model))

        percent = changed(one, args.count // 100, seed=3)
        report(
            "update: 1 % changed vectors", *timed_build(layout, ids, percent, settings, _no_model)
        )

        again = changed(percent, 1, seed=4)
        print("  parts of a 1-vector update:")
        write_chunks(layout, ids, again)
        update_parts(layout, ids, again, settings)


if __name__ == "__main__":
    main()
