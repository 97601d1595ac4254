"""Peak resident memory per stage (``core.memory``), as recorded in a stage's metadata."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from codeintel_assets.core import registry
from codeintel_assets.core.context import BuildContext
from codeintel_assets.core.memory import peak_rss
from codeintel_assets.core.stamps import Stage, StageOutput, read_stamp, run_stage

_MIB = 1024 * 1024


def test_peak_rss_sees_memory_freed_before_the_block_ends():
    with peak_rss() as before:
        pass
    with peak_rss() as measured:
        block = bytearray(200 * _MIB)
        block[::4096] = b"x" * len(block[::4096])  # touch every page: resident, not virtual
        del block
    assert measured.method == "VmHWM reset"
    # The block's 200 MiB are gone when it ends, yet they are its peak...
    assert measured.peak_mib >= measured.before_mib + 190
    # ...and a block before it, which allocated nothing, did not see them.
    assert before.peak_mib < measured.before_mib + 100


def test_peak_rss_counts_a_child_process():
    # It lives a second: the children are read every 0.2 s.
    code = "import time; b = bytearray(150 << 20); b[::4096] = b'x' * len(b[::4096]); time.sleep(1)"
    with peak_rss() as measured:
        subprocess.run([sys.executable, "-c", code], check=True)
    assert 150 <= measured.children_peak_mib < 150 + measured.before_mib / 2
    assert measured.metadata()["peak_rss_mib"] >= measured.peak_mib + 150


def test_a_stage_that_ran_records_its_peak_rss(tmp_path: Path):
    repo = tmp_path / "repo"
    repo.mkdir()
    registry.add_repo(registry.RepoConfig(name="mem", path=str(repo)), tmp_path / "data")
    ctx = BuildContext.for_repo("mem", tmp_path / "data")
    stage = Stage("probe", (), "1", lambda ctx, stage: None, lambda layout: [], "source")

    def build() -> StageOutput:
        block = bytearray(120 * _MIB)
        block[::4096] = b"x" * len(block[::4096])
        return StageOutput("v1", {"rows": len(block) // _MIB})

    ran = run_stage(ctx, stage, {}, build)
    skipped = run_stage(ctx, stage, {}, build)
    assert ran.ran and ran.metadata["rows"] == 120
    assert ran.metadata["peak_rss_mib"] >= ran.metadata["rss_before_mib"] + 110
    assert (
        read_stamp(ctx.layout, "probe")["metadata"]["peak_rss_mib"] == ran.metadata["peak_rss_mib"]
    )
    # A skipped stage reports the stamp's figures: those of the run that built it.
    assert not skipped.ran and skipped.metadata == ran.metadata


def test_the_peak_together_is_not_the_sum_of_peaks_at_different_times():
    # The child's 150 MiB come and go before this process allocates its own 200 MiB.
    code = "import time; b = bytearray(150 << 20); b[::4096] = b'x' * len(b[::4096]); time.sleep(1)"
    with peak_rss() as measured:
        subprocess.run([sys.executable, "-c", code], check=True)
        block = bytearray(200 * _MIB)
        block[::4096] = b"x" * len(block[::4096])
        del block
    figures = measured.metadata()
    assert figures["peak_rss_mib"] >= measured.before_mib + 190 + 150  # the two peaks added
    together = measured.together_peak_mib  # unrounded: the metadata rounds to 0.1 MiB
    assert max(measured.peak_mib, measured.children_peak_mib) <= together
    assert figures["together_peak_rss_mib"] == round(together, 1)
    assert together < figures["peak_rss_mib"] - 100  # never both at once
