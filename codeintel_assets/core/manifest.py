"""The repository manifest: which files of a work tree are indexed, and why others are not.

Files come from git (tracked plus untracked-but-not-ignored) when the folder is a
git work tree, otherwise from a walk that honours ``.gitignore`` files. Include /
exclude globs are the one path filter of ``core/pathfilter.py`` (gitignore rules and
braces, the same as search filters). Binary, non-UTF-8, empty,
oversized, vendored files and symlinks are skipped and each skip is counted, and so
is anything the build cannot read: a file name that is not UTF-8, a broken or looping
symlink, an unreadable file or folder. No single file stops the scan.
"""

from __future__ import annotations

import os
import re
import stat
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pathspec
import pyarrow as pa

from codeintel_assets.core.checksums import xxh64_bytes, xxh64_parts
from codeintel_assets.core.errors import BadInputError, RepositoryPathError
from codeintel_assets.core.git import run_git
from codeintel_assets.core.pathfilter import PathFilter
from codeintel_assets.core.schemas import MANIFEST_SKIPS, REPO_MANIFEST

# Folders never indexed: tool state, virtualenvs and vendored dependencies.
VENDORED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        ".venv",
        "venv",
        "site-packages",
        "vendor",
        "third_party",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
        ".hypothesis",
    }
)
VENDORED_SUFFIXES = (".min.js", ".min.css", ".map", ".lock")

LANGUAGES = {
    ".py": "python",
    ".pyi": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "tsx",
    ".md": "markdown",
    ".rst": "rst",
    ".txt": "text",
    ".toml": "toml",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".json": "json",
    ".cfg": "ini",
    ".ini": "ini",
    ".sh": "shell",
    ".bash": "shell",
    ".sql": "sql",
    ".html": "html",
    ".css": "css",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".c": "c",
    ".h": "c",
    ".cpp": "cpp",
    ".hpp": "cpp",
    ".rb": "ruby",
    ".php": "php",
    ".kt": "kotlin",
    ".swift": "swift",
    ".scala": "scala",
}
NAMED_FILES = {"Makefile": "make", "Dockerfile": "docker", "Jenkinsfile": "groovy"}

_SNIFF_BYTES = 8192
# git's warning (C locale) for a folder it cannot open while listing untracked files.
_GIT_UNREADABLE = re.compile(r"could not open directory '([^']*)'")


@dataclass(frozen=True)
class ManifestResult:
    """The selected files, the skipped ones, and the fingerprint of the selection."""

    files: pa.Table
    skips: pa.Table
    git_commit: str | None
    checksum: str
    skip_counts: dict[str, int] = field(default_factory=dict)


def language_of(uri: str) -> str:
    """Return the language name for a repository-relative path (``text`` when unknown)."""
    path = PurePosixPath(uri)
    return NAMED_FILES.get(path.name) or LANGUAGES.get(path.suffix.lower(), "text")


def known_languages() -> list[str]:
    """Return every language name the manifest can give a file, sorted."""
    return sorted({*LANGUAGES.values(), *NAMED_FILES.values(), "text"})


def check_languages(names: Iterable[str]) -> None:
    """Raise ``BadInputError`` for a language name no file can have (case-insensitive).

    The message suggests the language of a file extension given instead (``py``) and
    lists the known names, so a typo never silently filters everything out.
    """
    known = known_languages()
    for name in names:
        if name.lower() in known:
            continue
        meant = LANGUAGES.get("." + name.lower().lstrip("."))
        hint = f" (did you mean {meant!r}?)" if meant else ""
        raise BadInputError(f"unknown language {name!r}{hint}; known languages: {', '.join(known)}")


def build_manifest(
    root: Path,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    max_file_bytes: int = 1 << 20,
) -> ManifestResult:
    """Select the indexable files of the repository at ``root``.

    Returns the manifest (schema ``REPO_MANIFEST``, sorted by uri) and the skips
    (``MANIFEST_SKIPS``). Raises ``RepositoryPathError`` when ``root`` is not a directory
    and ``BadInputError`` on a bad glob.
    """
    if not root.is_dir():
        raise RepositoryPathError(f"repository path {root} does not exist or is not a directory")
    root = root.resolve()
    path_filter = PathFilter.from_globs(include or [], exclude or [])
    unreadable_dirs: list[str] = []
    blobs = _git_blobs(root, unreadable_dirs)
    candidates = sorted(blobs) if blobs is not None else sorted(_walk(root, unreadable_dirs))

    rows: list[dict] = []
    skips: list[dict] = [
        {"uri": folder, "reason": "unreadable", "detail": "folder cannot be listed"}
        for folder in sorted(set(unreadable_dirs))
    ]
    for uri in candidates:
        if not path_filter.matches(uri):
            continue
        reason, detail, data = _inspect(root, uri, max_file_bytes)
        if reason is not None:
            skips.append({"uri": _printable(uri), "reason": reason, "detail": detail})
            continue
        rows.append(
            {
                "uri": uri,
                "lang": language_of(uri),
                "size_bytes": len(data),
                "xxh64": xxh64_bytes(data),
                "git_blob": (blobs or {}).get(uri),
                "line_count": data.count(b"\n") + (0 if data.endswith(b"\n") else 1),
            }
        )
    files = pa.Table.from_pylist(rows, schema=REPO_MANIFEST)
    return ManifestResult(
        files=files,
        skips=pa.Table.from_pylist(skips, schema=MANIFEST_SKIPS),
        git_commit=_git_head(root),
        checksum=manifest_checksum(files),
        skip_counts=dict(Counter(s["reason"] for s in skips)),
    )


