"""A table's vector column kept beside it as a raw float32 matrix (``.npy``).

Decoding a Parquet column of fixed-size lists into a matrix costs ~0.4-1.3 s for the
standard library's 157k chunks of 384 floats (241 MB); the same matrix loads from
``.npy`` in ~0.05 s. The matrix is a private copy for the build's later stages: the
table keeps its column (the catalog, the published index and every reader that has only
the table use it), and the copy is used only when its sidecar (``<name>.json``) names the
xxh64 of the table's file and of the matrix's bytes, and both match. Any other case (no
copy, a table written since, a damaged copy) reads the column instead: the copy can be
lost at any time without losing anything.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xxhash

from codeintel_assets.core import build_warnings
from codeintel_assets.core.checksums import atomic_path, xxh64_file


def matrix_digest(matrix: np.ndarray) -> str:
    """Return the xxh64 of a float32 matrix's shape and C-order bytes."""
    digest = xxhash.xxh64()
    digest.update(np.asarray(matrix.shape, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(matrix, dtype=np.float32).data)
    return digest.hexdigest()


def sidecar(path: Path) -> Path:
    """Return where the record binding the matrix at ``path`` to its table lies."""
    return path.with_suffix(".json")


def write_matrix(matrix: np.ndarray, path: Path, table_xxh64: str) -> None:
    """Write ``matrix`` to ``path`` and its sidecar, bound to the table file whose xxh64 is
    ``table_xxh64`` (each file atomically; the sidecar last, so a matrix is never named by
    a record it does not match)."""
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    sidecar(path).unlink(missing_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, matrix, allow_pickle=False)
    record = {
        "table_xxh64": table_xxh64,
        "matrix_xxh64": matrix_digest(matrix),
        "rows": int(matrix.shape[0]),
        "dim": int(matrix.shape[1]) if matrix.ndim == 2 else 0,
    }
    with atomic_path(sidecar(path)) as tmp:
        tmp.write_text(json.dumps(record, sort_keys=True), encoding="utf-8")


def read_matrix(path: Path, table: Path) -> np.ndarray | None:
    """Return the matrix at ``path`` when its sidecar binds it to the file ``table`` as it
    is now and its bytes are the ones recorded; None otherwise (read the table's column).

    No sidecar (no copy kept) is silent; a sidecar naming another table file, or a matrix
    that cannot be read or does not match its record, is a ``BuildWarning`` naming the
    file and the reason (counted in the stage's metadata)."""
    try:
        record = json.loads(sidecar(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        return _not_used(path, f"its record {sidecar(path).name} is unreadable: {err}")
    if not isinstance(record, dict) or record.get("table_xxh64") != xxh64_file(table):
        return _not_used(path, f"it was written for another version of {table.name}")
    try:
        matrix = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        return _not_used(path, f"unreadable: {err}")
    if (
        matrix.dtype != np.float32
        or matrix.ndim != 2
        or matrix.shape != (record.get("rows"), record.get("dim"))
        or matrix_digest(matrix) != record.get("matrix_xxh64")
    ):
        return _not_used(path, "its bytes do not match its record (damaged)")
    return matrix


def _not_used(path: Path, reason: str) -> None:
    build_warnings.warn(f"{path}: vector matrix not used, {reason}; the table's column is read")
    return None
