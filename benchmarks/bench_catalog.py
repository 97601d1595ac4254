"""Catalog hydration benchmark: 100k synthetic chunks, real Parquet, real DuckDB.

Prints median latencies (ms) of hydrating 200 random ids, warm (one open reader) and
cold (a new process per run: open the catalog, first query), for the Parquet views and
for the materialized catalog, plus filtered queries by glob and language.
Targets: 6 ms warm, 12 ms cold.

    python benchmarks/bench_catalog.py [--chunks 100000] [--dim 384] [--runs 25] [--root DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from codeintel_assets.core import schemas  # noqa: E402
from codeintel_assets.core.catalog import CatalogReader, ChunkFilter, build_catalog  # noqa: E402
from codeintel_assets.core.layout import ArtifactLayout  # noqa: E402

TARGET_WARM_MS = 6.0
TARGET_COLD_MS = 12.0
LANGS = ("python", "javascript", "typescript", "markdown")
EXTS = ("py", "js", "ts", "md")

_COLD_SCRIPT = """
import json, sys, time
t0 = time.perf_counter()
from codeintel_assets.core.catalog import CatalogReader
t1 = time.perf_counter()
ids = json.loads(sys.argv[2])
with CatalogReader(__import__("pathlib").Path(sys.argv[1])) as reader:
    t2 = time.perf_counter()
    rows = reader.hydrate(ids)
    t3 = time.perf_counter()
print(json.dumps({"open_ms": (t2 - t1) * 1e3, "query_ms": (t3 - t2) * 1e3, "rows": len(rows)}))
"""


def write_synthetic(layout: ArtifactLayout, n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Write n chunks (20 per file, 200 directories), modules and an id map; return ids."""
    rng = np.random.default_rng(seed)
    files = max(1, n // 20)
    dirs = [f"pkg{i}/sub{j}" for i in range(20) for j in range(10)]
    file_uris = [f"{dirs[i % len(dirs)]}/mod_{i}.{EXTS[i % 4]}" for i in range(files)]
    file_of = np.arange(n) // 20 % files
    uris = [file_uris[i] for i in file_of]
    ids = rng.choice(np.arange(-(2**62), 2**62, 2**40, dtype=np.int64), n, replace=False)
    words = np.array(["def", "return", "self", "value", "for", "in", "if", "import", "data"])
    base = " ".join(words[rng.integers(0, len(words), 250)])
    content = [f"# chunk {k}\n{base[(k * 7) % 400 :]}" for k in range(n)]
    start = (np.arange(n) % 20) * 30 + 1
    emb = rng.standard_normal((n, dim), dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    table = pa.table(
        {
            "id": ids,
            "uri": uris,
            "start_line": start.astype(np.int32),
            "end_line": (start + 29).astype(np.int32),
            "start_byte": start * 40,
            "end_byte": start * 40 + 1200,
            "preview": [c[:240] for c in content],
            "content": content,
            "lang": [LANGS[i % 4] for i in file_of],
            "content_hash": [f"{k:016x}" for k in range(n)],
            "symbols": [[f"py {u}/f{k}()."] for k, u in enumerate(uris)],
            "kind": ["function"] * n,
            "name": [f"f{k}" for k in range(n)],
            "token_count": np.full(n, 120, np.int32),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), dim),
        }
    )
    schemas.write_parquet(table, layout.chunks, schemas.chunk_schema(dim))
    prefixes = sorted({d.split("/")[0] + "/" for d in dirs} | {d + "/" for d in dirs})
    modules = {name: [0] * len(prefixes) for name in schemas.MODULES.names}
    modules.update(
        module_id=[p.rstrip("/").replace("/", ".") for p in prefixes],
        uri_prefix=prefixes,
        language=["python"] * len(prefixes),
        doc_cov=[0.0] * len(prefixes),
        centrality=[0.0] * len(prefixes),
    )
    schemas.write_parquet(pa.table(modules), layout.modules_parquet, schemas.MODULES)
    idmap = pa.table(
        {
            "faiss_row": np.arange(n, dtype=np.int64),
            "faiss_id": ids,
            "index_name": ["chunks"] * n,
            "build_version": ["bench"] * n,
            "ts": pa.array(np.zeros(n, dtype=np.int64), pa.timestamp("us", tz="UTC")),
        }
    )
    schemas.write_parquet(idmap, layout.faiss_idmap, schemas.FAISS_IDMAP)
    return ids


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples)


