"""Crash safety: a publish or a build that dies at any point leaves `current` complete and
readable, and the next run recovers by itself (no manual clean-up)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from codeintel_assets.core import lifecycle, registry
from codeintel_assets.core.catalog import build_catalog
from codeintel_assets.core.layout import PROJECT_ROOT, RepoLayout
from codeintel_assets.core.lifecycle import publish_build, tool_versions
from codeintel_assets.core.stamps import read_stamp, remove_stale_temp_files
from codeintel_assets.core.validation import validate_version
from codeintel_assets_tests.lifecycle_support import (
    NAME,
    assert_current_is_complete,
    context,
    new_build,
)
from codeintel_assets_tests.support import materialize_partition

pytestmark = pytest.mark.integration

# A publish in a child process that stops (sleeps) at a chosen point, holding the lock.
PUBLISH_SCRIPT = textwrap.dedent(
    """\
    import sys, time
    from pathlib import Path
    from codeintel_assets.core import lifecycle
    from codeintel_assets.core.catalog import build_catalog
    from codeintel_assets.core.embedding import EmbedderSpec
    from codeintel_assets.core.context import BuildContext
    from codeintel_assets.core.lifecycle import tool_versions
    from codeintel_assets.core.validation import validate_version

    root, marker, where = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    ctx = BuildContext.for_repo("life", root, EmbedderSpec(kind="hashing"))

    def stop_here():
        marker.write_text("ready")
        time.sleep(120)

    def catalog(version):
        if where == "before_catalog":
            stop_here()
        facts = build_catalog(version, materialize=True).to_dict()
        return facts

    def validate(version):
        failures = validate_version(version)
        if where == "after_catalog":
            stop_here()
        return failures

    lifecycle.publish_version(ctx.layout, catalog, validate, tool_versions(ctx))
    """
)

# A full Dagster build of the partition in a child process (killed part-way by the test).
BUILD_SCRIPT = textwrap.dedent(
    """\
    import sys
    import dagster as dg
    from codeintel_assets.checks import ALL_CHECKS
    from codeintel_assets.definitions import ALL_ASSETS
    from codeintel_assets.partitions import REPOS
    from codeintel_assets.resources import CodeintelResource

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(REPOS.name, ["life"])
    dg.materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        partition_key="life",
        instance=instance,
        resources={"codeintel": CodeintelResource(data_root=sys.argv[1], embedder="hashing")},
    )
    """
)


def leftovers(root: Path) -> list[str]:
    """Return what a crash may leave: incomplete versions, temp links and temp files."""
    layout = RepoLayout(root, NAME)
    found = [
        f"incomplete {p.name}"
        for p in layout.versions_dir.iterdir()
        if p.is_dir() and not (p / "manifest.json").exists()
    ]
    found += [p.name for p in layout.repo_dir.glob(".current.*")]
    found += [str(p) for p in layout.repo_dir.rglob(".*.tmp")]
    return found


def spawn(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def kill_when(proc: subprocess.Popen, ready, timeout_s: float = 120) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` is true; fail if it exits or times out first."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"child exited early: {proc.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("child never reached the kill point")
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL


@pytest.mark.parametrize("step", ["stage", "catalog", "manifest", "flip"])
def test_injected_failure_after_each_publish_step(root: Path, step: str):
    layout = RepoLayout(root, NAME)
    before = assert_current_is_complete(root)
    new_build(root, step)
    ctx = context(root)
    with pytest.raises(RuntimeError, match=f"injected failure after {step}"):
        lifecycle.publish_version(
            layout,
            build_catalog=lambda v: build_catalog(v, materialize=True).to_dict(),
            validate=validate_version,
            extra_manifest=tool_versions(ctx),
            fail_after=step,
        )
    # Only a completed flip moves `current`; before it, readers keep the old version.
    now = assert_current_is_complete(root)
    assert (now != before) == (step == "flip")

    outcome = publish_build(ctx)
    assert outcome.reused == (step in {"manifest", "flip"})
    assert assert_current_is_complete(root) == outcome.build_version != before
    assert leftovers(root) == []


@pytest.mark.parametrize("where", ["before_catalog", "after_catalog"])
def test_sigkill_in_the_middle_of_a_publish(root: Path, tmp_path: Path, where: str):
    layout = RepoLayout(root, NAME)
    before = assert_current_is_complete(root)
    new_build(root, where)
    marker = tmp_path / "ready"
    proc = spawn(PUBLISH_SCRIPT, str(root), str(marker), where)
    kill_when(proc, marker.exists)

    # The killed publisher held the lock and left a half-made version behind.
    assert assert_current_is_complete(root) == before
    assert any(name.startswith("incomplete") for name in leftovers(root))
    assert (layout.locks_dir / "publish.lock").exists()

    outcome = publish_build(context(root))  # the kernel released the lock with the process
    assert not outcome.reused
    assert assert_current_is_complete(root) == outcome.build_version != before
    assert leftovers(root) == []


@pytest.mark.parametrize("after_stage", ["repo_manifest", "chunks"])
def test_sigkill_in_the_middle_of_a_build(root: Path, tmp_path: Path, after_stage: str):
    # This test edits the repository: give it its own copy.
    repo = tmp_path / "repo"
    shutil.copytree(registry.get_repo(NAME, root).root, repo, symlinks=True)
    registry.add_repo(registry.RepoConfig(name=NAME, path=str(repo)), root, replace=True)
    layout = RepoLayout(root, NAME)
    before = assert_current_is_complete(root)
    source = repo / "pkg" / "parse.py"
    source.write_text(source.read_text() + "\n\ndef crash_marker():\n    return 'rebuilt'\n")
    stamp_before = read_stamp(layout, after_stage)

    proc = spawn(BUILD_SCRIPT, str(root))
    kill_when(proc, lambda: read_stamp(layout, after_stage) != stamp_before)
    assert assert_current_is_complete(root) == before

    assert materialize_partition(NAME, root).success
    after = assert_current_is_complete(root)
    assert after != before
    current = lifecycle.current_layout(layout)
    contents = pq.read_table(current.chunks, columns=["content"]).column("content").to_pylist()
    assert any("def crash_marker" in text for text in contents)
    assert leftovers(root) == []


def test_temp_files_of_a_killed_writer_are_removed_before_the_stage_reruns(tmp_path: Path):
    target = tmp_path / "vectors" / "chunks" / "chunks.parquet"
    target.parent.mkdir(parents=True)
    stale = target.parent / ".chunks.parquet.abc123.tmp"
    stale.write_bytes(b"half a parquet file")
    other = target.parent / ".other.parquet.abc123.tmp"
    other.write_bytes(b"not ours")
    assert remove_stale_temp_files([target]) == [stale]
    assert not stale.exists() and other.exists()
