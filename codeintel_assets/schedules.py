"""Schedules: a nightly uncached re-check of every repository's index.

A build trusts its caches (the embedding cache, the checksum gates). Once a night,
``nightly_recheck`` re-checks every registered repository the way the
``chunks_match_clean_build`` check does, without rebuilding anything: a from-scratch
chunking of the unchanged files compared with the stored chunks, and a fresh, uncached
embedding of sampled chunks compared with the stored vectors. Each outcome is recorded
as an evaluation of that check on the repository's partition, so it shows in the
check's history in the UI.
"""

import dagster as dg

from codeintel_assets.core.validation import check_chunks_match_clean_build
from codeintel_assets.partitions import REPOS
from codeintel_assets.resources import CodeintelResource

NIGHTLY_CRON = "0 3 * * *"
RECHECK = dg.AssetCheckKey(dg.AssetKey("chunks"), "chunks_match_clean_build")


@dg.op
def recheck_repositories(context: dg.OpExecutionContext, codeintel: CodeintelResource) -> int:
    """Re-check every repository partition; return how many failed."""
    failed = 0
    for name in sorted(context.instance.get_dynamic_partitions(REPOS.name)):
        outcome = check_chunks_match_clean_build(codeintel.build_context(name))
        failed += not outcome.passed
        context.log_event(
            dg.AssetCheckEvaluation(
                asset_key=RECHECK.asset_key,
                check_name=RECHECK.name,
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
