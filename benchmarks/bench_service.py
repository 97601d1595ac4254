"""The service under load, on loopback: warm latency, cold starts, concurrent clients.

A standard-library corpus (~10k chunks) is built and published with the real pipeline and
the real MiniLM model (`indexctl build`), then a ~100k-chunk version is derived from it and
published through the real publish path (the chunks repeated under `c<N>/` with jittered
copies of the real vectors, an IVF index tuned against exact search, BM25 and definitions
over the repeated text; its blocking checks are skipped: its SCIP data describe the
original files). One `indexctl serve` process serves both. Printed:

* server cold start: process start to `/healthz`, and to the first hybrid answer (the
  model loads on the first query that needs a vector);
* warm `search` over HTTP, one client, per mode and corpus size, query embedding
  included; baseline in the same run: `CodeIndex.search` in this process (no HTTP);
* `indexctl search` as a cold process: in-process (bm25, hybrid) and with `--server`;
* load: N clients for S seconds of mixed tools; throughput, p50/p95/p99, errors, the
  server's resident memory before and after.

    .venv/bin/python benchmarks/bench_service.py [--work DIR] [--clients 8] [--seconds 60]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))
sys.path.insert(0, str(PROJECT / "benchmarks"))

from corpus import jittered_copies, stdlib_corpus  # noqa: E402

from codeintel_assets.core import faiss_store, lifecycle, registry  # noqa: E402
from codeintel_assets.core.catalog import build_catalog  # noqa: E402
from codeintel_assets.core.channels import build_unit_channels, unit_documents  # noqa: E402
from codeintel_assets.core.checksums import signed_xxh64  # noqa: E402
from codeintel_assets.core.embedding import load_embedder  # noqa: E402
from codeintel_assets.core.layout import RepoLayout  # noqa: E402
from codeintel_assets.core.schemas import CHUNK_UNITS, UNITS, chunk_schema, write_parquet  # noqa: E402
from codeintel_assets.core.search import (  # noqa: E402
    CodeIndex,
    recorded_embedder,
    use_query_threads,
)
from codeintel_assets.core.tuning import TARGET_RECALL, tune_and_lock  # noqa: E402
from codeintel_assets.core.units import UnitSet, load_units, unit_id  # noqa: E402

PACKAGES = (
    "json", "email", "http", "logging", "asyncio", "unittest", "xml",
    "multiprocessing", "importlib", "concurrent", "urllib",
)  # fmt: skip
SMALL, LARGE = "stdlib", "stdlib100k"
LARGE_CHUNKS = 100_000
INDEXCTL = str(Path(sys.executable).with_name("indexctl"))
LATENCY_QUERIES = 100


def env_for(work: Path) -> dict[str, str]:
    return {
        **os.environ,
        "CODEINTEL_DATA": str(work / "data"),
        "DAGSTER_HOME": str(work / "dagster_home"),
        "PYTHONPATH": str(PROJECT),
    }


def build_small(work: Path) -> None:
    """Build and publish the ~10k-chunk corpus with `indexctl build` (real model); a
    rebuild of an earlier work folder only recomputes what this checkout changed."""
    env = env_for(work)
    if not (work / "corpus").exists():
        stdlib_corpus(work / "corpus", PACKAGES)
        (work / "dagster_home").mkdir(parents=True, exist_ok=True)
        subprocess.run([INDEXCTL, "repo", "add", SMALL, str(work / "corpus")], env=env, check=True)
    lines = sum(p.read_text(errors="replace").count("\n") for p in (work / "corpus").rglob("*.py"))
    started = time.perf_counter()
    subprocess.run([INDEXCTL, "build", SMALL], env=env, check=True, capture_output=True)
    print(f"built {SMALL}: {lines} lines in {time.perf_counter() - started:.0f}s")


def publish_large(work: Path) -> None:
    """Derive and publish the ~100k-chunk version from the small build area, once per
    published version of the small one."""
    data = work / "data"
    repo = RepoLayout(data, LARGE)
    small = lifecycle.current_layout(RepoLayout(data, SMALL))
    manifest = json.loads(small.version_manifest.read_text())
    if lifecycle.current_version_or_none(repo):
        published = json.loads(lifecycle.current_layout(repo).version_manifest.read_text())
        if published.get("derived_from") == small.root.name:
            return
    started = time.perf_counter()
    source = RepoLayout(data, SMALL).build
    target = repo.build
    linked = ("manifest", "scip", "ast", "cst", "modules", "symbol_graph", "eval")
    for folder in ("vectors", "faiss", "bm25", "units", *linked):
        shutil.rmtree(target.root / folder, ignore_errors=True)  # left by a run killed half way
    for folder in linked:
        shutil.copytree(source.root / folder, target.root / folder, copy_function=os.link)
    chunks = pq.read_table(source.chunks)
    n = chunks.num_rows
    copies = math.ceil(LARGE_CHUNKS / n)
    dim = chunks.schema.field("embedding").type.list_size
    real = chunks["embedding"].combine_chunks().flatten().to_numpy().reshape(n, dim)
    vectors = jittered_copies(real, n * copies, sigma=0.03)
    rows = chunks.drop_columns(["embedding"]).to_pylist()
    out = []
    for c in range(copies):
        for row in rows:
            uri = f"c{c}/{row['uri']}"
            out.append(
                {
                    **row,
                    "uri": uri,
                    "id": signed_xxh64(LARGE, uri, row["start_byte"], row["end_byte"]),
                }
            )
    table = pa.Table.from_pylist(out).append_column(
        "embedding", pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim)
    )
    write_parquet(table, target.chunks, chunk_schema(dim))
    ids = table["id"].to_numpy()
    factory = faiss_store.choose_factory(len(ids))
    index = faiss_store.build_index(ids, vectors, factory)
    embedder = load_embedder(recorded_embedder(manifest))
    audit, _ = tune_and_lock(index, ids, vectors, lambda: embedder, factory, target, "bench",
                             TARGET_RECALL, 10, 200)  # fmt: skip
    faiss_store.export_idmap(target.faiss_index(), target.faiss_idmap)
    units = repeated_units(load_units(source), chunks["id"].to_pylist(), ids)
    write_parquet(units.table, target.units, UNITS)
    write_parquet(units.chunk_units, target.chunk_units, CHUNK_UNITS)
    texts = unit_documents(units.table, table.drop_columns(["embedding"]))
    build_unit_channels(units, texts).save(target.bm25_dir)
    lifecycle.publish_version(
        repo,
        build_catalog=lambda version: build_catalog(version, materialize=True).to_dict(),
        validate=lambda version: [],
        extra_manifest={"embedder": manifest["embedder"], "derived_from": small.root.name},
    )
    took = time.perf_counter() - started
    print(f"published {LARGE}: {len(ids)} chunks, {audit['factory']} {audit['knobs']} "
          f"(recall@10 {audit['measured_recall']:.3f}) in {took:.0f}s")  # fmt: skip


def repeated_units(units: UnitSet, source_ids: list[int], ids: np.ndarray) -> UnitSet:
    """Return ``units`` repeated as the chunks are: copy c of chunk row r is ``ids[c·n + r]``,
    its file under ``c<c>/``; unit ids recomputed from the new paths, as the stage does."""
    n = len(source_ids)
    row_of = {chunk: r for r, chunk in enumerate(source_ids)}
    base = units.table.to_pylist()
    mapping = units.chunk_units.to_pylist()
    rows, chunk_units = [], []
    for c in range(len(ids) // n):
        new_id = {}
        for u in base:
            uri = f"c{c}/{u['uri']}"
            new_id[u["unit_id"]] = unit_id(LARGE, uri, u["start_byte"], u["end_byte"], u["kind"])
        for u in base:
            first = int(ids[c * n + row_of[u["first_chunk_id"]]])
            rows.append({**u, "uri": f"c{c}/{u['uri']}", "unit_id": new_id[u["unit_id"]],
                         "parent_unit_id": new_id.get(u["parent_unit_id"]),
                         "first_chunk_id": first})  # fmt: skip
        chunk_units.extend(
            {"chunk_id": int(ids[c * n + row_of[m["chunk_id"]]]), "unit_id": new_id[m["unit_id"]]}
            for m in mapping
        )
    return UnitSet(
        pa.Table.from_pylist(rows, schema=UNITS),
        pa.Table.from_pylist(chunk_units, schema=CHUNK_UNITS),
    )


def post(url: str, tool: str, args: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{url}/api/{tool}", data=json.dumps(args).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(samples: list[float], *ps: float) -> str:
    values = np.percentile(np.array(samples) * 1000, ps)
    return "  ".join(f"p{p:g} {v:7.2f} ms" for p, v in zip(ps, values, strict=True))


def queries_of(work: Path) -> list[str]:
    layout = lifecycle.current_layout(RepoLayout(work / "data", SMALL))
    lines = layout.eval_queries.read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines]


def start_server(work: Path, port: int) -> tuple[subprocess.Popen, float, float]:
    """Start `indexctl serve`; return it, seconds to /healthz and to the first hybrid answer."""
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    process = subprocess.Popen(
        [INDEXCTL, "serve", "--repo", SMALL, "--repo", LARGE, "--port", str(port)],
        env=env_for(work), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    while True:
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1).read()
            break
        except OSError:
            time.sleep(0.05)
    healthy = time.perf_counter() - started
    code, _ = post(url, "search", {"repo": SMALL, "query": "parse an email header"})
    assert code == 200
    return process, healthy, time.perf_counter() - started


def warm_latency(url: str, queries: list[str], repo: str) -> None:
    print(f"\n== warm search over HTTP on {repo}, one client (query embedding included)")
    for mode in ("hybrid", "bm25", "dense"):
        post(url, "search", {"repo": repo, "query": "warm up", "mode": mode})
        times = []
        for text in queries[:LATENCY_QUERIES]:
            t = time.perf_counter()
            code, _ = post(url, "search", {"repo": repo, "query": text, "mode": mode, "k": 10})
            times.append(time.perf_counter() - t)
            assert code == 200
        print(f"{repo:11} {mode:7} {pct(times, 50, 95)}")


def in_process_baseline(work: Path, queries: list[str], repo: str) -> None:
    print(f"\n== baseline on {repo}: CodeIndex.search in one process, no HTTP")
    use_query_threads()  # as `indexctl serve` does
    with CodeIndex.open(repo, root=work / "data") as index:
        index.search("warm up", k=10)
        for mode in ("hybrid", "bm25"):
            times = []
            for text in queries[:LATENCY_QUERIES]:
                t = time.perf_counter()
                index.search(text, k=10, mode=mode)
                times.append(time.perf_counter() - t)
            print(f"{repo:11} {mode:7} {pct(times, 50, 95)}")


def cli_cold(work: Path, url: str) -> None:
    print("\n== `indexctl search` as a cold process (median of 3)")
    env = env_for(work)
    base = [INDEXCTL, "search", "parse an email header", "--repo", SMALL, "--format", "json"]
    for label, extra in (
        ("in-process --mode bm25", ["--mode", "bm25"]),
        ("in-process hybrid", []),
        ("--server hybrid", ["--server", url]),
        ("--server bm25", ["--server", url, "--mode", "bm25"]),
    ):
        times = []
        for _ in range(3):
            t = time.perf_counter()
            subprocess.run(base + extra, env=env, check=True, capture_output=True)
            times.append(time.perf_counter() - t)
        print(f"{label:24} {statistics.median(times):6.2f} s")


def load(url: str, pid: int, queries: list[str], names: list[str], uris: list[str],
         clients: int, seconds: float) -> None:  # fmt: skip
    print(f"\n== load: {clients} clients x {seconds:.0f} s of mixed tools on {SMALL}")
    rng = random.Random(0)
    mix = [
        lambda: ("search", {"repo": SMALL, "query": rng.choice(queries)}),
        lambda: ("search", {"repo": SMALL, "query": rng.choice(queries), "mode": "bm25"}),
        lambda: ("definition", {"repo": SMALL, "symbol": rng.choice(names)}),
        lambda: ("references", {"repo": SMALL, "symbol": rng.choice(names), "limit": 50}),
        lambda: ("callers", {"repo": SMALL, "symbol": rng.choice(names), "depth": 2}),
        lambda: ("outline", {"repo": SMALL, "uri": rng.choice(uris)}),
        lambda: ("read", {"repo": SMALL, "uri": rng.choice(uris), "max_tokens": 1000}),
        lambda: ("status", {"repo": SMALL}),
    ]
    results: list[tuple[str, float, int]] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client(seed: int) -> None:
        local = random.Random(seed)
        while time.perf_counter() < deadline:
            tool, args = local.choice(mix)()
            t = time.perf_counter()
            code, _ = post(url, tool, args)
            with lock:
                results.append((tool, time.perf_counter() - t, code))

    before = rss_mb(pid)
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took = time.perf_counter() - started
    after = rss_mb(pid)
    # 404 is a valid answer (a name picked at random that resolves to nothing); 5xx is not.
    errors = sum(1 for _, _, code in results if code >= 500 or code in (400, 409, 413))
    print(f"requests {len(results)}  throughput {len(results) / took:.1f}/s  errors {errors}  "
          f"not found {sum(1 for *_, c in results if c == 404)}")  # fmt: skip
    print(f"all      {pct([t for _, t, _ in results], 50, 95, 99)}")
    for tool in sorted({tool for tool, _, _ in results}):
        print(f"{tool:10} {pct([t for name, t, _ in results if name == tool], 50, 95, 99)}")
    print(f"server RSS {before:.0f} MB before, {after:.0f} MB after")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/codeintel-bench-service"))
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--port", type=int, default=8791)
    args = parser.parse_args()
    work = args.work.resolve()
    build_small(work)
    # Registered before the server starts, published while it runs: picked up without a restart.
    registry.add_repo(
        registry.RepoConfig(name=LARGE, path=str(work / "corpus")), root=work / "data"
    )
    queries = queries_of(work)
    random.Random(1).shuffle(queries)
    process, healthy, first = start_server(work, args.port)
    url = f"http://127.0.0.1:{args.port}"
    try:
        print(f"\n== server cold start: /healthz after {healthy:.2f} s, first hybrid answer "
              f"after {first:.2f} s (model loaded on first use)")  # fmt: skip
        warm_latency(url, queries, SMALL)
        in_process_baseline(work, queries, SMALL)
        cli_cold(work, url)
        layout = lifecycle.current_layout(RepoLayout(work / "data", SMALL))
        symbols = pq.read_table(layout.scip_symbols, columns=["display_name", "kind"]).to_pylist()
        names = sorted({s["display_name"] for s in symbols if s["kind"] in ("Function", "Method")
                        and s["display_name"]})[:300]  # fmt: skip
        uris = pq.read_table(layout.repo_manifest, columns=["uri"])["uri"].to_pylist()
        load(url, process.pid, queries, names, uris, args.clients, args.seconds)
        publish_large(work)
        _, status = post(url, "status", {})
        for entry in status["repos"]:
            counts = entry["counts"]
            print(f"{entry['repo']:11} {counts['chunks']} chunks, build {entry['build_version']}")
        warm_latency(url, queries, LARGE)
        in_process_baseline(work, queries, LARGE)
    finally:
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    main()
