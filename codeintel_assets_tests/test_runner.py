"""`indexctl build`'s runner: a build with nothing stale launches no Dagster run; a build
where SIGINT is ignored still terminates its children."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from codeintel_assets.core.layout import RepoLayout
from codeintel_assets.core.stages import STAGES
from codeintel_assets.resources import CodeintelResource
from codeintel_assets.runner import StepProgress, build_repository, dagster_instance
from codeintel_assets_tests.support import run_cli


def test_a_noop_build_launches_no_dagster_run_and_an_edit_does(
    capsys, fixture_repo: Path, data_dir: Path, dagster_home: Path
):
    run_cli(capsys, "repo", "add", "fx", str(fixture_repo))
    code, out, err = run_cli(capsys, "build", "fx", "--embedder", "hashing", "--json")
    assert code == 0, err
    first = json.loads(out)
    assert first["dagster_run_id"] and all(s["ran"] for s in first["stages"])
    # Every asset's step is timed, and the run spans its steps.
    assert {stage.name for stage in STAGES} <= set(first["step_seconds"])
    assert first["run_seconds"] >= max(first["step_seconds"].values()) > 0
    chunks = next(s for s in first["stages"] if s["asset"] == "chunks")
    assert chunks["metadata"]["peak_rss_mib"] >= chunks["metadata"]["rss_before_mib"]

    code, out, err = run_cli(capsys, "build", "fx", "--embedder", "hashing")
    assert code == 0, err
    assert "up to date: no stage was stale, no Dagster run" in out
    assert "published fx version" in out
    last = json.loads(RepoLayout(data_dir, "fx").last_build.read_text())
    assert last["success"] and last["dagster_run_id"] is None and last["ran"] == []

    code, out, err = run_cli(capsys, "build", "fx", "--embedder", "hashing", "--json")
    noop = json.loads(out)
    assert noop["dagster_run_id"] is None
    assert (noop["run_seconds"], noop["step_seconds"]) == (0.0, {})
    assert noop["probe_seconds"] > 0
    assert [s["asset"] for s in noop["stages"]] == [stage.name for stage in STAGES]
    assert not any(s["ran"] for s in noop["stages"])

    (fixture_repo / "pkg" / "parse.py").write_text("def parse_config(text):\n    return text\n")
    code, out, err = run_cli(capsys, "build", "fx", "--embedder", "hashing", "--json")
    assert code == 0, err
    edited = json.loads(out)
    ran = {s["asset"] for s in edited["stages"] if s["ran"]}
    assert edited["dagster_run_id"] and {"repo_manifest", "ast_nodes", "chunks"} <= ran


def test_the_progress_line_reads_the_builds_own_run_step_by_step(
    capsys, fixture_repo: Path, data_dir: Path, dagster_home: Path
):
    run_cli(capsys, "repo", "add", "fx", str(fixture_repo))
    started = time.time()
    seen: list[tuple[str, int, int]] = []
    report = build_repository(
        "fx", CodeintelResource(embedder="hashing"), on_step=lambda *args: seen.append(args)
    )
    assert report.success
    steps = set(report.step_seconds)
    assert seen, "a build of several seconds is polled"
    assert all(step == "starting" or step in steps for step, _, _ in seen)
    ended = [finished for _, finished, _ in seen]
    assert ended == sorted(ended) and ended[-1] <= seen[0][2]
    # Read from the start of the finished run: every step ended; a second poll reads
    # nothing new; another repository has no run since then.
    progress = StepProgress(dagster_instance(), "fx", started)
    current, finished = progress.poll()
    assert (current in steps, finished) == (True, len(steps))
    assert progress.poll() == (current, finished)
    assert StepProgress(dagster_instance(), "other", started).poll() == ("starting", 0)


_TERMINATE_AFTER_DAGSTER = """
import contextlib, subprocess, sys
from dagster._utils.interrupts import capture_interrupts  # what every Dagster run enters
from codeintel_assets.runner import sigint_default

with sigint_default() if sys.argv[1] == "restored" else contextlib.nullcontext():
    with capture_interrupts():
        pass
    child = subprocess.Popen(["sleep", "30"])
    child.terminate()
    try:
        print("exit", child.wait(timeout=5))
    except subprocess.TimeoutExpired:
        child.kill()
        print("terminate ignored")
"""


def test_a_build_where_sigint_is_ignored_can_still_terminate_its_children(tmp_path: Path):
    # A background job ignores SIGINT; Dagster maps SIGTERM to the SIGINT handler and back,
    # so the processes started afterwards (its compute-log `tail`s) ignore terminate().
    script = tmp_path / "terminate.py"
    script.write_text(_TERMINATE_AFTER_DAGSTER)

    def run(mode: str) -> str:
        done = subprocess.run(
            [sys.executable, str(script), mode],
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout.strip()

    assert run("as inherited") == "terminate ignored"
    assert run("restored") == f"exit {-signal.SIGTERM}"
