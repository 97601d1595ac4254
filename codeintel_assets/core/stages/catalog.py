"""Catalog stage: the DuckDB file of the working build."""

from __future__ import annotations

from codeintel_assets.core.catalog import build_catalog
from codeintel_assets.core.checksums import xxh64_json
from codeintel_assets.core.stages.context import BuildContext
from codeintel_assets.core.stamps import (
    StageOutput,
    StageResult,
    fingerprint,
    run_stage,
    upstream_version,
)


def stage_duckdb_catalog(ctx: BuildContext, upstream_stages: list[str]) -> StageResult:
    """Build ``db/codeintel.duckdb``: views over the build's Parquet and their manifest."""
    layout = ctx.layout
    up = {stage: upstream_version(layout, stage) for stage in upstream_stages}

    def build() -> StageOutput:
        status = build_catalog(layout.build)
        facts = status.to_dict()
        return StageOutput(
            xxh64_json(up),
            {
                "views": len(facts.get("views", [])),
                "missing_sources": status.missing_sources,
                "markdown": status.to_markdown(),
                "path": str(layout.build.catalog),
            },
        )

    return run_stage(
        layout,
        "duckdb_catalog",
        fingerprint("duckdb_catalog", up, {}),
        [layout.build.catalog],
        build,
    )
