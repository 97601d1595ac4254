"""Schedules: a nightly uncached re-check of every repository's index.

A build trusts its caches (the embedding cache, the checksum gates, incremental SCIP).
Once a night, ``nightly_recheck`` re-checks every registered repository without
rebuilding anything: the ``chunks_match_clean_build`` check over every file (a build
checks the files its reuse touched and a rotating slice; here a from-scratch chunking of
all the unchanged files, compared with the stored chunks, and a fresh, uncached embedding of
sampled chunks compared with the stored vectors), and ``scip_matches_full_pass`` (a full
scip-python pass from scratch compared row for row with the stored ``scip_occurrences``,
``scip_symbols`` and ``symbol_edges``, which incremental updates made). The full pass is
as slow as a first build's ``scip_index``, so it runs here and not with every build. Each
outcome is recorded as an evaluation of its check on the repository's partition, so it
shows in the check's history in the UI.
"""

import dagster as dg

from codeintel_assets.core.validation import (
    check_all_chunks_match_clean_build,
    check_scip_matches_full_pass,
)
from codeintel_assets.partitions import REPOS
from codeintel_assets.resources import CodeintelResource

NIGHTLY_CRON = "0 3 * * *"
RECHECK = dg.AssetCheckKey(dg.AssetKey("chunks"), "chunks_match_clean_build")
SCIP_RECHECK = dg.AssetCheckKey(dg.AssetKey("scip_occurrences"), "scip_matches_full_pass")
RECHECKS = (
    (RECHECK, check_all_chunks_match_clean_build),
    (SCIP_RECHECK, check_scip_matches_full_pass),
)


@dg.op
def recheck_repositories(context: dg.OpExecutionContext, codeintel: CodeintelResource) -> int:
    """Run every re-check on every repository partition; return how many failed."""
    failed = 0
    for name in sorted(context.instance.get_dynamic_partitions(REPOS.name)):
        ctx = codeintel.build_context(name)
        for key, check in RECHECKS:
            outcome = check(ctx)
            failed += not outcome.passed
            context.log_event(
                dg.AssetCheckEvaluation(
                    asset_key=key.asset_key,
                    check_name=key.name,
                    passed=outcome.passed,
                    metadata={"detail": outcome.detail, **outcome.metadata},
                    description=outcome.detail,
                    partition=name,
                )
            )
    return failed


@dg.job(description="The uncached re-check of every repository (no asset is rebuilt).")
def nightly_recheck_job() -> None:
    recheck_repositories()


nightly_recheck = dg.ScheduleDefinition(
    name="nightly_recheck",
    job=nightly_recheck_job,
    cron_schedule=NIGHTLY_CRON,
    execution_timezone="UTC",
    description="Every night at 03:00 UTC, the uncached re-check of every repository.",
)

ALL_SCHEDULES = [nightly_recheck]