def warm(catalog: Path, ids: np.ndarray, runs: int, rng, **kwargs) -> float:
    with CatalogReader(catalog) as reader:
        reader.hydrate(rng.choice(ids, 200, replace=False).tolist(), **kwargs)  # warm-up
        times = []
        for _ in range(runs):
            sample = rng.choice(ids, 200, replace=False).tolist()
            started = time.perf_counter()
            rows = reader.hydrate(sample, **kwargs)
            times.append((time.perf_counter() - started) * 1e3)
            if "filters" not in kwargs:
                assert len(rows) == 200
    return median_ms(times)


def warm_filter_ids(catalog: Path, ids: np.ndarray, runs: int, rng, filters: ChunkFilter) -> float:
    with CatalogReader(catalog) as reader:
        reader.filter_ids(rng.choice(ids, 1000, replace=False).tolist(), filters)
        times = []
        for _ in range(runs):
            sample = rng.choice(ids, 1000, replace=False).tolist()
            started = time.perf_counter()
            reader.filter_ids(sample, filters)
            times.append((time.perf_counter() - started) * 1e3)
    return median_ms(times)


def cold(catalog: Path, ids: np.ndarray, runs: int, rng) -> tuple[float, float]:
    opens, queries = [], []
    for _ in range(runs):
        sample = json.dumps(rng.choice(ids, 200, replace=False).tolist())
        out = subprocess.run(
            [sys.executable, "-c", _COLD_SCRIPT, str(catalog), sample],
            capture_output=True,
            text=True,
            check=True,
            cwd=PROJECT,
        )
        result = json.loads(out.stdout)
        assert result["rows"] == 200
        opens.append(result["open_ms"])
        queries.append(result["query_ms"])
    return median_ms(opens), median_ms(queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--root", type=Path, default=None)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory(dir=args.root) as tmp:
        layout = ArtifactLayout(Path(tmp) / "bench")
        started = time.perf_counter()
        ids = write_synthetic(layout, args.chunks, args.dim)
        print(
            f"synthetic data: {args.chunks} chunks, dim {args.dim}, "
            f"{layout.chunks.stat().st_size / 1e6:.0f} MB Parquet, "
            f"{time.perf_counter() - started:.1f} s"
        )
        glob = ChunkFilter(include_globs=["pkg3/**"])
        complex_glob = ChunkFilter(include_globs=["pkg1?/sub[0-4]/*.py"])
        language = ChunkFilter(languages=["python"])
        combined = ChunkFilter(
            include_globs=["pkg1*/**"], exclude_globs=["*.md"], languages=["python", "typescript"]
        )
        for materialize in (False, True):
            started = time.perf_counter()
            build_catalog(layout, materialize=materialize)
            label = "materialized (chunks_mat)" if materialize else "Parquet views (v_chunks)"
            print(
                f"\n## {label}: build {time.perf_counter() - started:.2f} s, "
                f"catalog {layout.catalog.stat().st_size / 1e6:.1f} MB"
            )
            warm_ms = warm(layout.catalog, ids, args.runs, rng)
            open_ms, cold_ms = cold(layout.catalog, ids, max(20, args.runs), rng)
            rows = [
                ("hydrate 200 ids, warm", warm_ms, TARGET_WARM_MS),
                ("hydrate 200 ids, cold (new process): first query", cold_ms, TARGET_COLD_MS),
                ("  ... open catalog in the new process", open_ms, None),
                (
                    "hydrate 200 + join_modules + join_faiss, warm",
                    warm(layout.catalog, ids, args.runs, rng, join_modules=True, join_faiss=True),
                    None,
                ),
                (
                    "hydrate 200, glob pkg3/** (SQL LIKE), warm",
                    warm(layout.catalog, ids, args.runs, rng, filters=glob),
                    None,
                ),
                (
                    "hydrate 200, glob pkg1?/sub[0-4]/*.py (post-filter), warm",
                    warm(layout.catalog, ids, args.runs, rng, filters=complex_glob),
                    None,
                ),
                (
                    "hydrate 200, language python, warm",
                    warm(layout.catalog, ids, args.runs, rng, filters=language),
                    None,
                ),
                (
                    "filter_ids 1000 ids, combined filter, warm",
                    warm_filter_ids(layout.catalog, ids, args.runs, rng, combined),
                    None,
                ),
            ]
            print("| measure | median ms | target | met |")
            print("|---|---:|---:|---|")
            for name, value, target in rows:
                met = "" if target is None else ("yes" if value <= target else "NO")
                print(f"| {name} | {value:.2f} | {'' if target is None else target} | {met} |")


if __name__ == "__main__":
    main()
