"""What builds cost at the size of a real repository: the running Python's whole standard
library (~860k lines with its tests) or a part of it (``--lines``), through `indexctl build`.

Five builds of one corpus, each a separate `indexctl build --json` process timed by the
wall clock (process start, imports and Dagster's run machinery included): the full build,
a no-op rebuild, a one-function edit (one statement inserted into a function body), a
signature change of a function other files use (a parameter added), and a deleted file
that other files import. Per build it prints the wall time and its share of the full
build, chunks embedded, files re-parsed, SCIP documents re-indexed, the peak resident
memory of every stage that ran (``peak_rss_mib`` in its metadata), the stage that bounds
the wall time and the one that bounds memory. The counts come from the stages' metadata:
a stage that ran without recording one prints ``n/a`` (the stages that ran are listed
with their seconds), a stage that skipped did 0.

The default embedder is the real model (all-MiniLM-L6-v2: ~45 min of embedding for the
whole library on 2 cores); ``--embedder hashing`` is the fast deterministic stand-in for a
structural run and every line of output says which was used.

The corpus is laid out as in CPython's repository (``Lib/``) unless ``--layout root``.
``--full-only --keep DIR`` makes and keeps the full build; ``--resume DIR`` later builds it
once with the checkout's current code (the "catch-up" row: what a code upgrade costs), then
the no-op and the edits, as shares of that full build — so a full build measured once can
serve the edit figures of a later commit. ``--copy-to COPY`` resumes a copy instead (the kept
build stays as it was, so two commits can be measured on the same state, one after the
other), and ``--edits one-function`` stops after the one-function edit.

    python benchmarks/bench_scale.py [--lines 200000] [--embedder hashing] [--json out.json]
        [--layout cpython|root] [--full-only] [--keep DIR] [--resume DIR [--copy-to COPY]
        [--edits all|one-function] [--repeat-edit N]]
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import tokenize
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import edit_one_function  # noqa: E402

NAME = "stdlib"
# Targets of issue 15, as shares of the full build and wall seconds.
TARGETS = {"no-op": (0.01, 5.0), "one-function edit": (0.03, 60.0)}
RSS_TARGET_MIB = 6 * 1024
# Metadata keys that count per-file work, first found wins (stages without them re-do all).
REPARSED_KEYS = ("files_parsed", "files_processed", "parsed_files", "files_reparsed")
REINDEXED_KEYS = ("documents_reindexed", "documents_indexed", "files_indexed")
PARSE_STAGES = ("ast_nodes", "cst_nodes")


def stdlib_tree(target: Path, lines: int | None, layout: str = "cpython") -> tuple[int, int]:
    """Copy the standard library's ``.py`` files (all, or top-level packages and modules in
    name order until about ``lines`` lines) into a new git repository at ``target``: under
    ``Lib/`` as in CPython's own repository (``layout="cpython"``), or at its root
    (``layout="root"``, where its top-level modules shadow the standard library's names, so
    scip-python indexes it in one run, see README "SCIP").

    Returns (files, lines) copied.
    """
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    entries = sorted(p for p in stdlib.iterdir() if p.name not in ("site-packages", "__pycache__"))
    files, total = 0, 0
    for entry in entries:
        sources = [entry] if entry.suffix == ".py" else sorted(entry.rglob("*.py"))
        sources = [p for p in sources if "__pycache__" not in p.parts]
        size = sum(p.read_bytes().count(b"\n") for p in sources)
        if not sources or (lines is not None and total + size > lines * 1.05):
            continue
        for path in sources:
            copy = target / ("Lib" if layout == "cpython" else "") / path.relative_to(stdlib)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
        files, total = files + len(sources), total + size
        if lines is not None and total >= lines * 0.95:
            break
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@local", "-C", str(target)]
    subprocess.run(["git", "init", "-q", str(target)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "corpus"], check=True)
    return files, total


def indexctl(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).parent / "indexctl"), *argv]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


def build(env: dict[str, str], embedder: str) -> dict:
    """Run `indexctl build --json`; return its report with the wall seconds."""
    started = time.perf_counter()
    done = indexctl(env, "build", NAME, "--embedder", embedder, "--json")
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"indexctl build failed: {done.stderr.strip()[-2000:]}")
    return {**json.loads(done.stdout), "wall": wall}


# -- the edits -----------------------------------------------------------------------------


def used_from_other_files(data: Path) -> list[tuple[str, str, int]]:
    """Return (uri, symbol, files referring to it) of top-level functions that other files
    refer to, from the build's ``scip_occurrences``, most referred to first."""
    occurrences = pq.read_table(
        data / NAME / "scip" / "scip_occurrences.parquet", columns=["symbol", "uri", "role"]
    )
    # A top-level function of a module: `... `pkg.mod`/name().`
    functions = occurrences.filter(pc.match_substring_regex(occurrences["symbol"], r"/\w+\(\)\.$"))
    defs = functions.filter(pc.equal(functions["role"], "def")).to_pylist()
    home = {row["symbol"]: row["uri"] for row in defs}
    users: dict[str, set[str]] = {}
    for row in functions.filter(pc.equal(functions["role"], "ref")).to_pylist():
        if row["symbol"] in home and row["uri"] != home[row["symbol"]]:
            users.setdefault(row["symbol"], set()).add(row["uri"])
    ranked = sorted(users.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    # A small corpus may have none (stdlib imports resolve to typeshed's stubs): then any
    # top-level function, labelled as used from 0 other files.
    unused = sorted(set(home) - set(users))
    return [(home[symbol], symbol, len(files)) for symbol, files in ranked] + [
        (home[symbol], symbol, 0) for symbol in unused
    ]


def change_signature(root: Path, candidates: list[tuple[str, str, int]]) -> str:
    """Add a defaulted parameter to the first candidate function that takes no ``**kwargs``."""
    for uri, symbol, users in candidates:
        name = symbol.rsplit("/", 1)[-1].removesuffix("().")
        path = root / uri
        tree = _parsed(path)
        node = next(
            (
                n
                for n in (tree.body if tree else [])
                if isinstance(n, ast.FunctionDef) and n.name == name and n.args.kwarg is None
            ),
            None,
        )
        if node is None:
            continue
        text = path.read_text(encoding="utf-8")
        offset = _closing_paren(text, node.lineno)
        before = text[:offset].rstrip()
        separator = "" if before.endswith(("(", ",")) else ", "
        text = text[:offset] + separator + "_bench_extra=None" + text[offset:]
        path.write_text(text, encoding="utf-8")
        return f"{uri}:{name} (used from {users} other files)"
    raise SystemExit("no function used from other files to change")


def delete_imported_file(root: Path, candidates: list[tuple[str, str, int]], keep: str) -> str:
    """Delete (``git rm``) the file of the first candidate other than ``keep``."""
    for uri, _, users in candidates:
        if uri != keep.split(":", 1)[0] and not uri.endswith("__init__.py"):
            subprocess.run(["git", "-C", str(root), "rm", "-q", uri], check=True)
            return f"{uri} (its functions used from up to {users} other files)"
    raise SystemExit("no file to delete")


def _parsed(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return None


def _closing_paren(text: str, def_line: int) -> int:
    """Return the character offset of the ``)`` that closes the parameters of the ``def``
    on line ``def_line``."""
    starts = [0]
    for line in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    depth = 0
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.start[0] < def_line or token.type != tokenize.OP:
            continue
        if token.string == "(":
            depth += 1
        elif token.string == ")":
            depth -= 1
            if depth == 0:
                return starts[token.start[0] - 1] + token.start[1]
    raise SystemExit(f"no parameter list on line {def_line}")


# -- the figures ---------------------------------------------------------------------------


def figures(label: str, report: dict, full_wall: float | None) -> dict:
    """Return one build's row: wall, share, counts, per-stage peak RSS and bounding stages."""
    stages = {s["asset"]: s for s in report["stages"]}
    ran = {name: s for name, s in stages.items() if s["ran"]}
    chunks = ran.get("chunks", {}).get("metadata", {})
    seconds = {name: s["seconds"] or 0.0 for name, s in ran.items()}
    rss = {name: s["metadata"].get("peak_rss_mib") for name, s in ran.items()}
    rss = {name: value for name, value in rss.items() if value is not None}
    # This process and its children at the same moment (sampled): below the sum of peaks.
    together = {name: s["metadata"].get("together_peak_rss_mib") for name, s in ran.items()}
    together = {name: value for name, value in together.items() if value is not None}
    wall = report["wall"]
    steps = report.get("step_seconds", {})
    asset_steps = sum(secs for key, secs in steps.items() if key in stages)
    worked = sum(stages[key]["seconds"] or 0.0 for key in steps if key in stages)
    run = report.get("run_seconds", 0.0)
    return {
        "build": label,
        "wall_s": round(wall, 2),
        "share_of_full": round(wall / (full_wall or wall), 4),
        "dagster_run": bool(report.get("dagster_run_id")),
        "stages_ran": sorted(ran),
        "stage_seconds": dict(sorted(seconds.items(), key=lambda kv: -kv[1])),
        "outside_stages_s": round(wall - sum(seconds.values()), 2),
        # Where the wall time went: the stages' own work (gates included), Dagster's cost
        # around each asset step, the checks' steps, the run outside its steps, and outside
        # the run: process start, imports, the gate probe, the report.
        "split_s": {
            "stage work": round(worked, 2),
            "asset step overhead": round(asset_steps - worked, 2),
            "checks": round(sum(steps.values()) - asset_steps, 2),
            "run outside steps": round(run - sum(steps.values()), 2),
            "gate probe": round(report.get("probe_seconds", 0.0), 2),
            "process, imports, report": round(wall - run - report.get("probe_seconds", 0.0), 2),
        },
        "chunks_embedded": chunks.get("embedded", 0) if "chunks" in ran else 0,
        "files_reparsed": {stage: _count(ran.get(stage), REPARSED_KEYS) for stage in PARSE_STAGES},
        "scip_documents_reindexed": _count(ran.get("scip_index"), REINDEXED_KEYS),
        "scip_mode": ran.get("scip_index", {}).get("metadata", {}).get("mode", "-"),
        "peak_rss_mib": dict(sorted(rss.items(), key=lambda kv: -kv[1])),
        "together_peak_rss_mib": dict(sorted(together.items(), key=lambda kv: -kv[1])),
    }


def _count(stage: dict | None, keys: tuple[str, ...]) -> int | str:
    """Return a stage's per-file count: 0 when it skipped, its metadata's count when it
    records one, ``n/a`` when it ran without one."""
    if stage is None:
        return 0
    metadata = stage["metadata"]
    found = next((metadata[k] for k in keys if isinstance(metadata.get(k), int)), None)
    return found if found is not None else "n/a"


def print_rows(rows: list[dict], embedder: str) -> None:
    print(f"\nembedder: {embedder}")
    print(
        f"{'build':<22} {'wall s':>8} {'% full':>7} {'embedded':>9} {'re-parsed ast/cst':>18}"
        f" {'scip docs':>10} {'max RSS MiB':>12}  bounded by"
    )
    for row in rows:
        rss = row["peak_rss_mib"]
        top_rss = max(rss.items(), key=lambda kv: kv[1]) if rss else ("-", 0)
        slowest = next(iter(row["stage_seconds"].items()), None)
        bound = (
            f"{slowest[0]} {slowest[1]:.1f}s"
            if slowest and slowest[1] > row["outside_stages_s"]
            else f"outside the stages {row['outside_stages_s']:.1f}s"
        )
        parsed = "/".join(str(v) for v in row["files_reparsed"].values())
        print(
            f"{row['build']:<22} {row['wall_s']:>8.1f} {100 * row['share_of_full']:>6.2f}%"
            f" {row['chunks_embedded']:>9} {parsed:>18} {row['scip_documents_reindexed']!s:>10}"
            f" {top_rss[1]:>12.0f}  {bound}; memory: {top_rss[0]}{_verdict(row)}"
        )
    print("\nper stage (seconds / peak RSS MiB) of the stages that ran:")
    for row in rows:
        cells = ", ".join(
            f"{name} {secs:.1f}s/{row['peak_rss_mib'].get(name, 0):.0f}"
            for name, secs in row["stage_seconds"].items()
        )
        print(
            f"  {row['build']}: {cells or 'none'}; outside the stages {row['outside_stages_s']}s;"
            f" scip: {row['scip_mode']}"
        )
    print("\nwhere the wall time went (seconds):")
    for row in rows:
        split = ", ".join(f"{part} {secs:.2f}" for part, secs in row["split_s"].items())
        print(f"  {row['build']}: {split}")


def _verdict(row: dict) -> str:
    target = TARGETS.get(row["build"])
    marks = []
    if target is not None:
        share, wall = target
        ok = row["share_of_full"] <= share and row["wall_s"] <= wall
        marks.append(f"target <= {share:.0%} and <= {wall:.0f}s: {'ok' if ok else 'MISSED'}")
    if row["peak_rss_mib"] and max(row["peak_rss_mib"].values()) > RSS_TARGET_MIB:
        marks.append("RSS over 6 GiB")
    return f" [{'; '.join(marks)}]" if marks else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, help="about this many lines (default: all)")
    parser.add_argument(
        "--embedder",
        choices=["sentence-transformers", "hashing"],
        default="sentence-transformers",
        help="'hashing': the fast deterministic stand-in, for a structural run",
    )
    parser.add_argument(
        "--layout",
        choices=["cpython", "root"],
        default="cpython",
        help="the files under Lib/ as in CPython's repository (default), or at the root",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep", type=Path, help="build in this (new) folder and keep it")
    parser.add_argument(
        "--full-only", action="store_true", help="only the full build (an older checkout's memory)"
    )
    parser.add_argument(
        "--resume",
        type=Path,
        help="a --keep folder of a --full-only run: build it once with this checkout's code"
        " (reported as 'catch-up'), then the no-op and the edits, against that full build",
    )
    parser.add_argument(
        "--copy-to",
        type=Path,
        help="with --resume: copy the kept folder here first (replacing it) and build the"
        " copy, so the kept build stays as it was for the next commit's figures",
    )
    parser.add_argument(
        "--edits",
        choices=["all", "one-function"],
        default="all",
        help="with --resume: every build after the catch-up (default), or only the no-op"
        " and the one-function edit",
    )
    parser.add_argument(
        "--repeat-edit",
        type=int,
        default=1,
        help="make the one-function edit this many times, one build each (the same function,"
        " another statement each time): a first edit after a code change may also convert"
        " what the new code keeps differently",
    )
    args = parser.parse_args()
    if args.resume is not None:
        return resume(args)

    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    repo, data, home = work / "repo", work / "data", work / "dagster_home"
    for folder in (repo, data, home):
        folder.mkdir(parents=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = _env(work)
    try:
        files, lines = stdlib_tree(repo, args.lines, args.layout)
        corpus = {"files": files, "lines": lines, "layout": args.layout, "embedder": args.embedder}
        _describe(corpus)
        added = indexctl(env, "repo", "add", NAME, str(repo))
        if added.returncode != 0:
            raise SystemExit(added.stderr)
        reports = [("full", build(env, args.embedder))]
        if args.keep is not None:
            # What --resume needs: the corpus and the full build's report.
            (work / "bench_scale.json").write_text(
                json.dumps({**corpus, "commit": _commit(), "reports": reports})
            )
        edits = {} if args.full_only else run_edits(env, repo, data, args.embedder, reports)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    report(args, corpus, reports, edits)


def resume(args: argparse.Namespace) -> None:
    """Build a kept full build with this checkout's code, then the no-op and the edits."""
    work = args.resume
    if args.copy_to is not None:
        work = copy_kept(work, args.copy_to)
    saved = json.loads((work / "bench_scale.json").read_text())
    corpus = {k: saved[k] for k in ("files", "lines", "layout", "embedder")}
    print(f"resuming {work}: full build made by commit {saved['commit']}, now {_commit()}")
    _describe(corpus)
    env = _env(work)
    reports = [tuple(pair) for pair in saved["reports"]][:1]
    reports.append(("catch-up", build(env, corpus["embedder"])))
    only_one = args.edits == "one-function"
    edits = run_edits(
        env, work / "repo", work / "data", corpus["embedder"], reports, only_one, args.repeat_edit
    )
    report(args, corpus, reports, edits)


def copy_kept(kept: Path, target: Path) -> Path:
    """Copy a kept build folder to ``target`` (replacing it); return ``target``.

    The data root's JSON files (registry, stamps, versions) name the folder's absolute
    paths: they are rewritten to the copy's.
    """
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(kept, target, symlinks=True)
    old, new = str(kept.resolve()), str(target.resolve())
    for path in (target / "data").rglob("*.json"):
        text = path.read_text(encoding="utf-8")
        if old in text:
            path.write_text(text.replace(old, new), encoding="utf-8")
    return target


def run_edits(
    env: dict[str, str],
    repo: Path,
    data: Path,
    embedder: str,
    reports: list,
    only_one_function: bool = False,
    repeat_edit: int = 1,
) -> dict[str, str]:
    """Append the no-op, one-function edit, signature change and deletion builds (only the
    first two with ``only_one_function``)."""
    reports.append(("no-op", build(env, embedder)))
    edited = edit_one_function(repo)
    reports.append(("one-function edit", build(env, embedder)))
    for turn in range(2, repeat_edit + 1):
        edit_one_function(repo)
        reports.append((f"one-function edit #{turn}", build(env, embedder)))
    if only_one_function:
        return {"edited": edited}
    changed = change_signature(repo, used_from_other_files(data))
    reports.append(("signature change", build(env, embedder)))
    deleted = delete_imported_file(repo, used_from_other_files(data), changed)
    reports.append(("file deleted", build(env, embedder)))
    return {"edited": edited, "signature_changed": changed, "deleted": deleted}


def report(args: argparse.Namespace, corpus: dict, reports: list, edits: dict[str, str]) -> None:
    full_wall = reports[0][1]["wall"]
    rows = [figures(label, report, full_wall) for label, report in reports]
    for key in ("edited", "signature_changed", "deleted"):
        print(f"{key.replace('_', ' ')}: {edits.get(key, '-')}")
    print_rows(rows, corpus["embedder"])
    if args.json:
        args.json.write_text(json.dumps({**corpus, **edits, "builds": rows}, indent=2))


def _env(work: Path) -> dict[str, str]:
    return {
        **os.environ,
        "CODEINTEL_DATA": str(work / "data"),
        "DAGSTER_HOME": str(work / "dagster_home"),
    }


def _describe(corpus: dict) -> None:
    print(
        f"corpus: {corpus['files']} files, {corpus['lines']} lines of the Python"
        f" {sys.version.split()[0]} stdlib, layout {corpus['layout']}"
    )
    hashing = corpus["embedder"] == "hashing"
    print(f"embedder: {corpus['embedder']}" + (" (structural run)" if hashing else ""))


def _commit() -> str:
    """Return the commit of the code the builds run: the checkout ``codeintel_assets`` is
    imported from (``PYTHONPATH`` may point at another checkout than this script's)."""
    found = subprocess.run(
        [sys.executable, "-c", "import codeintel_assets; print(codeintel_assets.__file__)"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    checkout = str(Path(found).resolve().parent) if found else str(Path(__file__).parent)
    done = subprocess.run(
        ["git", "-C", checkout, "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    dirty = subprocess.run(
        ["git", "-C", checkout, "status", "--porcelain"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return done.stdout.strip() + ("+changes" if dirty else "")


if __name__ == "__main__":
    main()
