"""Publish stage: a validated, versioned copy of the build behind ``current``."""

from __future__ import annotations

import json
import platform
from typing import Any

import faiss
import numpy as np

from codeintel_assets.core import lifecycle, validation
from codeintel_assets.core.catalog import build_catalog
from codeintel_assets.core.stages.context import BuildContext
from codeintel_assets.core.stamps import (
    StageOutput,
    StageResult,
    fingerprint,
    read_stamp,
    run_stage,
    upstream_version,
)


def stage_published_index(ctx: BuildContext, upstream_stages: list[str]) -> StageResult:
    """Publish the build as a validated version and flip ``current`` to it."""
    layout = ctx.layout
    up = {stage: upstream_version(layout, stage) for stage in upstream_stages}

    def build() -> StageOutput:
        outcome = publish(ctx)
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

    fp = fingerprint("published_index", up, {"retention": ctx.retention})
    # Published files may be hard links of the build's: one changed in place is damage
    # that an unchanged fingerprint would hide, so a broken `current` is published again.
    force = not lifecycle.current_is_intact(layout)
    return run_stage(layout, "published_index", fp, [], build, force=force)


def publish(ctx: BuildContext, staged: str | None = None) -> lifecycle.PublishOutcome:
    """Stage, catalog, validate and publish the working build, or the ``staged`` version
    (also used by the CLI)."""
    return lifecycle.publish_version(
        ctx.layout,
        # Published catalogs are read by many searches: materialize the hot tables once.
        build_catalog=lambda version: build_catalog(version, materialize=True).to_dict(),
        validate=validation.validate_version,
        extra_manifest=tool_versions(ctx),
        retention=ctx.retention,
        staged=staged,
    )


def tool_versions(ctx: BuildContext) -> dict[str, Any]:
    """Return the versions of the tools and model that made the build (for the manifest)."""
    import duckdb
    import pyarrow

    chunk_stamp = read_stamp(ctx.layout, "chunks") or {}
    scip_stamp = read_stamp(ctx.layout, "scip_index") or {}
    audit_path = ctx.layout.build.faiss_audit()
    audit = json.loads(audit_path.read_text(encoding="utf-8")) if audit_path.exists() else {}
    return {
        # What the chunks were really embedded with: search must embed queries the same way.
        "embedder": {
            **chunk_stamp.get("metadata", {}).get("embedder", ctx.embedder.describe()),
            "model_id": chunk_stamp.get("metadata", {}).get("model_id"),
        },
        "faiss": {k: audit.get(k) for k in ("factory", "knobs", "metric", "dim", "ntotal")},
        "scip": {k: scip_stamp.get("metadata", {}).get(k) for k in ("ok", "source", "reason")},
        "tools": {
            "python": platform.python_version(),
            "faiss": faiss.__version__,
            "duckdb": duckdb.__version__,
            "pyarrow": pyarrow.__version__,
            "numpy": np.__version__,
            "scip-python": "0.6.6",
        },
    }