def manifest_checksum(files: pa.Table) -> str:
    """Return the checksum of a manifest: xxh64 over its (uri, xxh64) pairs."""
    uris = files.column("uri").to_pylist()
    hashes = files.column("xxh64").to_pylist()
    return xxh64_parts(f"{u}\0{h}" for u, h in zip(uris, hashes, strict=True))


def read_source(root: Path, uri: str) -> bytes:
    """Return the bytes of a manifest file."""
    return (root / uri).read_bytes()


def _printable(uri: str) -> str:
    """Return ``uri`` with bytes that are not UTF-8 (surrogate escapes) shown as ``\\xNN``."""
    return uri.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _inspect(root: Path, uri: str, max_file_bytes: int) -> tuple[str | None, str, bytes]:
    """Return (skip reason or None, detail, file bytes)."""
    if _printable(uri) != uri:
        # Every table, catalog and search result carries the uri as UTF-8 text.
        return "bad_name", "file name is not valid UTF-8", b""
    parts = PurePosixPath(uri).parts
    if any(part in VENDORED_DIRS for part in parts[:-1]) or uri.endswith(VENDORED_SUFFIXES):
        return "vendored", "vendored or generated path", b""
    path = root / uri
    try:
        status = path.lstat()
    except FileNotFoundError:
        return "not_a_file", "missing from the work tree", b""
    except OSError as exc:
        return "unreadable", f"cannot stat: {exc.strerror}", b""
    if stat.S_ISLNK(status.st_mode):
        return _symlink_skip(root, path)
    if not stat.S_ISREG(status.st_mode):
        return "not_a_file", "not a regular file", b""
    size = status.st_size
    if size > max_file_bytes:
        return "oversized", f"{size} bytes > limit {max_file_bytes}", b""
    if size == 0:
        return "empty", "0 bytes", b""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return "unreadable", f"cannot read: {exc.strerror}", b""
    if b"\0" in data[:_SNIFF_BYTES]:
        return "binary", "contains NUL bytes", b""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return "not_utf8", f"invalid UTF-8 at byte {exc.start}", b""
    return None, "", data


def _symlink_skip(root: Path, path: Path) -> tuple[str, str, bytes]:
    """Return the skip of a symlink: broken, leaving the repository, or indexed at its target."""
    try:
        target = path.resolve(strict=True)
    except FileNotFoundError:
        return "broken_symlink", f"points to {os.readlink(path)}, which does not exist", b""
    except (OSError, RuntimeError):
        # RuntimeError is how Python 3.11 reports a symlink loop.
        return "broken_symlink", "symlink loop", b""
    if not target.is_relative_to(root):
        return "symlink_outside", f"points to {target}, outside the repository", b""
    return "symlink", f"points to {target.relative_to(root)}, indexed there", b""


def _git(root: Path, *args: str) -> str | None:
    out = run_git(root, *args)
    return out.stdout.decode("utf-8", "surrogateescape") if out is not None else None


def _git_blobs(root: Path, unreadable_dirs: list[str]) -> dict[str, str | None] | None:
    """Return {uri: blob sha or None} for tracked + untracked non-ignored files, or None.

    Folders git could not list are appended to ``unreadable_dirs``.
    """
    if _git(root, "rev-parse", "--is-inside-work-tree") is None:
        return None
    toplevel = (_git(root, "rev-parse", "--show-toplevel") or "").strip()
    if not toplevel or Path(toplevel).resolve() != root:
        # A subfolder of a bigger work tree: walk it instead of mixing path bases.
        return None
    staged = _git(root, "ls-files", "-z", "--stage") or ""
    blobs: dict[str, str | None] = {}
    for entry in staged.split("\0"):
        if not entry:
            continue
        meta, uri = entry.split("\t", 1)
        blobs[uri] = meta.split()[1]
    others, warnings = _git_with_warnings(root, "ls-files", "-z", "--others", "--exclude-standard")
    for uri in others.split("\0"):
        if uri:
            blobs.setdefault(uri, None)
    unreadable_dirs += [m.group(1).rstrip("/") + "/" for m in _GIT_UNREADABLE.finditer(warnings)]
    return blobs


def _git_with_warnings(root: Path, *args: str) -> tuple[str, str]:
    """Return (stdout, stderr) of a git command ('' on failure)."""
    out = run_git(root, *args)
    if out is None:
        return "", ""
    return out.stdout.decode("utf-8", "surrogateescape"), out.stderr.decode("utf-8", "replace")


def _git_head(root: Path) -> str | None:
    head = _git(root, "rev-parse", "HEAD")
    return head.strip() if head else None


def _walk(root: Path, unreadable_dirs: list[str]) -> Iterator[str]:
    """Yield repository-relative paths, honouring every ``.gitignore`` on the way down.

    Folders that cannot be listed are appended to ``unreadable_dirs``.
    """
    specs: list[tuple[str, pathspec.GitIgnoreSpec]] = []

    def unlisted(error: OSError) -> None:
        folder = Path(error.filename).relative_to(root).as_posix()
        unreadable_dirs.append(_printable(folder) + "/")

    for dirpath, dirnames, filenames in os.walk(root, onerror=unlisted):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        ignore_file = Path(dirpath) / ".gitignore"
        if ignore_file.is_file():
            try:
                lines = ignore_file.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                lines = []  # an unreadable .gitignore is counted as a skipped file below
            specs.append((rel_dir, pathspec.GitIgnoreSpec.from_lines(lines)))

        def ignored(rel: str, is_dir: bool) -> bool:
            probe = rel + "/" if is_dir else rel
            return any(
                probe.startswith(base) and spec.match_file(probe[len(base) :])
                for base, spec in specs
            )

        dirnames[:] = sorted(
            d for d in dirnames if d != ".git" and not ignored(rel_dir + d, is_dir=True)
        )
        for name in filenames:
            rel = rel_dir + name
            if not ignored(rel, is_dir=False):
                yield rel
