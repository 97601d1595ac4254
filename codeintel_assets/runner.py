"""Materializing one repository partition through Dagster, for `indexctl build`.

Runs the whole graph for the partition in the instance named by ``$DAGSTER_HOME``
(default ``./dagster_home``), reports progress as steps finish, and returns a
per-asset summary (ran or skipped, rows, seconds, embedding cache use). When no stage
is stale (``core.stages.results_if_current``: every gate checked as the run would) there
is no Dagster run at all: launching one costs seconds even when every step skips, and
a run would only repeat the last one's data versions.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from codeintel_assets.core.checksums import write_json_atomic
from codeintel_assets.core.errors import CodeintelError
from codeintel_assets.core.layout import PROJECT_ROOT, RepoLayout
from codeintel_assets.core.lifecycle import build_lock
from codeintel_assets.core.stages import results_if_current
from codeintel_assets.core.stamps import StageResult
from codeintel_assets.definitions import ALL_ASSETS, ALL_CHECKS
from codeintel_assets.partitions import REPOS
from codeintel_assets.resources import CodeintelResource

# The tags of every run `indexctl build` launches.
BUILD_TAGS = {"codeintel/source": "indexctl build"}
_ROW_KEYS = ("dagster/row_count", "rows", "chunks", "files", "ntotal")


@dataclass(frozen=True)
class AssetSummary:
    asset: str
    ran: bool | None  # None: the step did not materialize (failed or blocked)
    rows: int | None
    seconds: float | None
    metadata: dict[str, Any]


@dataclass(frozen=True)
class BuildReport:
    success: bool
    run_id: str  # '' when nothing was stale and no Dagster run was launched
    assets: list[AssetSummary]
    failures: list[str]
    warnings: list[str]  # failed non-blocking checks
    # Where a Dagster run's time went: seconds of each step (asset or check) from its start
    # to its end event, and of the whole run from its first event to its last.
    step_seconds: dict[str, float] = field(default_factory=dict)
    run_seconds: float = 0.0
    probe_seconds: float = 0.0  # checking every gate before deciding to launch a run


def dagster_instance() -> dg.DagsterInstance:
    """Return the local instance (``$DAGSTER_HOME``, default ``<project>/dagster_home``)."""
    os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT / "dagster_home"))
    return dg.DagsterInstance.get()


def ensure_partitions(instance: dg.DagsterInstance, names: list[str]) -> None:
    """Add repository partitions the instance does not know yet."""
    known = set(instance.get_dynamic_partitions(REPOS.name))
    missing = [n for n in names if n not in known]
    if missing:
        instance.add_dynamic_partitions(REPOS.name, missing)


def build_repository(
    name: str,
    resource: CodeintelResource,
    instance: dg.DagsterInstance | None = None,
    on_step: Callable[[str, int, int], None] | None = None,
    log_level: str = "CRITICAL",
) -> BuildReport:
    """Materialize every asset (and check) of partition ``name``; never raises on step failure.

    Returns at once, without a Dagster run, when no stage is stale (``run_id`` is '').
    ``log_level`` is the Dagster console log's: the default shows nothing (a failure is
    reported once, in the returned ``failures``); ``DEBUG`` shows the whole run.
    Raises ``CodeintelError`` when another build of the repository holds its lock.
    """
    ctx = resource.build_context(name)
    started = time.time()
    # Two in-process builds of one repository would race on its build area.
    with sigint_default(), build_lock(ctx.layout):
        current = results_if_current(ctx)
        probed = round(time.time() - started, 3)
        if current is not None:
            report = _up_to_date_report(current)
        else:
            instance = instance or dagster_instance()
            ensure_partitions(instance, [name])
            report = _materialize(name, resource, instance, on_step, log_level)
        report = replace(report, probe_seconds=probed)
        _record(ctx.layout, report, started)
    return report


@contextlib.contextmanager
def sigint_default() -> Iterator[None]:
    """Within the block, an ignored SIGINT (a background job's) has its default handler.

    Dagster maps SIGTERM to the SIGINT handler while it executes in a main thread and maps
    it back afterwards, so an ignored SIGINT leaves SIGTERM ignored too; every process
    started after that inherits the ignored SIGTERM, and the compute-log ``tail`` children
    Dagster terminates after each step then outlive ``terminate()``: it waits 30 s for each.
    Outside the main thread (where no handler can be set) the block changes nothing.
    """
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        yield
        return
    sigterm = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if sigterm is signal.SIG_IGN:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, sigterm)


def _up_to_date_report(results: list[StageResult]) -> BuildReport:
    summaries = [
        AssetSummary(r.stage, False, _rows(r.metadata), r.seconds, r.metadata) for r in results
    ]
    return BuildReport(True, "", summaries, [], [])


def _record(layout: RepoLayout, report: BuildReport, started: float) -> None:
    """Write what this build did to ``last_build.json`` (a no-op build has no Dagster run)."""
    write_json_atomic(
        layout.last_build,
        {
            "started": started,
            "seconds": round(time.time() - started, 3),
            "success": report.success,
            "dagster_run_id": report.run_id or None,
            "ran": [a.asset for a in report.assets if a.ran],
            "failures": report.failures,
        },
    )


def _rows(metadata: dict[str, Any]) -> int | None:
    return next((int(metadata[k]) for k in _ROW_KEYS if isinstance(metadata.get(k), int)), None)


def _materialize(
    name: str,
    resource: CodeintelResource,
    instance: dg.DagsterInstance,
    on_step: Callable[[str, int, int], None] | None,
    log_level: str,
) -> BuildReport:
    total = len(ALL_ASSETS) + len(ALL_CHECKS)
    done = threading.Event()
    holder: dict[str, Any] = {}

    def run() -> None:
        try:
            holder["result"] = dg.materialize(
                [*ALL_ASSETS, *ALL_CHECKS],
                partition_key=name,
                instance=instance,
                resources={"codeintel": resource},
                raise_on_error=False,
                tags=BUILD_TAGS,
                run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
            )
        except BaseException as exc:  # re-raised in the caller's thread
            holder["error"] = exc
        finally:
            done.set()

    worker = threading.Thread(target=run, daemon=True)
    progress = StepProgress(instance, name, time.time())
    worker.start()
    while not done.wait(0.5):
        if on_step is not None:
            on_step(*progress.poll(), total)
    worker.join()
    if "error" in holder:
        raise holder["error"]
    report = _report(holder["result"])
    return replace(report, **_run_timings(instance, report.run_id))


def _run_timings(instance: dg.DagsterInstance, run_id: str) -> dict[str, Any]:
    """Return ``step_seconds`` and ``run_seconds`` of a finished run, from its event log."""
    logs = instance.all_logs(run_id)
    started: dict[str, float] = {}
    steps: dict[str, float] = {}
    for entry in logs:
        event = entry.dagster_event
        if event is None or entry.step_key is None:
            continue
        if event.event_type_value == "STEP_START":
            started[entry.step_key] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            begun = started.get(entry.step_key, entry.timestamp)
            steps[entry.step_key] = round(entry.timestamp - begun, 3)
    span = logs[-1].timestamp - logs[0].timestamp if logs else 0.0
    return {"step_seconds": steps, "run_seconds": round(span, 3)}


# The events a build's progress line counts: a step started, or ended one way or another.
_STEP_EVENTS = {
    dg.DagsterEventType.STEP_START,
    dg.DagsterEventType.STEP_SUCCESS,
    dg.DagsterEventType.STEP_FAILURE,
    dg.DagsterEventType.STEP_SKIPPED,
}


class StepProgress:
    """What the Dagster run of one repository's build has done so far: the step it started
    last and how many steps ended.

    Each ``poll`` reads only the step events logged since the last one (a cursor into the
    run's event log): reading the whole log every half second made the poller's work grow
    with the run, on the GIL the stages need. The run is the newest one of the partition
    tagged as an ``indexctl build`` created since ``started``, so a build of another
    repository at the same time is not mistaken for it.
    """

    def __init__(self, instance: dg.DagsterInstance, name: str, started: float) -> None:
        self.instance = instance
        self.filters = dg.RunsFilter(
            tags={"dagster/partition": name, **BUILD_TAGS},
            created_after=datetime.fromtimestamp(started - 1.0, UTC),
        )
        self.run_id: str | None = None
        self.cursor: str | None = None
        self.current = "starting"
        self.finished = 0

    def poll(self) -> tuple[str, int]:
        """Return (the step started last or "starting", steps ended)."""
        if self.run_id is None:
            runs = self.instance.get_runs(filters=self.filters, limit=1)
            if not runs:
                return self.current, self.finished
            self.run_id = runs[0].run_id
        while True:
            page = self.instance.get_records_for_run(
                self.run_id, cursor=self.cursor, of_type=_STEP_EVENTS
            )
            for record in page.records:
                entry = record.event_log_entry
                if entry.dagster_event.event_type == dg.DagsterEventType.STEP_START:
                    self.current = entry.step_key or self.current
                else:
                    self.finished += 1
            self.cursor = page.cursor
            if not page.has_more:
                return self.current, self.finished


def _report(result: dg.ExecuteInProcessResult) -> BuildReport:
    # ALL_ASSETS follows the stage table, which is in build order.
    summaries = []
    for assets_def in ALL_ASSETS:
        for key in assets_def.keys:
            events = result.asset_materializations_for_node(key.path[-1])
            if not events:
                summaries.append(AssetSummary(key.to_user_string(), None, None, None, {}))
                continue
            metadata = {k: v.value for k, v in events[-1].metadata.items()}
            summaries.append(
                AssetSummary(
                    key.to_user_string(),
                    bool(metadata.get("codeintel/ran")),
                    _rows(metadata),
                    metadata.get("codeintel/seconds"),
                    metadata,
                )
            )
    failures = [
        f"{event.step_key}: {_root_cause(event.event_specific_data.error)}"
        for event in result.all_events
        if event.event_type_value == "STEP_FAILURE"
    ]
    blocking = {spec.name for check in ALL_CHECKS for spec in check.check_specs if spec.blocking}
    warnings = []
    for ev in result.get_asset_check_evaluations():
        if ev.passed:
            continue
        detail = ev.metadata.get("detail")
        line = f"check {ev.asset_check_key.name} failed: {detail.value if detail else ''}"
        (failures if ev.asset_check_key.name in blocking else warnings).append(line)
    return BuildReport(
        result.success and not failures, result.run_id, summaries, failures, warnings
    )


def _root_cause(error: Any) -> str:
    """Return the message of a Dagster step failure's user error.

    The outermost ``CodeintelError`` of the cause chain, without its class name: it names
    the file and the reason (its own causes, e.g. the ``JSONDecodeError`` it explains,
    say less). Any other error is a bug: its innermost cause, with the class name.
    """
    user_errors = _user_error_names()
    innermost = error
    while error is not None:
        if error.cls_name in user_errors:
            return error.message.split(": ", 1)[-1].strip()
        innermost = error
        error = getattr(error, "cause", None)
    return innermost.message.strip() if innermost is not None else "unknown error"


def _user_error_names() -> set[str]:
    """Return the class names of the user-facing error family (``CodeintelError``'s)."""
    names = set()
    pending = [CodeintelError]
    while pending:
        cls = pending.pop()
        names.add(cls.__name__)
        pending.extend(cls.__subclasses__())
    return names
