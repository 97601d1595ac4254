"""Asset checks; the blocking ones guard `published_index`."""

import warnings

import dagster as dg

from codeintel_assets.core import validation
from codeintel_assets.core.validation import CheckOutcome
from codeintel_assets.partitions import REPOS
from codeintel_assets.resources import CodeintelResource

# Partitioned asset checks are a preview feature of Dagster 1.13; we rely on them knowingly.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec")


def _result(outcome: CheckOutcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=outcome.passed,
        description=outcome.detail,
        metadata={"detail": outcome.detail, **outcome.metadata},
    )


@dg.asset_check(asset="faiss_index", blocking=True, partitions_def=REPOS)
def ann_recall_at_target(context: dg.AssetCheckExecutionContext, codeintel: CodeintelResource):
    """ANN recall@10 against exact search at the locked operating point meets the target."""
    layout = codeintel.build_context(context.partition_key).layout.build
    return _result(validation.check_ann_recall(layout))


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


@dg.asset_check(asset="duckdb_catalog", blocking=True, partitions_def=REPOS)
def chunk_symbols_in_scip(context: dg.AssetCheckExecutionContext, codeintel: CodeintelResource):
    """Chunk symbols occur in `scip_occurrences` for the same uri within the chunk's lines."""
    layout = codeintel.build_context(context.partition_key).layout.build
    return _result(validation.check_chunk_symbols_in_occurrences(layout))


@dg.asset_check(asset="duckdb_catalog", blocking=True, partitions_def=REPOS)
def chunks_map_to_modules(context: dg.AssetCheckExecutionContext, codeintel: CodeintelResource):
    """Every chunk maps to a module whose `uri_prefix` prefixes its uri."""
    layout = codeintel.build_context(context.partition_key).layout.build
    return _result(validation.check_chunks_map_to_modules(layout))


@dg.asset_check(asset="duckdb_catalog", partitions_def=REPOS)
def no_orphan_syntax_nodes(context: dg.AssetCheckExecutionContext, codeintel: CodeintelResource):
    """No AST/CST node points at a parent that does not exist."""
    layout = codeintel.build_context(context.partition_key).layout.build
    return _result(validation.check_no_orphan_nodes(layout))


@dg.asset_check(asset="duckdb_catalog", partitions_def=REPOS)
def edge_endpoints_defined(context: dg.AssetCheckExecutionContext, codeintel: CodeintelResource):
    """Every `symbol_edges` endpoint with a uri is a definition in `scip_occurrences`."""
    layout = codeintel.build_context(context.partition_key).layout.build
    return _result(validation.check_edge_endpoints_defined(layout))


@dg.asset_check(asset="chunks", partitions_def=REPOS)
def chunks_match_clean_build(context: dg.AssetCheckExecutionContext, codeintel: CodeintelResource):
    """Incremental equals clean: stored chunks equal a from-scratch chunking, and sampled
    vectors equal a fresh embedding (no cache)."""
    return _result(
        validation.check_chunks_match_clean_build(codeintel.build_context(context.partition_key))
    )


ALL_CHECKS = [
    chunks_match_clean_build,
    ann_recall_at_target,
    v_chunks_not_empty,
    faiss_round_trip,
    chunk_symbols_in_scip,
    chunks_map_to_modules,
    no_orphan_syntax_nodes,
    edge_endpoints_defined,
]
