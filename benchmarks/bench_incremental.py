"""What a rebuild costs: a full build, a no-op rebuild and a one-function edit, through the
real Dagster graph (``dg.materialize`` on an ephemeral instance) on a real corpus.

Prints wall time per build, its share of the full build, chunks embedded / from cache,
and the stages that bound each build (targets: no-op <= 5 %, one-function edit <= 15 %).

    .venv/bin/python benchmarks/bench_incremental.py [--embedder hashing] [--packages json ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dagster as dg  # noqa: E402
from corpus import DEFAULT_PACKAGES, edit_one_function, stdlib_corpus  # noqa: E402

from codeintel_assets.checks import ALL_CHECKS  # noqa: E402
from codeintel_assets.core import registry  # noqa: E402
from codeintel_assets.definitions import ALL_ASSETS  # noqa: E402
from codeintel_assets.partitions import REPOS  # noqa: E402
from codeintel_assets.resources import CodeintelResource  # noqa: E402

NAME = "bench"
TARGETS = {"noop": 0.05, "edit": 0.15}


def materialize(instance: dg.DagsterInstance, resource: CodeintelResource) -> dict:
    """Build the partition; return wall seconds and per-asset (ran, seconds, metadata)."""
    started = time.perf_counter()
    result = dg.materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        partition_key=NAME,
        instance=instance,
        resources={"codeintel": resource},
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )
    wall = time.perf_counter() - started
    if not result.success:
        raise SystemExit("build failed")
    assets = {}
    for assets_def in ALL_ASSETS:
        for key in assets_def.keys:
            events = result.asset_materializations_for_node(key.path[-1])
            meta = {k: v.value for k, v in events[-1].metadata.items()}
            assets[key.path[-1]] = meta
    return {"wall": wall, "assets": assets}


def summarize(label: str, build: dict, full_wall: float) -> dict:
    assets = build["assets"]
    ran = {name: meta.get("codeintel/seconds", 0.0) for name, meta in assets.items()}
    chunks = assets["chunks"]
    ran_chunks = chunks.get("codeintel/ran")
    return {
        "build": label,
        "wall_s": round(build["wall"], 2),
        "share_of_full": round(build["wall"] / full_wall, 4),
        "chunks": chunks.get("chunks"),
        "embedded": chunks.get("embedded", 0) if ran_chunks else 0,
        "from_cache": chunks.get("from_cache", 0) if ran_chunks else 0,
        "stages_ran": sorted(n for n, m in assets.items() if m.get("codeintel/ran")),
        "stage_seconds": dict(sorted(ran.items(), key=lambda kv: -kv[1])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", nargs="+", default=list(DEFAULT_PACKAGES))
    parser.add_argument("--embedder", choices=["sentence-transformers", "hashing"])
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    embedder = args.embedder or "sentence-transformers"

    with tempfile.TemporaryDirectory(prefix="bench-incremental-") as tmp:
        repo, data = Path(tmp) / "repo", Path(tmp) / "data"
        lines = stdlib_corpus(repo, tuple(args.packages))
        data.mkdir()
        registry.add_repo(registry.RepoConfig(name=NAME, path=str(repo)), data)
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions(REPOS.name, [NAME])
        resource = CodeintelResource(data_root=str(data), embedder=embedder)
        print(f"corpus: {lines} lines of {', '.join(args.packages)}; embedder: {embedder}")

        full = materialize(instance, resource)
        noop = materialize(instance, resource)
        edited = edit_one_function(repo)
        edit = materialize(instance, resource)

    rows = [
        summarize("full", full, full["wall"]),
        summarize("noop", noop, full["wall"]),
        summarize("edit", edit, full["wall"]),
    ]
    print(f"edited: {edited}")
    print(f"{'build':<6} {'wall s':>8} {'% full':>7} {'embedded':>9} {'cached':>7}  slowest stages")
    for row in rows:
        slowest = ", ".join(f"{n} {s:.1f}s" for n, s in list(row["stage_seconds"].items())[:3])
        target = TARGETS.get(row["build"])
        verdict = "" if target is None else (" ok" if row["share_of_full"] <= target else " MISSED")
        print(
            f"{row['build']:<6} {row['wall_s']:>8.1f} {100 * row['share_of_full']:>6.1f}%"
            f" {row['embedded']:>9} {row['from_cache']:>7}  {slowest}{verdict}"
        )
    if args.json:
        payload = {"lines": lines, "embedder": embedder, "edited": edited, "builds": rows}
        args.json.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
