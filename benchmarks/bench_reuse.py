"""What per-file reuse saves: a one-function edit, stage by stage, with reuse and without.

Two build areas index the same corpus (standard-library packages): one keeps unchanged
files' rows from its previous build (``core/reuse.py``, the default), the baseline
re-processes every file (``BuildContext(reuse_files=False)``, the code path before reuse).
Both make a full build, then the same one-function edit is rebuilt in each; the script
prints each stage's seconds for the full build and for the edit in both areas, the files
it re-processed, and checks that both areas wrote byte-identical tables (incremental ≡
clean at the corpus' size).

The stages are run through their gates in build order, without Dagster (its fixed overhead
is the same with and without reuse). SCIP is indexed once before the full builds and
copied to the baseline, and not re-indexed after the edit (scip-python's cost is not
per-file; issue 15 item 2 is its own work): the chunk stage still looks every chunk's
symbols up in it.

    .venv/bin/python benchmarks/bench_reuse.py [--embedder sentence-transformers] [--packages ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import DEFAULT_PACKAGES, edit_one_function, stdlib_corpus  # noqa: E402

from codeintel_assets.core.checksums import xxh64_file  # noqa: E402
from codeintel_assets.core.context import BuildContext  # noqa: E402
from codeintel_assets.core.embedding import EmbedderSpec  # noqa: E402
from codeintel_assets.core.registry import RepoConfig  # noqa: E402
from codeintel_assets.core.stages import run_named  # noqa: E402

NAME = "bench"
SCIP = ("scip_index", "scip_occurrences")
# Build order (core/stages STAGES) without SCIP and what follows the catalog.
STAGES = (
    "repo_manifest",
    "ast_nodes",
    "cst_nodes",
    "chunks",
    "modules",
    "faiss_index",
    "faiss_idmap",
    "units",
    "bm25_index",
)
PER_FILE_TABLES = {
    "ast_nodes": lambda lay: lay.ast_nodes,
    "cst_nodes": lambda lay: lay.cst_nodes,
    "chunks": lambda lay: lay.chunks,
    "node_to_chunk": lambda lay: lay.node_to_chunk,
    "modules": lambda lay: lay.modules_parquet,
    "module_files": lambda lay: lay.module_files,
    "units": lambda lay: lay.units,
    "chunk_units": lambda lay: lay.chunk_units,
}


def build(ctx: BuildContext) -> dict[str, tuple[float, dict]]:
    """Run the stages in order; return each one's (seconds, metadata when it ran)."""
    out = {}
    for name in STAGES:
        started = time.perf_counter()
        result = run_named(ctx, name)
        out[name] = (time.perf_counter() - started, result.metadata if result.ran else {})
    return out


def copy_scip(source: BuildContext, target: BuildContext) -> None:
    """Copy the SCIP artifacts and their stamps (stamps name their files relatively)."""
    scip_dir = source.layout.build.scip_index.parent
    shutil.copytree(scip_dir, target.layout.build.scip_index.parent)
    target.layout.stamps_dir.mkdir(parents=True, exist_ok=True)
    for name in SCIP:
        shutil.copy2(source.layout.stamp(name), target.layout.stamp(name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", nargs="+", default=list(DEFAULT_PACKAGES))
    # The fast deterministic embedder by default: two full builds with the real model would
    # take most of an hour, and reuse changes what is chunked, not how a chunk is embedded.
    parser.add_argument(
        "--embedder", choices=["sentence-transformers", "hashing"], default="hashing"
    )
    args = parser.parse_args()
    embedder = args.embedder

    with tempfile.TemporaryDirectory(prefix="bench-reuse-") as tmp:
        repo = Path(tmp) / "repo"
        lines = stdlib_corpus(repo, tuple(args.packages))
        config = RepoConfig(name=NAME, path=str(repo))
        reuse = BuildContext(config, EmbedderSpec(kind=embedder), root=Path(tmp) / "reuse")
        baseline = dataclasses.replace(reuse, root=Path(tmp) / "baseline", reuse_files=False)
        print(f"corpus: {lines} lines of {', '.join(args.packages)}; embedder: {embedder}")

        run_named(reuse, "repo_manifest")
        started = time.perf_counter()
        for name in SCIP:
            run_named(reuse, name)
        print(f"scip (once, copied to the baseline): {time.perf_counter() - started:.1f} s")
        copy_scip(reuse, baseline)
        full = {"reuse": build(reuse), "baseline": build(baseline)}
        edited = edit_one_function(repo)
        edit = {"baseline": build(baseline), "reuse": build(reuse)}
        same = {
            table: xxh64_file(path(reuse.layout.build)) == xxh64_file(path(baseline.layout.build))
            for table, path in PER_FILE_TABLES.items()
        }

    print(f"edited: {edited}")
    print(
        f"{'stage':<14} {'full s':>7} {'edit, no reuse s':>17} {'edit, reuse s':>14}"
        f" {'files processed':>16} {'reused':>7}"
    )
    totals = [0.0, 0.0, 0.0]
    for name in STAGES:
        seconds = [full["reuse"][name][0], edit["baseline"][name][0], edit["reuse"][name][0]]
        totals = [t + s for t, s in zip(totals, seconds, strict=True)]
        meta = edit["reuse"][name][1]
        processed = meta.get("files_processed", "")
        reused = meta.get("files_reused", "")
        print(
            f"{name:<14} {seconds[0]:>7.2f} {seconds[1]:>17.2f} {seconds[2]:>14.2f}"
            f" {processed!s:>16} {reused!s:>7}"
        )
    print(f"{'total':<14} {totals[0]:>7.2f} {totals[1]:>17.2f} {totals[2]:>14.2f}")
    differing = sorted(table for table, equal in same.items() if not equal)
    print(
        "tables byte-identical with and without reuse: "
        + ("all of " + ", ".join(sorted(same)) if not differing else f"NO: {differing}")
    )


if __name__ == "__main__":
    main()
