"""Publish stage: a validated, versioned copy of the build behind ``current``."""

from __future__ import annotations

from codeintel_assets.core import lifecycle
from codeintel_assets.core.checksums import file_digests_once
from codeintel_assets.core.context import BuildContext
from codeintel_assets.core.stamps import Stage, StageOutput, StageResult, run_stage


def stage_published_index(ctx: BuildContext, stage: Stage) -> StageResult:
    """`versions/<build_version>/` with its manifest and catalog; `current` flipped atomically.

    Runs only after the blocking checks on the catalog passed.
    """
    layout = ctx.layout

    def build() -> StageOutput:
        outcome = lifecycle.publish_build(ctx)
        return StageOutput(
            outcome.build_version,
            {
                "build_version": outcome.build_version,
                "previous": outcome.previous,
                "reused": outcome.reused,
                "artifacts": len(outcome.manifest["artifacts"]),
                "path": str(layout.version(outcome.build_version).root),
            },
        )

    # Published files may be hard links of the build's: one changed in place is damage
    # that an unchanged fingerprint would hide, so a broken `current` is published again.
    with file_digests_once():
        force = not lifecycle.current_is_intact(layout)
        return run_stage(ctx, stage, {"retention": ctx.retention}, build, force=force)
