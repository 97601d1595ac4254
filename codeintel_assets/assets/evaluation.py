"""Evaluation layer: synthetic queries and the pool that measures retrieval quality."""

import dagster as dg

from codeintel_assets.assets.metadata import materialize_result
from codeintel_assets.automation import DOWNSTREAM
from codeintel_assets.core.stages.evaluation import (
    POOL_INPUTS,
    QUERY_INPUTS,
    stage_eval_pools,
    stage_synthetic_queries,
)
from codeintel_assets.core.stamps import CODE_VERSIONS
from codeintel_assets.partitions import REPOS
from codeintel_assets.resources import CodeintelResource


@dg.asset(
    partitions_def=REPOS,
    automation_condition=DOWNSTREAM,
    group_name="evaluation",
    code_version=CODE_VERSIONS["synthetic_queries"],
    deps=list(QUERY_INPUTS),
)
def synthetic_queries(context: dg.AssetExecutionContext, codeintel: CodeintelResource):
    """`eval/queries.jsonl`: `doc`, `name`, `masked` (shares no identifier with its target) and
    `call` (a use of the definition) queries from documented SCIP definitions, each with its
    positive chunk ids."""
    ctx = codeintel.build_context(context.partition_key)
    return materialize_result(stage_synthetic_queries(ctx))


@dg.asset(
    partitions_def=REPOS,
    automation_condition=DOWNSTREAM,
    group_name="evaluation",
    code_version=CODE_VERSIONS["eval_pools"],
    deps=list(POOL_INPUTS),
)
def eval_pools(context: dg.AssetExecutionContext, codeintel: CodeintelResource):
    """`eval/last_eval_pool.parquet` (faiss, oracle, bm25, hybrid rankings per query) and the
    report: ANN recall@k against exact search, recall@1/5/10 and MRR@10 per channel, style and
    module, with a plot."""
    ctx = codeintel.build_context(context.partition_key)
    result = stage_eval_pools(ctx)
    plot = ctx.layout.build.eval_plot
    extra = {}
    if plot.exists():
        extra["plot"] = plot
    return materialize_result(result, ctx.layout.build.eval_pool, **extra)
