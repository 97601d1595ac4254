"""Benchmark a full SCIP pass in parts against one run over the whole tree, in one run.

For each corpus size (``--lines``, top-level standard-library packages and modules in name
order, ``bench_scale.stdlib_tree``; minimal environment): one scip-python run over the
whole tree (the baseline), then the same full pass cut in parts of ``--part-lines`` lines
(``core/scip/parts.py``). Each prints node's peak resident memory (scip-python's
processes, sampled by ``core/memory.py``), wall seconds, the number of parts and runs, and
whether the two indexes are byte for byte the same. Memory does not depend on the
machine's load; seconds do (the load average is printed).

The standard library's top-level modules shadow standard-library names (``codeop``,
``datetime``...), so a full pass of it is one run whatever the part size
(``parts.shadowed_stdlib_modules``): its "parts" row then repeats the one run. The parts
figures in the README were measured at commit 7224d6d, before that fallback; on a corpus
that shadows nothing both rows are meaningful.

``--heap-mib`` sets node's heap limit for both (default 16384: no run is cut). What one
run of a big tree needs under a tighter limit is ``--lines all --part-lines 0 --heap-mib
4608``: the whole library, one run only; a run that reaches the limit fails and says so.

Run: ``python benchmarks/bench_scip_parts.py [--lines 100000,250000|all] [--part-lines 25000]
[--heap-mib 16384]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scale import stdlib_tree  # noqa: E402
from bench_scip_incremental import job_for  # noqa: E402

from codeintel_assets.core.checksums import xxh64_file  # noqa: E402
from codeintel_assets.core.memory import peak_rss  # noqa: E402
from codeintel_assets.core.scip.environment import minimal_environment  # noqa: E402
from codeintel_assets.core.scip.incremental import (  # noqa: E402
    update_scip_index,
)
from codeintel_assets.core.scip.parts import ScipBudget  # noqa: E402

# The baseline's heap limit: high enough that one run over any corpus here is not cut.
WHOLE_HEAP_MIB = 16384


def full_pass(repo: Path, out: Path, budget: ScipBudget) -> dict[str, object]:
    """Run a full pass of ``repo`` into ``out`` under ``budget``; return its figures."""
    job = job_for(repo, out, minimal_environment(), budget)
    load = os.getloadavg()[0]
    started = time.monotonic()
    with peak_rss() as memory:
        update = update_scip_index(job, force_full=True)
    if not update.ok:
        raise SystemExit(f"full pass failed: {update.failure}\n{update.stderr_tail}")
    return {
        "seconds": time.monotonic() - started,
        "node_mib": memory.children_peak_mib,
        "parts": update.parts,
        "runs": update.runs,
        "documents": update.documents,
        "index": xxh64_file(job.output),
        "load": load,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--lines", default="100000", help="corpus sizes, comma-separated ('all': the library)"
    )
    parser.add_argument(
        "--part-lines", type=int, default=25000, help="lines per part (0: one run only)"
    )
    parser.add_argument(
        "--heap-mib", type=int, default=WHOLE_HEAP_MIB, help="node's heap limit, MiB"
    )
    args = parser.parse_args()
    print(f"node heap limit {args.heap_mib} MiB")
    print("lines | files | mode | parts | runs | node peak MiB | seconds | load | same index")
    for lines in (None if n == "all" else int(n) for n in args.lines.split(",")):
        with tempfile.TemporaryDirectory(prefix="bench-scip-parts-") as scratch:
            repo = Path(scratch) / "repo"
            files, total = stdlib_tree(repo, lines)
            whole = full_pass(repo, Path(scratch) / "whole", ScipBudget(args.heap_mib, 10**9))
            rows = [("one run", whole)]
            if args.part_lines:
                budget = ScipBudget(args.heap_mib, args.part_lines)
                parts = full_pass(repo, Path(scratch) / "parts", budget)
                rows.append((f"parts of {args.part_lines}", parts))
            for mode, figures in rows:
                print(
                    f"{total} | {files} | {mode} | {figures['parts']} | {figures['runs']} | "
                    f"{figures['node_mib']:.0f} | {figures['seconds']:.1f} | "
                    f"{figures['load']:.1f} | {figures['index'] == whole['index']}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
