"""Catalog layer: the DuckDB file that joins every artifact in SQL."""

import dagster as dg

from codeintel_assets.assets.metadata import materialize_result
from codeintel_assets.automation import DOWNSTREAM
from codeintel_assets.core.stages.catalog import stage_duckdb_catalog
from codeintel_assets.core.stamps import CODE_VERSIONS
from codeintel_assets.partitions import REPOS
from codeintel_assets.resources import CodeintelResource

CATALOG_INPUTS = [
    "repo_manifest",
    "scip_occurrences",
    "ast_nodes",
    "cst_nodes",
    "modules",
    "symbol_edges",
    "chunks",
    "units",
    "faiss_idmap",
    "bm25_index",
    "eval_pools",
]


@dg.asset(
    partitions_def=REPOS,
    automation_condition=DOWNSTREAM,
    group_name="catalog",
    code_version=CODE_VERSIONS["duckdb_catalog"],
    deps=CATALOG_INPUTS,
    kinds={"duckdb"},
)
def duckdb_catalog(context: dg.AssetExecutionContext, codeintel: CodeintelResource):
    """`db/codeintel.duckdb`: views over the Parquet artifacts and a manifest of their DDL."""
    ctx = codeintel.build_context(context.partition_key)
    return materialize_result(stage_duckdb_catalog(ctx, CATALOG_INPUTS))
