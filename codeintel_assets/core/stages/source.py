"""Source stage: which files of the work tree are indexed."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace

from codeintel_assets.core.errors import NothingIndexableError
from codeintel_assets.core.manifest import build_manifest
from codeintel_assets.core.registry import RepoConfig
from codeintel_assets.core.schemas import MANIFEST_SKIPS, REPO_MANIFEST, write_parquet
from codeintel_assets.core.stages.context import BuildContext
from codeintel_assets.core.stamps import StageOutput, StageResult, fingerprint, run_stage


def stage_repo_manifest(ctx: BuildContext) -> StageResult:
    """Select the repository's files; the data version is the manifest checksum.

    Raises ``NothingIndexableError`` when no file is left to index (the build stops
    here, with that reason, instead of failing later on empty tables).
    """
    layout = ctx.layout
    repo = ctx.repo
    started = time.perf_counter()
    result = build_manifest(repo.root, repo.include, repo.exclude, repo.max_file_bytes)
    scan_seconds = time.perf_counter() - started
    if result.files.num_rows == 0:
        raise NothingIndexableError(_nothing_indexable(repo, result.skip_counts))
    # The work tree is the input: fingerprint the selection itself so unchanged trees skip.
    config = {
        "include": repo.include,
        "exclude": repo.exclude,
        "max": repo.max_file_bytes,
        "manifest": result.checksum,
        "skips": result.skips.to_pylist(),
        "commit": result.git_commit,
    }
    outputs = [layout.build.repo_manifest, layout.build.manifest_skips]

    def build() -> StageOutput:
        write_parquet(result.files, outputs[0], REPO_MANIFEST)
        write_parquet(result.skips, outputs[1], MANIFEST_SKIPS)
        return StageOutput(
            result.checksum,
            {
                "files": result.files.num_rows,
                "bytes": sum(result.files.column("size_bytes").to_pylist()),
                "skipped": result.skips.num_rows,
                "skip_counts": result.skip_counts,
                "skipped_examples": result.skips.slice(0, 20).to_pylist(),
                "languages": dict(Counter(result.files.column("lang").to_pylist())),
                "git_commit": result.git_commit,
                "path": str(outputs[0]),
            },
        )

    stage = run_stage(
        layout, "repo_manifest", fingerprint("repo_manifest", {}, config), outputs, build
    )
    # Scanning the tree is this stage's real work, done before the gate can decide.
    return replace(stage, seconds=stage.seconds + scan_seconds)


def _nothing_indexable(repo: RepoConfig, skip_counts: dict[str, int]) -> str:
    """Return the message for a selection without files: where, and what was skipped."""
    skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(skip_counts.items()))
    globs = ""
    if repo.include or repo.exclude:
        globs = f" (include {repo.include or 'all'}, exclude {repo.exclude or 'none'})"
    return f"no indexable files in {repo.root}{globs}: " + (
        f"skipped {skipped}" if skipped else "no files selected"
    )
