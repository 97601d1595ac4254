"""A cheap fingerprint of a repository's work tree, for the repository sensor.

It must be cheap (the sensor runs every minute over every repository), so it reads
no file contents. It only has to change whenever the indexed content may have
changed; a change that turns out not to matter (a touched file, an ignored folder)
costs one run whose ``repo_manifest`` content checksum finds nothing new, so no
other stage does any work.

* A git work tree: ``HEAD``, ``git status --porcelain`` of the folder, and the size
  and mtime of every dirty file (a file edited twice stays ``M`` in the status, its
  mtime moves).
* Any other folder: path, size and mtime of every file the selection may index.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from codeintel_assets.core.checksums import xxh64_json, xxh64_parts
from codeintel_assets.core.errors import RepositoryPathError
from codeintel_assets.core.git import run_git
from codeintel_assets.core.manifest import VENDORED_DIRS
from codeintel_assets.core.pathfilter import PathFilter
from codeintel_assets.core.registry import RepoConfig

_GIT_TIMEOUT_S = 60


def repo_fingerprint(repo: RepoConfig) -> str:
    """Return the cheap fingerprint of ``repo``'s work tree and selection settings.

    Raises ``RepositoryPathError`` when the repository folder does not exist.
    """
    root = repo.root
    if not root.is_dir():
        raise RepositoryPathError(
            f"repository path {root} of {repo.name!r} does not exist or is not a directory"
        )
    selection = xxh64_json(
        {"include": repo.include, "exclude": repo.exclude, "max": repo.max_file_bytes}
    )
    tree = git_fingerprint(root)
    if tree is None:
        tree = folder_fingerprint(root, repo.include, repo.exclude)
    return xxh64_parts([selection, tree])


def folder_fingerprint(
    root: Path, include: list[str] | None = None, exclude: list[str] | None = None
) -> str:
    """Return the xxh64 over (path, size, mtime) of every file under ``root`` the include /
    exclude globs select (``core/pathfilter.py``), vendored folders left out.

    Raises ``BadInputError`` on a bad glob.
    """
    parts = []
    for rel, stat in _selected_files(root, include or [], exclude or []):
        parts.append(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}")
    return xxh64_parts(parts)


def _git(root: Path, *args: str) -> bytes | None:
    out = run_git(root, *args, timeout_s=_GIT_TIMEOUT_S)
    return out.stdout if out is not None else None


def git_fingerprint(root: Path) -> str | None:
    """Return the xxh64 of HEAD, the status of ``root`` and the size and mtime of its dirty
    files; None when ``root`` is not inside a git work tree."""
    toplevel = _git(root, "rev-parse", "--show-toplevel")
    if toplevel is None:
        return None
    top = Path(toplevel.decode("utf-8", "surrogateescape").strip())
    # No HEAD yet in a fresh repository: the status alone describes the tree.
    head = (_git(root, "rev-parse", "--verify", "-q", "HEAD") or b"").strip()
    status = _git(
        root, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames", "--", "."
    )
    if status is None:
        return None
    parts = [head.decode("ascii", "replace"), status.decode("utf-8", "surrogateescape")]
    for rel in _dirty_paths(status):
        # Porcelain paths are relative to the top of the work tree.
        parts.append(_stat_part(top / rel))
    return xxh64_parts(parts)


def _dirty_paths(status: bytes) -> list[str]:
    """Return the paths of a ``git status --porcelain -z --no-renames`` listing."""
    return [
        entry[3:].decode("utf-8", "surrogateescape")
        for entry in status.split(b"\0")
        if len(entry) > 3
    ]


def _stat_part(path: Path) -> str:
    try:
        stat = path.lstat()
    except OSError:
        return f"{path}\0missing"
    return f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}"


def _selected_files(
    root: Path, include: list[str], exclude: list[str]
) -> Iterator[tuple[str, os.stat_result]]:
    path_filter = PathFilter.from_globs(include, exclude)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in VENDORED_DIRS)
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        for name in sorted(filenames):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if not path_filter.matches(rel):
                continue
            try:
                yield rel, os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
