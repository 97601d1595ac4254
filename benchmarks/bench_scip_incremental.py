"""Benchmark scip-python's environment and incremental SCIP against a full pass, in one run.

1. **Where the time goes** (``--repo``, default this checkout, whose code imports dagster,
   torch, pyarrow...): one full pass resolving imports against a virtualenv holding those
   packages (``--venv``, default this tool's own ``.venv`` — what every build did before
   ``python_env``) and one against the minimal environment (no third-party packages).
   The difference is the cost of analysing the installed packages the imports resolve
   to. scip-python's phase timestamps are printed for both.
2. **Incremental vs full** on a corpus of standard-library packages (``corpus.py``,
   minimal environment): a full pass, then for each edit — one function body, a
   signature used from other files, a file deleted that others import — the incremental
   update and, as its baseline in the same run, a full pass of the same edited tree; the
   two indexes' documents are compared (equal or not).

Run: ``python benchmarks/bench_scip_incremental.py [--repo DIR] [--venv DIR] [--skip-env]
[--packages json,email,...]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import stdlib_corpus  # noqa: E402

from codeintel_assets.core.checksums import xxh64_file  # noqa: E402
from codeintel_assets.core.layout import PROJECT_ROOT  # noqa: E402
from codeintel_assets.core.scip.environment import (  # noqa: E402
    PythonEnvironment,
    minimal_environment,
    resolve_python_env,
)
from codeintel_assets.core.scip.incremental import (  # noqa: E402
    PROJECT_VERSION,
    ScipJob,
    update_scip_index,
)
from codeintel_assets.core.scip.indexer import manifest_python_uris  # noqa: E402
from codeintel_assets.core.scip.parts import ScipBudget  # noqa: E402
from codeintel_assets.core.scip.protobuf_reader import read_scip_protobuf  # noqa: E402

PACKAGES = ("json", "email", "http", "logging", "asyncio", "unittest", "xml")
_PHASE = re.compile(r"\((\d\d):(\d\d):(\d\d)\) (\S.*)")
PHASES = (
    "Parse and search for dependencies",
    "Index workspace and track project files",
    "Analyze project and dependencies",
    "Parse and emit SCIP",
    "Writing external symbols to SCIP index",
)


def job_for(
    repo: Path, out: Path, environment: PythonEnvironment, budget: ScipBudget | None = None
) -> ScipJob:
    """Return the SCIP job of ``repo``'s Python files into ``out`` (``budget``: the default
    when None)."""
    files = {uri: xxh64_file(repo / uri) for uri in manifest_python_uris(repo)}
    paths = (out / "index.scip", out / "scip_state.json")
    job = ScipJob(repo, *paths, "bench", PROJECT_VERSION, files, environment)
    return job if budget is None else dataclasses.replace(job, budget=budget)


def phases(log: str) -> str:
    """Return the seconds between scip-python's phase messages (1 s resolution)."""
    stamps = []
    for match in _PHASE.finditer(log):
        h, m, s, text = match.groups()
        stamps.append((int(h) * 3600 + int(m) * 60 + int(s), text.strip()))
    found = []
    for (t0, name), (t1, _) in zip(stamps, stamps[1:], strict=False):
        if name in PHASES:
            found.append(f"{name.split(' ')[0].lower()}…{(t1 - t0) % 86400}s")
    return ", ".join(found)


def environment_figures(repo: Path, venv: Path, scratch: Path) -> None:
    uris = manifest_python_uris(repo)
    lines = sum((repo / uri).read_text(errors="replace").count("\n") for uri in uris)
    print(f"## scip-python environment: {repo} ({lines} lines of Python)")
    print("| environment | packages | seconds | documents | external symbols | phases |")
    print("|---|---|---|---|---|---|")
    for label, environment in (
        (f"virtualenv {venv}", resolve_python_env(repo, str(venv))),
        ("minimal (no third-party packages)", minimal_environment()),
    ):
        out = scratch / label.split()[0]
        job = job_for(repo, out, environment)
        started = time.perf_counter()
        result = job.run(out / "index.scip", sorted(job.files))
        seconds = time.perf_counter() - started
        index = read_scip_protobuf(out / "index.scip") if result.ok else None
        externals = len(index.external_symbols) if index else 0
        print(
            f"| {label} | {environment.fingerprint()['packages']} | {seconds:.1f} | "
            f"{result.documents} | {externals} | {phases(result.stderr_tail)} |"
        )


def edit(corpus: Path, kind: str) -> str:
    """Apply one edit of ``kind`` to the corpus; return what it did."""
    if kind == "one function body":
        path = corpus / "json/decoder.py"
        path.write_text(path.read_text().replace('"Expecting value"', '"Expecting a value"', 1))
        return "json/decoder.py: a message in JSONObject's body"
    if kind == "signature used elsewhere":
        path = corpus / "email/_parseaddr.py"
        path.write_text(path.read_text().replace("def quote(str):", "def quote(str, also=''):"))
        return "email/_parseaddr.py: quote() gains a parameter (imported by email/utils.py)"
    (corpus / "email/quoprimime.py").unlink()
    return "email/quoprimime.py deleted (imported by charset, header, contentmanager)"


def documents_equal(left: Path, right: Path) -> bool:
    a, b = read_scip_protobuf(left), read_scip_protobuf(right)
    return list(a.documents) == list(b.documents) and list(a.external_symbols) == list(
        b.external_symbols
    )


def incremental_figures(scratch: Path, packages: tuple[str, ...]) -> None:
    corpus = scratch / "stdlib"
    lines = stdlib_corpus(corpus, packages, git=False)
    print(f"\n## incremental vs full: stdlib corpus {', '.join(packages)} ({lines} lines)")
    environment = minimal_environment()
    live = scratch / "live"
    first = update_scip_index(job_for(corpus, live, environment))
    print(f"first build (full): {first.seconds:.1f} s, {first.documents} documents")
    print(
        "| edit | incremental s | documents re-indexed | rounds | full pass s (baseline) | "
        "ratio | same documents as full |"
    )
    print("|---|---|---|---|---|---|---|")
    for kind in ("one function body", "signature used elsewhere", "file deleted"):
        what = edit(corpus, kind)
        update = update_scip_index(job_for(corpus, live, environment))
        baseline_dir = scratch / f"full-{kind.split()[0]}"
        baseline = update_scip_index(job_for(corpus, baseline_dir, environment), force_full=True)
        same = documents_equal(live / "index.scip", baseline_dir / "index.scip")
        print(
            f"| {kind} ({what}) | {update.seconds:.1f} ({update.mode}) | {len(update.reindexed)} "
            f"| {update.rounds} | {baseline.seconds:.1f} | {update.seconds / baseline.seconds:.0%} "
            f"| {'yes' if same else 'NO'} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=PROJECT_ROOT)
    parser.add_argument("--venv", type=Path, default=Path(sys.prefix), help="default: this tool's")
    parser.add_argument("--skip-env", action="store_true", help="only the incremental figures")
    parser.add_argument(
        "--packages", default=",".join(PACKAGES), help="stdlib packages (json and email are edited)"
    )
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-scip-inc-"))
    try:
        if not args.skip_env:
            environment_figures(args.repo.resolve(), args.venv, scratch)
        incremental_figures(scratch, tuple(args.packages.split(",")))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
