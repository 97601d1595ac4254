"""Structure layer: SCIP symbols and occurrences, AST and CST nodes, modules, symbol graph."""

import dagster as dg

from codeintel_assets.assets.metadata import materialize_result
from codeintel_assets.automation import DOWNSTREAM
from codeintel_assets.core.stages import structure
from codeintel_assets.core.stamps import CODE_VERSIONS
from codeintel_assets.partitions import REPOS
from codeintel_assets.resources import CodeintelResource


def _spec(name: str, deps: list[str], kinds: set[str]) -> dict:
    return {
        "name": name,
        "partitions_def": REPOS,
        "automation_condition": DOWNSTREAM,
        "group_name": "structure",
        "code_version": CODE_VERSIONS[name],
        "deps": deps,
        "kinds": kinds,
    }


@dg.asset(**_spec("scip_index", ["repo_manifest"], {"scip"}))
def scip_index(context: dg.AssetExecutionContext, codeintel: CodeintelResource):
    """`scip/index.scip` from scip-python (or the user's index). A failed run is recorded in
    metadata with its stderr tail and downstream assets get empty SCIP tables."""
    ctx = codeintel.build_context(context.partition_key)
    return materialize_result(structure.stage_scip_index(ctx))


@dg.asset(**_spec("scip_occurrences", ["scip_index"], {"parquet"}))
def scip_occurrences(context: dg.AssetExecutionContext, codeintel: CodeintelResource):
    """`scip/scip_occurrences.parquet` (0-based SCIP ranges) and `scip/scip_symbols.parquet`."""
    ctx = codeintel.build_context(context.partition_key)
    result = structure.stage_scip_occurrences(ctx)
    return materialize_result(result, ctx.layout.build.scip_occurrences)


@dg.asset(**_spec("ast_nodes", ["repo_manifest"], {"parquet", "python"}))
def ast_nodes(context: dg.AssetExecutionContext, codeintel: CodeintelResource):
    """`ast/ast_nodes.parquet`: Python `ast` nodes; files that do not parse are counted."""
    ctx = codeintel.build_context(context.partition_key)
    return materialize_result(structure.stage_ast_nodes(ctx), ctx.layout.build.ast_nodes)


@dg.asset(**_spec("cst_nodes", ["repo_manifest"], {"parquet"}))
def cst_nodes(context: dg.AssetExecutionContext, codeintel: CodeintelResource):
    """`cst/cst_nodes.parquet`: tree-sitter nodes with comments, tokens and ERROR nodes."""
    ctx = codeintel.build_context(context.partition_key)
    return materialize_result(structure.stage_cst_nodes(ctx), ctx.layout.build.cst_nodes)


@dg.asset(
    **_spec("modules", ["repo_manifest", "ast_nodes", "scip_occurrences", "chunks"], {"parquet"})
)
def modules(context: dg.AssetExecutionContext, codeintel: CodeintelResource):
    """`modules/modules.parquet` + `modules.jsonl`: size, cyclomatic complexity, doc coverage,
    import-graph degrees and PageRank centrality per module."""
    ctx = codeintel.build_context(context.partition_key)
    return materialize_result(structure.stage_modules(ctx), ctx.layout.build.modules_parquet)


@dg.asset(**_spec("symbol_edges", ["scip_occurrences"], {"parquet"}))
def symbol_edges(context: dg.AssetExecutionContext, codeintel: CodeintelResource):
    """`symbol_graph/symbol_edges.parquet` + `symbol_graph.json`: call, reference, import,
    inherits and implements edges between symbols, weighted by occurrence count."""
    ctx = codeintel.build_context(context.partition_key)
    return materialize_result(structure.stage_symbol_edges(ctx), ctx.layout.build.symbol_edges)
