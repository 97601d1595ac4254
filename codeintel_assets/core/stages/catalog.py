"""Catalog stage: the DuckDB file of the working build."""

from __future__ import annotations

from codeintel_assets.core.catalog import build_catalog
from codeintel_assets.core.checksums import xxh64_json
from codeintel_assets.core.context import BuildContext
from codeintel_assets.core.stamps import Stage, StageOutput, StageResult, run_stage


def stage_duckdb_catalog(ctx: BuildContext, stage: Stage) -> StageResult:
    """`db/codeintel.duckdb`: views over the Parquet artifacts and a manifest of their DDL."""
    layout = ctx.layout

    def build() -> StageOutput:
        status = build_catalog(layout.build)
        facts = status.to_dict()
        return StageOutput(
            xxh64_json(stage.upstream(layout)),
            {
                "views": len(facts.get("views", [])),
                "missing_sources": status.missing_sources,
                "markdown": status.to_markdown(),
                "path": str(layout.build.catalog),
            },
        )

    return run_stage(ctx, stage, {}, build)
