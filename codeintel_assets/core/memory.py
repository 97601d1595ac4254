"""Peak resident memory of a block of work (a stage), this process and its child processes.

``getrusage``'s ``ru_maxrss`` is process-wide and only grows, so it cannot tell one stage
of a build from the one before. Linux keeps the same high-water mark per process
(``VmHWM`` in ``/proc/self/status``) and lets a process reset it (writing ``5`` to
``/proc/self/clear_refs``): resetting it when a stage starts and reading it when it ends
gives the stage's exact peak, with no sampling. Child processes (scip-python's node) are
other processes: a thread reads, every 0.2 s, the high-water mark of every live
descendant (their own ``VmHWM``, so a child's peak between two reads is not missed, only
the growth of its last 0.2 s) and keeps the largest sum. ``RUSAGE_CHILDREN`` is no help:
a forked child counts its parent's pages until it execs, so its ``ru_maxrss`` is the
parent's size. Stages of one process measured at the same time (threads) share the
process's figure. Elsewhere than Linux, the process figure is ``ru_maxrss`` (the peak so
far, an upper bound) and ``method`` says so.
"""

from __future__ import annotations

import contextlib
import ctypes
import re
import resource
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

_PROC_SELF = Path("/proc/self")
_SAMPLE_SECONDS = 0.2
_MIB = 1024 * 1024


@dataclass
class PeakRss:
    """What a ``peak_rss()`` block measured, in MiB (filled when the block ends)."""

    before_mib: float = 0.0  # this process's resident size when the block started
    peak_mib: float = 0.0  # this process's peak resident size during the block
    children_peak_mib: float = 0.0  # peak of the child processes' summed resident sizes
    # Peak of this process's and its children's resident sizes at the same moment, sampled
    # every 0.2 s (peak_rss_mib adds two peaks that may come at different times).
    together_peak_mib: float = 0.0
    method: str = "VmHWM reset"
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)

    def metadata(self) -> dict[str, float | str]:
        """Return the figures as stage metadata (``peak_rss_mib`` includes the children)."""
        return {
            "peak_rss_mib": round(self.peak_mib + self.children_peak_mib, 1),
            "process_peak_rss_mib": round(self.peak_mib, 1),
            "children_peak_rss_mib": round(self.children_peak_mib, 1),
            "together_peak_rss_mib": round(self.together_peak_mib, 1),
            "rss_before_mib": round(self.before_mib, 1),
            "peak_rss_method": self.method,
        }


@contextlib.contextmanager
def peak_rss() -> Iterator[PeakRss]:
    """Measure the block's peak resident memory; yield the ``PeakRss`` it fills in at exit."""
    measured = PeakRss(before_mib=_status_mib("VmRSS") or 0.0)
    reset = _reset_high_water_mark()
    if not reset:
        measured.method = "ru_maxrss (process peak so far)"
    sampler = threading.Thread(target=_sample_children, args=(measured,), daemon=True)
    sampler.start()
    try:
        yield measured
    finally:
        measured._stop.set()
        sampler.join()
        hwm = _status_mib("VmHWM") if reset else None
        measured.peak_mib = hwm if hwm is not None else _maxrss_mib()
        # Never below either peak alone (a block shorter than a sample has none).
        measured.together_peak_mib = max(
            measured.together_peak_mib, measured.peak_mib, measured.children_peak_mib
        )


def _sample_children(measured: PeakRss) -> None:
    while not measured._stop.wait(_SAMPLE_SECONDS):
        children = _descendants()
        total = sum(_peak_mib(pid) for pid in children)
        measured.children_peak_mib = max(measured.children_peak_mib, total)
        now = (_status_mib("VmRSS") or 0.0) + sum(_resident_mib(pid) for pid in children)
        measured.together_peak_mib = max(measured.together_peak_mib, now)


def _descendants() -> list[int]:
    """Return the pids of this process's descendants (every thread's children, recursively)."""
    found: list[int] = []
    pending = [_PROC_SELF]
    while pending:
        proc = pending.pop()
        for children in proc.glob("task/*/children"):
            with contextlib.suppress(OSError):
                for pid in children.read_text().split():
                    found.append(int(pid))
                    pending.append(Path("/proc") / pid)
    return found


def _peak_mib(pid: int) -> float:
    """Return a process's peak resident size so far (0 once it is gone)."""
    with contextlib.suppress(OSError):
        return _field_mib((Path("/proc") / str(pid) / "status").read_text(), "VmHWM") or 0.0
    return 0.0


def _resident_mib(pid: int) -> float:
    """Return a process's resident size now (0 once it is gone)."""
    with contextlib.suppress(OSError):
        return _field_mib((Path("/proc") / str(pid) / "status").read_text(), "VmRSS") or 0.0
    return 0.0


def _reset_high_water_mark() -> bool:
    """Reset this process's ``VmHWM`` to its current size; return whether that worked."""
    try:
        (_PROC_SELF / "clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _status_mib(name: str) -> float | None:
    try:
        return _field_mib((_PROC_SELF / "status").read_text(), name)
    except OSError:
        return None


def _field_mib(status: str, name: str) -> float | None:
    found = re.search(rf"^{name}:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) / 1024 if found else None


def _maxrss_mib() -> float:
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value / _MIB if sys.platform == "darwin" else value / 1024


def release_unused() -> None:
    """Give back to the system what a finished stage freed: Arrow's memory pool and glibc's
    heap keep freed pages for reuse, so the next stage of the process would start with
    them resident (its ``rss_before_mib``)."""
    pa.default_memory_pool().release_unused()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).malloc_trim(0)  # glibc; another C library has no such call
