"""Schedules: the nightly re-run of the evaluation assets of every repository."""

from __future__ import annotations

import dagster as dg

from codeintel_assets.partitions import REPOS

EVALUATION_GROUP = "evaluation"
NIGHTLY_CRON = "0 3 * * *"

nightly_evaluation_job = dg.define_asset_job(
    "nightly_evaluation_job",
    selection=dg.AssetSelection.groups(EVALUATION_GROUP),
    partitions_def=REPOS,
    description="Re-run the evaluation assets (BM25, synthetic queries, pools) of a repository.",
)


@dg.schedule(
    job=nightly_evaluation_job,
    cron_schedule=NIGHTLY_CRON,
    execution_timezone="UTC",
    description="Every night at 03:00 UTC, re-run evaluation for every repository partition.",
)
def nightly_evaluation(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    """One run per repository partition, keyed by the scheduled time so a tick runs once."""
    tick = context.scheduled_execution_time.isoformat()
    return [
        dg.RunRequest(run_key=f"{name}:{tick}", partition_key=name)
        for name in sorted(context.instance.get_dynamic_partitions(REPOS.name))
    ]


ALL_SCHEDULES = [nightly_evaluation]
