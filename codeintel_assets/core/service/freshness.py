"""Freshness: which indexed files of a repository's work tree differ from the index.

Compared file by file against the published version's ``repo_manifest``: a file whose
size differs, or that is gone, or that leaves the repository through a symlink, is
stale; a file of the same size is hashed (xxh64, as the manifest) unless its size and
mtime are those of its last hash (the cheap fingerprint). Files added to the work
tree since the build are not counted: finding them needs the whole selection walk of
a build. Results are reused for ``TTL_S`` so that answering stays cheap.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from codeintel_assets.core.checksums import xxh64_file

TTL_S = 2.0
SAMPLE = 5  # paths named in a freshness report


@dataclass(frozen=True)
class Freshness:
    """How the work tree compares with one indexed manifest."""

    stale_files: int
    checked_files: int
    sample: tuple[str, ...]  # the first stale paths
    checked_at: float
    error: str | None = None  # why the work tree could not be compared

    def to_dict(self) -> dict[str, object]:
        return {
            "stale_files": self.stale_files,
            "checked_files": self.checked_files,
            "stale_sample": list(self.sample),
            "checked_at": self.checked_at,
            "error": self.error,
        }


@dataclass
class FreshnessTracker:
    """Compares one work tree with one manifest; thread-safe, results cached ``TTL_S``."""

    root: Path
    manifest: dict[str, tuple[int, str]]  # uri -> (size, xxh64) as indexed
    _hashes: dict[str, tuple[int, int, str]] = field(
        default_factory=dict
    )  # uri -> size, mtime, xxh64
    _last: Freshness | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self) -> Freshness:
        """Return the freshness, recomputed when the last result is older than ``TTL_S``."""
        with self._lock:
            now = time.time()
            if self._last is None or now - self._last.checked_at > TTL_S:
                self._last = self._compare(now)
            return self._last

    def file_differs(self, uri: str) -> bool:
        """Return whether the work tree's copy of indexed file ``uri`` differs (or is gone)."""
        indexed = self.manifest.get(uri)
        if indexed is None or not self.root.is_dir():
            return True
        with self._lock:
            return self._differs(self.root.resolve(), uri, indexed)

    def _compare(self, now: float) -> Freshness:
        if not self.root.is_dir():
            return Freshness(len(self.manifest), 0, (), now, f"work tree {self.root} is missing")
        root = self.root.resolve()
        stale = [
            uri
            for uri, indexed in sorted(self.manifest.items())
            if self._differs(root, uri, indexed)
        ]
        return Freshness(len(stale), len(self.manifest), tuple(stale[:SAMPLE]), now)

    def _differs(self, root: Path, uri: str, indexed: tuple[int, str]) -> bool:
        path = root / uri
        try:
            target = path.resolve()
            if not target.is_relative_to(root):
                return True
            stat = os.stat(target)
        except OSError:
            return True
        size, digest = indexed
        if stat.st_size != size:
            return True
        known = self._hashes.get(uri)
        if known is None or known[:2] != (stat.st_size, stat.st_mtime_ns):
            try:
                known = (stat.st_size, stat.st_mtime_ns, xxh64_file(target))
            except OSError:
                return True
            self._hashes[uri] = known
        return known[2] != digest
