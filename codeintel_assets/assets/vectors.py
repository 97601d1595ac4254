"""Vector layer: the FAISS index keyed by chunk id and its id map."""

import dagster as dg

from codeintel_assets.assets.metadata import materialize_result
from codeintel_assets.automation import DOWNSTREAM
from codeintel_assets.core.stages.retrieval import (
    stage_bm25_index,
    stage_faiss_idmap,
    stage_faiss_index,
    stage_units,
)
from codeintel_assets.core.stamps import CODE_VERSIONS
from codeintel_assets.partitions import REPOS
from codeintel_assets.resources import CodeintelResource


@dg.asset(
    partitions_def=REPOS,
    automation_condition=DOWNSTREAM,
    group_name="retrieval",
    code_version=CODE_VERSIONS["faiss_index"],
    deps=["chunks"],
    kinds={"faiss"},
)
def faiss_index(context: dg.AssetExecutionContext, codeintel: CodeintelResource):
    """`faiss/chunks.faiss` (inner product, ids = chunk ids) and its audit sidecar."""
    ctx = codeintel.build_context(context.partition_key)
    return materialize_result(stage_faiss_index(ctx))


@dg.asset(
    partitions_def=REPOS,
    automation_condition=DOWNSTREAM,
    group_name="retrieval",
    code_version=CODE_VERSIONS["faiss_idmap"],
    deps=["faiss_index"],
    kinds={"parquet"},
)
def faiss_idmap(context: dg.AssetExecutionContext, codeintel: CodeintelResource):
    """`faiss/faiss_idmap.parquet`: FAISS row → chunk id, with index name and build version."""
    ctx = codeintel.build_context(context.partition_key)
    return materialize_result(stage_faiss_idmap(ctx), ctx.layout.build.faiss_idmap)


@dg.asset(
    partitions_def=REPOS,
    automation_condition=DOWNSTREAM,
    group_name="retrieval",
    code_version=CODE_VERSIONS["bm25_index"],
    deps=["chunks", "units"],
    kinds={"numpy"},
)
def bm25_index(context: dg.AssetExecutionContext, codeintel: CodeintelResource):
    """`bm25/`: BM25 over identifier-aware tokens (snake_case and camelCase split, the
    identifier kept too) of each unit's path, qualified name and whole text."""
    ctx = codeintel.build_context(context.partition_key)
    return materialize_result(stage_bm25_index(ctx))


@dg.asset(
    partitions_def=REPOS,
    automation_condition=DOWNSTREAM,
    group_name="retrieval",
    code_version=CODE_VERSIONS["units"],
    deps=["chunks", "cst_nodes"],
    kinds={"parquet"},
)
def units(context: dg.AssetExecutionContext, codeintel: CodeintelResource):
    """`units/units.parquet`: what search ranks and returns — every function, method,
    class... of the syntax tree and the module blocks around them — and
    `units/chunk_units.parquet`: each chunk's innermost unit."""
    ctx = codeintel.build_context(context.partition_key)
    return materialize_result(stage_units(ctx), ctx.layout.build.units)
