"""Two repositories built in parallel against one after the other: two Dagster runs
(`dagster asset materialize --partition`, the multiprocess executor) of two partitions
sharing one instance and one data root.

Each phase starts from a fresh instance and data root: first the two runs one after the
other, then both launched at once. Prints the wall time of each run and of each phase,
the speed-up, whether the parallel runs overlapped (the instance's run records), and
whether every table of each repository is the same file after both phases (the parallel
runs did not disturb each other). The embedder is given by ``--embedder`` (default
``hashing``, the fast deterministic stand-in: the figure is about the runs, not the
model) and printed.

    python benchmarks/bench_partitions.py [--embedder sentence-transformers]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import stdlib_corpus  # noqa: E402

REPOS = {"alpha": ("json", "http"), "beta": ("logging", "html")}
# The build's tables (``ArtifactLayout`` names) compared after both phases.
TABLES = (
    "repo_manifest",
    "scip_occurrences",
    "scip_symbols",
    "ast_nodes",
    "cst_nodes",
    "chunks",
    "node_to_chunk",
    "units",
    "modules_parquet",
    "symbol_edges",
)


def fresh_phase(root: Path, trees: dict[str, Path]) -> dict[str, str]:
    """Make a data root and an instance under ``root`` with the repositories registered
    and their partitions added; return the environment of the runs."""
    data, home = root / "data", root / "dagster_home"
    data.mkdir(parents=True)
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "CODEINTEL_DATA": str(data), "DAGSTER_HOME": str(home)}
    indexctl = Path(sys.executable).parent / "indexctl"
    for name, tree in trees.items():
        subprocess.run([str(indexctl), "repo", "add", name, str(tree)], env=env, check=True)
    subprocess.run([str(indexctl), "repo", "sync"], env=env, check=True, capture_output=True)
    return env


def launch(name: str, env: dict[str, str], embedder: str) -> subprocess.Popen:
    config = {"resources": {"codeintel": {"config": {"embedder": embedder}}}}
    command = [
        str(Path(sys.executable).parent / "dagster"),
        "asset",
        "materialize",
        "--select",
        "*",
        "--partition",
        name,
        "-m",
        "codeintel_assets.definitions",
        "--config-json",
        json.dumps(config),
    ]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def wait(run: subprocess.Popen, name: str) -> None:
    _, stderr = run.communicate()
    if run.returncode != 0:
        raise SystemExit(f"run of {name} failed: {stderr[-3000:]}")


def run_windows(env: dict[str, str]) -> dict[str, tuple[float, float]]:
    """Return each partition's run (start, end) from the instance's run records."""
    os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        return {
            r.dagster_run.tags["dagster/partition"]: (r.start_time, r.end_time)
            for r in instance.get_run_records()
        }


def checksums(env: dict[str, str]) -> dict[str, str]:
    from codeintel_assets.core.checksums import xxh64_file
    from codeintel_assets.core.layout import RepoLayout

    data = Path(env["CODEINTEL_DATA"])
    return {
        f"{name}/{table}": xxh64_file(getattr(RepoLayout(data, name).build, table))
        for name in REPOS
        for table in TABLES
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--embedder", choices=["hashing", "sentence-transformers"], default="hashing"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-partitions-") as tmp:
        root = Path(tmp)
        trees = {name: root / "trees" / name for name in REPOS}
        for name, packages in REPOS.items():
            lines = stdlib_corpus(trees[name], packages)
            print(f"{name}: {lines} lines ({', '.join(packages)})")
        print(f"embedder: {args.embedder}")

        sequential_env = fresh_phase(root / "sequential", trees)
        alone: dict[str, float] = {}
        started = time.perf_counter()
        for name in REPOS:
            began = time.perf_counter()
            wait(launch(name, sequential_env, args.embedder), name)
            alone[name] = time.perf_counter() - began
        sequential = time.perf_counter() - started

        parallel_env = fresh_phase(root / "parallel", trees)
        started = time.perf_counter()
        runs = {name: launch(name, parallel_env, args.embedder) for name in REPOS}
        for name, run in runs.items():
            wait(run, name)
        parallel = time.perf_counter() - started

        windows = run_windows(parallel_env)
        (a_start, a_end), (b_start, b_end) = sorted(windows.values())
        overlap = max(0.0, min(a_end, b_end) - b_start)
        same = checksums(sequential_env) == checksums(parallel_env)

    for name, seconds in alone.items():
        print(f"{name} alone: {seconds:.1f}s")
    print(f"one after the other: {sequential:.1f}s")
    print(f"in parallel:         {parallel:.1f}s  ({sequential / parallel:.2f}x faster)")
    print(f"the parallel runs overlapped for {overlap:.1f}s of {parallel:.1f}s")
    print(f"every table of both repositories identical after both phases: {same}")


if __name__ == "__main__":
    main()
