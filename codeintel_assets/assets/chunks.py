"""Chunk layer: syntax-aware code chunks with SCIP symbols and embeddings."""

import dagster as dg

from codeintel_assets.assets.metadata import materialize_result
from codeintel_assets.automation import DOWNSTREAM
from codeintel_assets.core.stages.retrieval import CHUNK_INPUTS, stage_chunks
from codeintel_assets.core.stamps import CODE_VERSIONS
from codeintel_assets.partitions import REPOS
from codeintel_assets.resources import CodeintelResource


@dg.asset(
    partitions_def=REPOS,
    automation_condition=DOWNSTREAM,
    group_name="retrieval",
    code_version=CODE_VERSIONS["chunks"],
    deps=list(CHUNK_INPUTS),
    kinds={"parquet", "pytorch"},
)
def chunks(context: dg.AssetExecutionContext, codeintel: CodeintelResource):
    """`vectors/chunks/chunks.parquet`: functions, methods and classes under the model's
    token budget, with their SCIP symbols and L2-normalized embeddings (unchanged texts come
    from the embedding cache); also `vectors/node_to_chunk.parquet`."""
    ctx = codeintel.build_context(context.partition_key)
    return materialize_result(stage_chunks(ctx), ctx.layout.build.chunks)
