"""Chunk layer: syntax-aware code chunks with embeddings."""

import dagster as dg

from codeintel_assets.assets.metadata import materialize_result
from codeintel_assets.core import pipeline
from codeintel_assets.core.stamps import CODE_VERSIONS
from codeintel_assets.partitions import REPOS
from codeintel_assets.resources import CodeintelResource


@dg.asset(
    partitions_def=REPOS,
    group_name="retrieval",
    code_version=CODE_VERSIONS["chunks"],
    deps=["repo_manifest"],
    kinds={"parquet", "pytorch"},
)
def chunks(context: dg.AssetExecutionContext, codeintel: CodeintelResource):
    """`vectors/chunks/chunks.parquet`: functions, methods and classes under the model's
    token budget, with L2-normalized embeddings; unchanged texts come from the cache."""
    ctx = codeintel.build_context(context.partition_key)
    result = pipeline.stage_chunks(ctx)
    return materialize_result(result, ctx.layout.build.chunks)
