"""Publish layer: a validated, versioned index behind an atomic `current` pointer."""

import dagster as dg

from codeintel_assets.assets.metadata import materialize_result
from codeintel_assets.automation import DOWNSTREAM
from codeintel_assets.core.stages.publish import stage_published_index
from codeintel_assets.core.stamps import CODE_VERSIONS
from codeintel_assets.partitions import REPOS
from codeintel_assets.resources import CodeintelResource

PUBLISH_INPUTS = ["duckdb_catalog", "faiss_index"]


@dg.asset(
    partitions_def=REPOS,
    automation_condition=DOWNSTREAM,
    group_name="publish",
    code_version=CODE_VERSIONS["published_index"],
    deps=PUBLISH_INPUTS,
)
def published_index(context: dg.AssetExecutionContext, codeintel: CodeintelResource):
    """`versions/<build_version>/` with its manifest and catalog; `current` flipped atomically.

    Runs only after the blocking checks on the catalog passed.
    """
    ctx = codeintel.build_context(context.partition_key)
    return materialize_result(stage_published_index(ctx, PUBLISH_INPUTS))
