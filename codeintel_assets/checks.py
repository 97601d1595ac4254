"""Asset checks, one line each; the blocking ones guard `published_index`.

Every check runs a validation of `core/validation.py` (the CLI's `publish` runs the same
blocking ones) on the repository partition's working build.
"""

import warnings
from collections.abc import Callable

import dagster as dg

from codeintel_assets.core import validation as v
from codeintel_assets.core.context import BuildContext
from codeintel_assets.core.layout import ArtifactLayout
from codeintel_assets.core.validation import CheckOutcome
from codeintel_assets.partitions import REPOS
from codeintel_assets.resources import CodeintelResource

# Partitioned asset checks are a preview feature of Dagster 1.13; we rely on them knowingly.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec")


def _check(
    name: str,
    asset: str,
    blocking: bool,
    run: Callable[[dg.AssetCheckExecutionContext, BuildContext], CheckOutcome],
    description: str | None,
) -> dg.AssetChecksDefinition:
    """Return a partitioned asset check running ``run`` on its context and the partition's
    build context."""

    @dg.asset_check(
        name=name,
        asset=asset,
        blocking=blocking,
        partitions_def=REPOS,
        description=description,
    )
    def _asset_check(context: dg.AssetCheckExecutionContext, codeintel: CodeintelResource):
        outcome = run(context, codeintel.build_context(context.partition_key))
        return dg.AssetCheckResult(
            passed=outcome.passed,
            description=outcome.detail,
            metadata={"detail": outcome.detail, **outcome.metadata},
        )

    return _asset_check


# A run with this tag (any value but "false") re-chunks every file in
# ``chunks_match_clean_build`` instead of the files reuse touched and a rotating slice.
FULL_CHECK_TAG = "codeintel/full_check"


def _clean_chunking(context: dg.AssetCheckExecutionContext, ctx: BuildContext) -> CheckOutcome:
    """The clean-chunking check of the run: whole when the run has ``FULL_CHECK_TAG``."""
    if context.run.tags.get(FULL_CHECK_TAG, "false").lower() != "false":
        return v.check_all_chunks_match_clean_build(ctx)
    return v.check_chunks_match_clean_build(ctx)


def _build_check(
    name: str, asset: str, blocking: bool, check: Callable[[ArtifactLayout], CheckOutcome]
) -> dg.AssetChecksDefinition:
    """A check of the partition's working build area (its artifact layout); a pass of a
    costly one leaves a proof that publishing the same files takes instead of a rerun."""

    def run(_: dg.AssetCheckExecutionContext, ctx: BuildContext) -> CheckOutcome:
        return v.run_proven(check, ctx.layout.build, ctx.layout.proofs_dir)

    return _check(name, asset, blocking, run, check.__doc__)


ALL_CHECKS = [
    _build_check("ann_recall_at_target", "faiss_index", True, v.check_ann_recall),
    _check(
        "chunks_match_clean_build",
        "chunks",
        False,
        _clean_chunking,
        v.check_chunks_match_clean_build.__doc__,
    ),
    _build_check("v_chunks_not_empty", "duckdb_catalog", True, v.check_chunks_not_empty),
    _build_check("faiss_round_trip", "duckdb_catalog", True, v.check_faiss_round_trip),
    _build_check(
        "chunk_symbols_in_scip", "duckdb_catalog", True, v.check_chunk_symbols_in_occurrences
    ),
    _build_check("chunks_map_to_modules", "duckdb_catalog", True, v.check_chunks_map_to_modules),
    _build_check("no_orphan_syntax_nodes", "duckdb_catalog", False, v.check_no_orphan_nodes),
    _build_check("edge_endpoints_defined", "duckdb_catalog", False, v.check_edge_endpoints_defined),
]
