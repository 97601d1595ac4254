"""Content checksums (xxh64) and atomic file writes: the one place for both.

Checksums, not timestamps, decide what is recomputed, so every artifact's data
version is made here from its bytes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import xxhash

if TYPE_CHECKING:
    import pyarrow as pa

_READ_BLOCK = 1 << 20


def xxh64_bytes(data: bytes) -> str:
    """Return the xxh64 hex digest of ``data``."""
    return xxhash.xxh64_hexdigest(data)


def xxh64_text(text: str) -> str:
    """Return the xxh64 hex digest of ``text`` encoded as UTF-8."""
    return xxhash.xxh64_hexdigest(text.encode("utf-8"))


def xxh64_file(path: Path) -> str:
    """Return the xxh64 hex digest of a file's bytes (inside ``file_digests_once``, a file
    already hashed there and not changed since is not read again)."""
    memo = _FILE_DIGESTS.get()
    if memo is None:
        return _hash_file(path)
    with open(path, "rb") as handle:
        st = os.fstat(handle.fileno())
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if key not in memo:
            memo[key] = _hash_open(handle)
    return memo[key]


def _hash_file(path: Path) -> str:
    with open(path, "rb") as handle:
        return _hash_open(handle)


def _hash_open(handle: Any) -> str:
    digest = xxhash.xxh64()
    while block := handle.read(_READ_BLOCK):
        digest.update(block)
    return digest.hexdigest()


# Digests by (device, inode, size, mtime) while ``file_digests_once`` is active.
_FILE_DIGESTS: ContextVar[dict[tuple[int, ...], str] | None] = ContextVar(
    "file_digests", default=None
)


@contextlib.contextmanager
def file_digests_once() -> Iterator[None]:
    """Within this block ``xxh64_file`` reads each file once: a file with the device,
    inode, size and modification time of one already hashed in the block has its digest.
    A publish hashes its artifacts for the build version, the version's manifest, the
    catalog's source checksums and the checks' proofs, 3-5 times each (published files
    are hard links of the build's: the same inodes; the change time is not in the key,
    since making a link changes it). Files are written atomically (a new inode) or, by
    DuckDB, in place before they are hashed; a file rewritten in place to the same size
    within one tick of the file system's clock would not be read again, so the block
    is only for code that writes nothing it has hashed."""
    token = _FILE_DIGESTS.set({})
    try:
        yield
    finally:
        _FILE_DIGESTS.reset(token)


def xxh64_parts(parts: Iterable[str]) -> str:
    """Return the xxh64 of several strings, each length-prefixed so no two lists collide."""
    digest = xxhash.xxh64()
    for part in parts:
        encoded = part.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "little"))
        digest.update(encoded)
    return digest.hexdigest()


def xxh64_json(value: Any) -> str:
    """Return the xxh64 of a JSON value in canonical form (sorted keys)."""
    return xxh64_text(json.dumps(value, sort_keys=True, separators=(",", ":"), default=str))


def signed_xxh64(*parts: str | int) -> int:
    """Return a signed 64-bit xxh64 of the parts (a stable BIGINT id, never -1)."""
    value = xxhash.xxh64_intdigest("\x1f".join(str(p) for p in parts).encode("utf-8"))
    if value >= 1 << 63:
        value -= 1 << 64
    # -1 is FAISS's "no result" marker, so it can never be an id.
    return -2 if value == -1 else value


def table_checksum(*tables: pa.Table) -> str:
    """Return the xxh64 of Arrow tables' content (their IPC stream bytes, schema included)."""
    return digests_checksum(*(table_digest(table) for table in tables))


def table_digest(table: pa.Table) -> str:
    """Return the ``TableDigest`` of ``table`` held whole (one batch)."""
    digest = TableDigest(table.schema)
    digest.update(table.combine_chunks())
    return digest.hexdigest()


def digests_checksum(*digests: str) -> str:
    """Return the checksum of tables from their ``TableDigest``s (``table_checksum``'s)."""
    return xxh64_parts(digests)


class TableDigest:
    """The xxh64 of a table's IPC stream, fed batch by batch without holding the stream.

    A table given as one batch digests as ``table_checksum`` digests it; given as several
    batches (``schemas.ParquetStream``'s row groups) it digests the stream of those
    batches, so a table's digest depends on its rows and on where its batches end.
    """

    def __init__(self, schema: pa.Schema) -> None:
        # Imported here: processes that only read `current` (the CLI client) skip pyarrow.
        import pyarrow as pa

        self._digest = xxhash.xxh64()
        self._writer = pa.ipc.new_stream(pa.PythonFile(_DigestSink(self._digest), "w"), schema)

    def update(self, rows: pa.Table | pa.RecordBatch) -> None:
        """Add ``rows`` (a table is added one record batch per chunk) to the stream."""
        self._writer.write(rows)

    def hexdigest(self) -> str:
        """End the stream and return its xxh64 hex digest (no ``update`` may follow)."""
        self._writer.close()
        return self._digest.hexdigest()


class _DigestSink:
    """A write-only file object that hashes what is written to it."""

    closed = False

    def __init__(self, digest: xxhash.xxh64) -> None:
        self._digest = digest

    def write(self, data: bytes) -> int:
        self._digest.update(data)
        return len(data)

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def make_readable(path: Path) -> None:
    """Give a temporary file or folder the permissions of an ordinary one (umask applied).

    ``mkstemp``/``mkdtemp`` create them private (0600/0700); artifacts are meant to be
    read by every reader of the data root.
    """
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~_UMASK)


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` on success.

    A reader sees either the old file or the complete new one, never a half-written one.
    On error the temporary file is removed and ``target`` is untouched.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _fsync_file(tmp)
        make_readable(tmp)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_folder(target: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; put it in place of ``target`` on success.

    A folder cannot be replaced by one rename, so the old one is moved aside first and
    removed after; on error the temporary folder is removed and ``target`` is untouched.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    make_readable(tmp)
    try:
        yield tmp
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old.{os.getpid()}")
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_bytes_atomic(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(target: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    write_bytes_atomic(target, text.encode("utf-8"))


def write_json_atomic(target: Path, value: Any, *, compact: bool = False) -> None:
    """Write ``value`` as indented JSON to ``target`` atomically; ``compact``: without
    indentation or spaces and with UTF-8 for non-ASCII text, for large exports (``orjson``:
    the standard library's 288k-edge symbol graph in ~0.2 s, where ``json`` takes ~1.3 s)."""
    if compact:
        data = orjson.dumps(value, default=str, option=orjson.OPT_SORT_KEYS)
        write_bytes_atomic(target, data + b"\n")
    else:
        write_text_atomic(target, json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (made if missing), waiting for it; the kernel
    releases it if the process dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
