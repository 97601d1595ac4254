"""``checksums.file_digests_once``: a publish hashes each file once, and never serves the
digest of bytes that changed since."""

from __future__ import annotations

import os
from pathlib import Path

import xxhash

from codeintel_assets.core import checksums
from codeintel_assets.core.checksums import atomic_path, file_digests_once, xxh64_file


def test_a_file_is_read_once_in_the_block_and_a_change_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"first bytes")
    with file_digests_once():
        assert xxh64_file(path) == xxhash.xxh64_hexdigest(b"first bytes")
        link = tmp_path / "link.bin"
        os.link(path, link)  # a published hard link: the same inode, one digest
        assert xxh64_file(link) == xxh64_file(path)
        assert len(checksums._FILE_DIGESTS.get()) == 1
        # Same size, written in place at a later modification time: read again.
        with open(path, "r+b") as handle:
            handle.write(b"FIRST")
        later = path.stat().st_mtime_ns + 1_000_000_000
        os.utime(path, ns=(later, later))
        assert xxh64_file(path) == xxhash.xxh64_hexdigest(b"FIRST bytes")
        # Replaced atomically (a new inode).
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"other bytes")
        assert xxh64_file(path) == xxhash.xxh64_hexdigest(b"other bytes")
    assert checksums._FILE_DIGESTS.get() is None
    path.write_bytes(b"outside")
    assert xxh64_file(path) == xxhash.xxh64_hexdigest(b"outside")
