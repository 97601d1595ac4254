"""Publish stage: a validated, versioned copy of the build behind ``current``."""

from __future__ import annotations

import json
import platform
from typing import Any

import faiss
import numpy as np

from codeintel_assets.core import lifecycle, validation
from codeintel_assets.core.catalog import build_catalog
from codeintel_assets.core.context import BuildContext
from codeintel_assets.core.stamps import Stage, StageOutput, StageResult, read_stamp, run_stage


def stage_published_index(ctx: BuildContext, stage: Stage) -> StageResult:
    """`versions/<build_version>/` with its manifest and catalog; `current` flipped atomically.

    Runs only after the blocking checks on the catalog passed.
    """
    layout = ctx.layout

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

    never_published = lifecycle.current_version_or_none(layout) is None
    return run_stage(ctx, stage, {"retention": ctx.retention}, build, force=never_published)


def publish(ctx: BuildContext) -> lifecycle.PublishOutcome:
    """Stage, catalog, validate and publish the working build (also used by the CLI)."""
    return lifecycle.publish_version(
        ctx.layout,
        # Published catalogs are read by many searches: materialize the hot tables once.
        build_catalog=lambda version: build_catalog(version, materialize=True).to_dict(),
        validate=validation.validate_version,
        extra_manifest=tool_versions(ctx),
        retention=ctx.retention,
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
