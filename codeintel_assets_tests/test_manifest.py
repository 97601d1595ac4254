"""The manifest selects text files and counts every skip with its reason."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from codeintel_assets.core.errors import RepositoryPathError
from codeintel_assets.core.manifest import build_manifest, language_of
from codeintel_assets_tests.support import write_fixture_repo


def _bad_input_repo(root: Path, outside: Path, git: bool) -> Path:
    repo = write_fixture_repo(root, git=False)
    (repo / "blob.bin").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0binary")
    (repo / "latin1.py").write_bytes("name = 'caf\xe9'\n".encode("latin-1"))
    (repo / "empty.py").write_bytes(b"")
    (repo / "huge.txt").write_text("x" * 5000 + "\n")
    outside.write_text("secret = 1\n")
    os.symlink(outside, repo / "escape.py")
    os.symlink(repo / "pkg" / "parse.py", repo / "alias.py")
    (repo / "node_modules" / "dep").mkdir(parents=True)
    (repo / "node_modules" / "dep" / "index.js").write_text("module.exports = 1;\n")
    (repo / ".gitignore").write_text("ignored/\n*.log\n")
    (repo / "ignored").mkdir()
    (repo / "ignored" / "skip.py").write_text("x = 1\n")
    (repo / "debug.log").write_text("log line\n")
    if git:
        write_fixture_repo(repo, files={}, git=True)
    return repo


@pytest.mark.parametrize("git", [True, False], ids=["git", "plain-folder"])
def test_skip_rules_are_applied_and_counted(tmp_path: Path, git: bool):
    repo = _bad_input_repo(tmp_path / "repo", tmp_path / "outside.py", git)
    result = build_manifest(repo, max_file_bytes=4096)
    uris = set(result.files.column("uri").to_pylist())
    assert {"pkg/vectors.py", "pkg/parse.py", "web/app.js", "web/types.ts", "README.md"} <= uris
    skipped = {row["uri"]: row["reason"] for row in result.skips.to_pylist()}
    assert skipped["blob.bin"] == "binary"
    assert skipped["latin1.py"] == "not_utf8"
    assert skipped["empty.py"] == "empty"
    assert skipped["huge.txt"] == "oversized"
    assert skipped["escape.py"] == "symlink_outside"
    assert skipped["alias.py"] == "symlink"
    assert "ignored/skip.py" not in uris | set(skipped)
    assert "debug.log" not in uris | set(skipped)
    if not git:
        assert skipped["node_modules/dep/index.js"] == "vendored"
    assert result.skip_counts["binary"] == 1
    assert sum(result.skip_counts.values()) == result.skips.num_rows
    assert "not_utf8" in result.skip_counts


def test_git_blobs_commit_and_languages(fixture_repo: Path):
    result = build_manifest(fixture_repo)
    rows = {r["uri"]: r for r in result.files.to_pylist()}
    assert rows["pkg/vectors.py"]["lang"] == "python"
    assert rows["web/types.ts"]["lang"] == "typescript"
    assert rows["README.md"]["lang"] == "markdown"
    assert all(len(r["git_blob"]) == 40 for r in rows.values())
    assert result.git_commit is not None and len(result.git_commit) == 40
    assert rows["README.md"]["line_count"] == 7


def test_checksum_changes_only_with_content(fixture_repo: Path):
    first = build_manifest(fixture_repo).checksum
    assert build_manifest(fixture_repo).checksum == first
    (fixture_repo / "pkg" / "parse.py").write_text("x = 2\n")
    assert build_manifest(fixture_repo).checksum != first


def test_include_and_exclude_globs(fixture_repo: Path):
    result = build_manifest(fixture_repo, include=["*.py"], exclude=["pkg/parse.py"])
    assert set(result.files.column("uri").to_pylist()) == {"pkg/__init__.py", "pkg/vectors.py"}


def test_missing_repository_is_a_clear_error(tmp_path: Path):
    with pytest.raises(RepositoryPathError, match="does not exist"):
        build_manifest(tmp_path / "nope")


def test_language_of():
    assert language_of("a/b.tsx") == "tsx"
    assert language_of("Makefile") == "make"
    assert language_of("notes.unknownext") == "text"
