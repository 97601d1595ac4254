"""The repository sensor: rebuild a repository's partition when its work tree changes.

Every tick fingerprints each registered repository cheaply (``core.watch``), adds
a partition for repositories the instance does not know yet, and requests a run of
the whole graph only for repositories whose fingerprint moved since the cursor.
The content checksums inside the run then decide what is really rebuilt.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import dagster as dg

from codeintel_assets.core import registry
from codeintel_assets.core.errors import CodeintelError
from codeintel_assets.core.watch import repo_fingerprint
from codeintel_assets.partitions import REPOS
from codeintel_assets.resources import CodeintelResource

SENSOR_INTERVAL_ENV = "CODEINTEL_SENSOR_INTERVAL_S"
DEFAULT_SENSOR_INTERVAL_S = 60

# The whole graph (assets and their checks) of one repository partition.
repo_build_job = dg.define_asset_job(
    "repo_build_job",
    selection=dg.AssetSelection.all(),
    partitions_def=REPOS,
    description="Rebuild one repository: every asset and check of its partition.",
)


def sensor_interval_s() -> int:
    """Return the sensor's minimum interval: ``$CODEINTEL_SENSOR_INTERVAL_S`` or 60 s."""
    return int(os.environ.get(SENSOR_INTERVAL_ENV, DEFAULT_SENSOR_INTERVAL_S))


def read_cursor(cursor: str | None) -> dict[str, dict[str, Any]]:
    """Return the sensor cursor: per repository its last fingerprint and change count."""
    return json.loads(cursor) if cursor else {}


def run_key(name: str, changes: int, fingerprint: str) -> str:
    """Return the run key of a repository's ``changes``-th observed change.

    The change count makes a return to an earlier state (an edit undone) a new run,
    while a tick evaluated twice from the same cursor still asks for the same key.
    """
    return f"{name}:{changes}:{fingerprint}"


def evaluate_repositories(
    cursor: dict[str, dict[str, Any]],
    repos: list[registry.RepoConfig],
    known_partitions: set[str],
    log: Any,
) -> dg.SensorResult:
    """Return the tick's run requests, partition additions and next cursor."""
    requests = []
    next_cursor: dict[str, dict[str, Any]] = {}
    for repo in repos:
        seen = cursor.get(repo.name)
        try:
            fingerprint = repo_fingerprint(repo)
        except CodeintelError as exc:
            log.warning(f"skipping {repo.name}: {exc}")
            if seen is not None:
                next_cursor[repo.name] = seen
            continue
        if seen is not None and seen["fingerprint"] == fingerprint:
            next_cursor[repo.name] = seen
            continue
        changes = (seen["changes"] + 1) if seen is not None else 1
        next_cursor[repo.name] = {"fingerprint": fingerprint, "changes": changes}
        requests.append(
            dg.RunRequest(
                run_key=run_key(repo.name, changes, fingerprint),
                partition_key=repo.name,
                tags={"codeintel/source": "repo_change_sensor"},
            )
        )
    new = sorted({r.name for r in repos} - known_partitions)
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[REPOS.build_add_request(new)] if new else [],
        cursor=json.dumps(next_cursor, sort_keys=True),
    )


@dg.sensor(
    job=repo_build_job,
    minimum_interval_seconds=sensor_interval_s(),
    description="Rebuild a repository when its git HEAD or work tree changes.",
)
def repo_change_sensor(
    context: dg.SensorEvaluationContext, codeintel: CodeintelResource
) -> dg.SensorResult:
    """Request a run for every registered repository whose work tree changed."""
    root = Path(codeintel.data_root) if codeintel.data_root else None
    known = set(context.instance.get_dynamic_partitions(REPOS.name))
    return evaluate_repositories(
        read_cursor(context.cursor), registry.list_repos(root), known, context.log
    )


ALL_SENSORS = [repo_change_sensor]
