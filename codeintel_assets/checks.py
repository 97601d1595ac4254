"""Asset checks; the blocking ones guard `published_index`."""

import dagster as dg

from codeintel_assets.core import validation
from codeintel_assets.core.validation import CheckOutcome
from codeintel_assets.partitions import REPOS
from codeintel_assets.resources import CodeintelResource


def _result(outcome: CheckOutcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=outcome.passed,
        description=outcome.detail,
        metadata={"detail": outcome.detail, **outcome.metadata},
    )


@dg.asset_check(asset="duckdb_catalog", blocking=True, partitions_def=REPOS)
def v_chunks_not_empty(context: dg.AssetCheckExecutionContext, codeintel: CodeintelResource):
    """The catalog's `v_chunks` view has rows."""
    layout = codeintel.build_context(context.partition_key).layout.build
    return _result(validation.check_chunks_not_empty(layout))


@dg.asset_check(asset="duckdb_catalog", blocking=True, partitions_def=REPOS)
def faiss_round_trip(context: dg.AssetCheckExecutionContext, codeintel: CodeintelResource):
    """Sampled FAISS ids hydrate through DuckDB to the same chunk id, uri and vector."""
    layout = codeintel.build_context(context.partition_key).layout.build
    return _result(validation.check_faiss_round_trip(layout))


ALL_CHECKS = [v_chunks_not_empty, faiss_round_trip]
