"""A built repository shared by the lifecycle and crash tests: built once through Dagster,
copied per test (cheap), with helpers to make further versions and to check `current`."""

from __future__ import annotations

import shutil
from pathlib import Path

from codeintel_assets.core import lifecycle, registry
from codeintel_assets.core.checksums import write_text_atomic
from codeintel_assets.core.context import BuildContext
from codeintel_assets.core.embedding import EmbedderSpec
from codeintel_assets.core.layout import RepoLayout
from codeintel_assets.core.search import CodeIndex
from codeintel_assets_tests.support import materialize_partition

NAME = "life"
QUERY = "build faiss index vectors ids"


def build_template(tmp: Path, repo: Path) -> Path:
    """Register ``repo`` under a fresh data root, build and publish it; return the root."""
    root = tmp / "data"
    root.mkdir(parents=True)
    registry.add_repo(registry.RepoConfig(name=NAME, path=str(repo)), root)
    assert materialize_partition(NAME, root).success
    return root


def copy_root(template: Path, target: Path) -> Path:
    """Copy a data root (symlinks kept as links, so `current` stays relative)."""
    shutil.copytree(template, target, symlinks=True)
    return target


def context(root: Path, retention: int = lifecycle.DEFAULT_RETENTION) -> BuildContext:
    ctx = BuildContext.for_repo(NAME, root, EmbedderSpec(kind="hashing"))
    return BuildContext(repo=ctx.repo, embedder=ctx.embedder, root=root, retention=retention)


def new_build(root: Path, tag: str) -> None:
    """Change one artifact of the working build, so the next publish is a new version.

    Written by rename like every artifact, so versions that hard-link the old file keep it.
    """
    write_text_atomic(RepoLayout(root, NAME).build.eval_report, f"# report {tag}\n")


def assert_current_is_complete(root: Path) -> str:
    """Check `current` is a complete, intact version that answers a search; return it."""
    layout = RepoLayout(root, NAME)
    version = lifecycle.current_version_or_none(layout)
    assert version is not None
    assert lifecycle.verify_version(lifecycle.current_layout(layout)) == []
    with CodeIndex.open(NAME, root=root) as index:
        hits = index.search(QUERY, k=3)
    assert hits and hits[0].uri == "pkg/vectors.py"
    return version
