"""The repository sensor and the cheap fingerprint it uses; the schedule is in the code
location (its job: test_schedules.py)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import dagster as dg
import pytest

from codeintel_assets.core import registry
from codeintel_assets.core.watch import folder_fingerprint, git_fingerprint, repo_fingerprint
from codeintel_assets.definitions import ALL_ASSETS, defs
from codeintel_assets.partitions import REPOS
from codeintel_assets.resources import CodeintelResource
from codeintel_assets.schedules import nightly_recheck
from codeintel_assets.sensors import (
    DEFAULT_SENSOR_INTERVAL_S,
    repo_build_job,
    repo_change_sensor,
)
from codeintel_assets_tests.support import write_fixture_repo


@pytest.fixture
def instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.ephemeral()


def tick(instance: dg.DagsterInstance, data_dir: Path, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"codeintel": CodeintelResource(data_root=str(data_dir))},
    )
    result = repo_change_sensor(context)
    # What the daemon does with a result: add the partitions, persist the cursor.
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def requested(result: dg.SensorResult) -> dict[str, str]:
    return {r.partition_key: r.run_key for r in result.run_requests}


def edit(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    # Same-second edits must still move the mtime the non-git fingerprint reads.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_sensor_requests_runs_only_for_changed_repositories(
    tmp_path: Path, data_dir: Path, instance: dg.DagsterInstance
):
    alpha = write_fixture_repo(tmp_path / "alpha")
    beta = write_fixture_repo(tmp_path / "beta", git=False)
    registry.add_repo(registry.RepoConfig(name="alpha", path=str(alpha)), data_dir)
    registry.add_repo(registry.RepoConfig(name="beta", path=str(beta)), data_dir)

    first = tick(instance, data_dir, None)
    assert set(requested(first)) == {"alpha", "beta"}
    assert [list(r.partition_keys) for r in first.dynamic_partitions_requests] == [
        ["alpha", "beta"]
    ]
    assert set(instance.get_dynamic_partitions(REPOS.name)) == {"alpha", "beta"}
    assert all(r.job_name is None or r.job_name == repo_build_job.name for r in first.run_requests)

    quiet = tick(instance, data_dir, first.cursor)
    assert quiet.run_requests == []
    assert quiet.dynamic_partitions_requests == []
    assert quiet.cursor == first.cursor

    edit(alpha / "pkg" / "parse.py", "def parse_config(text):\n    return text\n")
    changed = tick(instance, data_dir, quiet.cursor)
    assert set(requested(changed)) == {"alpha"}

    edit(beta / "web" / "app.js", "function greet() { return 1; }\n")
    changed_beta = tick(instance, data_dir, changed.cursor)
    assert set(requested(changed_beta)) == {"beta"}

    # The cursor is the only memory between ticks: an old cursor asks again, same keys.
    replay = tick(instance, data_dir, quiet.cursor)
    assert requested(replay)["alpha"] == requested(changed)["alpha"]


def test_sensor_adds_a_newly_registered_repository(
    tmp_path: Path, data_dir: Path, instance: dg.DagsterInstance
):
    alpha = write_fixture_repo(tmp_path / "alpha")
    registry.add_repo(registry.RepoConfig(name="alpha", path=str(alpha)), data_dir)
    first = tick(instance, data_dir, None)
    assert instance.get_dynamic_partitions(REPOS.name) == ["alpha"]

    gamma = write_fixture_repo(tmp_path / "gamma")
    registry.add_repo(registry.RepoConfig(name="gamma", path=str(gamma)), data_dir)
    second = tick(instance, data_dir, first.cursor)
    assert [list(r.partition_keys) for r in second.dynamic_partitions_requests] == [["gamma"]]
    assert set(requested(second)) == {"gamma"}
    assert sorted(instance.get_dynamic_partitions(REPOS.name)) == ["alpha", "gamma"]
    assert set(json.loads(second.cursor)) == {"alpha", "gamma"}


def test_undoing_an_edit_is_a_new_run_key(
    tmp_path: Path, data_dir: Path, instance: dg.DagsterInstance
):
    alpha = write_fixture_repo(tmp_path / "alpha")
    registry.add_repo(registry.RepoConfig(name="alpha", path=str(alpha)), data_dir)
    target = alpha / "pkg" / "parse.py"
    original = target.read_text()

    keys = []
    cursor = None
    for text in (None, "x = 1\n", original):
        if text is not None:
            edit(target, text)
            if text == original:
                subprocess.run(["git", "-C", str(alpha), "checkout", "--", "."], check=True)
        result = tick(instance, data_dir, cursor)
        cursor = result.cursor
        keys.append(requested(result)["alpha"])
    # The work tree is back to its first state (same fingerprint), yet the index must be
    # rebuilt from the edited one: a de-duplicating key would silently skip that run.
    assert keys[2].split(":")[-1] == keys[0].split(":")[-1]
    assert len(set(keys)) == 3


def test_a_missing_repository_is_skipped_not_fatal(
    tmp_path: Path, data_dir: Path, instance: dg.DagsterInstance
):
    alpha = write_fixture_repo(tmp_path / "alpha")
    gone = write_fixture_repo(tmp_path / "gone", git=False)
    registry.add_repo(registry.RepoConfig(name="alpha", path=str(alpha)), data_dir)
    registry.add_repo(registry.RepoConfig(name="gone", path=str(gone)), data_dir)
    first = tick(instance, data_dir, None)
    for path in sorted(gone.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    gone.rmdir()
    second = tick(instance, data_dir, first.cursor)
    assert second.run_requests == []
    assert json.loads(second.cursor)["gone"] == json.loads(first.cursor)["gone"]


def test_git_fingerprint_sees_commits_edits_and_new_files(tmp_path: Path):
    repo = write_fixture_repo(tmp_path / "repo")
    clean = git_fingerprint(repo)
    assert clean is not None and git_fingerprint(repo) == clean

    edit(repo / "pkg" / "parse.py", "a = 1\n")
    dirty = git_fingerprint(repo)
    assert dirty != clean
    edit(repo / "pkg" / "parse.py", "a = 22\n")
    assert git_fingerprint(repo) != dirty  # still "M" in the status; size and mtime moved

    (repo / "new.py").write_text("b = 2\n")
    untracked = git_fingerprint(repo)
    assert untracked not in {clean, dirty}

    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t"}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "x"], check=True, env=env)
    committed = git_fingerprint(repo)
    assert committed not in {clean, dirty, untracked}

    (repo / ".gitignore").write_text("ignored/\n")
    subprocess.run(["git", "-C", str(repo), "add", ".gitignore"], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "ignore"], check=True, env=env)
    settled = git_fingerprint(repo)
    (repo / "ignored").mkdir()
    (repo / "ignored" / "big.py").write_text("c = 3\n")
    assert git_fingerprint(repo) == settled  # ignored files are never indexed


def test_folder_fingerprint_follows_selection(tmp_path: Path):
    repo = write_fixture_repo(tmp_path / "plain", git=False)
    assert git_fingerprint(repo) is None
    base = folder_fingerprint(repo)
    assert folder_fingerprint(repo) == base
    edit(repo / "README.md", "# changed\n")
    assert folder_fingerprint(repo) != base

    only_py = folder_fingerprint(repo, include=["*.py"])
    edit(repo / "web" / "app.js", "// changed\n")
    assert folder_fingerprint(repo, include=["*.py"]) == only_py
    (repo / "node_modules").mkdir()
    (repo / "node_modules" / "dep.js").write_text("x\n")
    assert folder_fingerprint(repo, include=["*.py"]) == only_py

    config = registry.RepoConfig(name="plain", path=str(repo))
    narrowed = registry.RepoConfig(name="plain", path=str(repo), exclude=["web/"])
    assert repo_fingerprint(config) != repo_fingerprint(narrowed)


def test_sensor_and_schedule_are_in_the_code_location():
    assert defs.resolve_sensor_def("repo_change_sensor").minimum_interval_seconds == (
        DEFAULT_SENSOR_INTERVAL_S
    )
    assert defs.resolve_schedule_def("nightly_recheck") is not None
    assert nightly_recheck.job_name == "nightly_recheck_job"
    job = defs.resolve_job_def("repo_build_job")
    nodes = set(job.graph.node_dict)
    assert {"repo_manifest", "chunks", "duckdb_catalog", "published_index"} <= nodes
    assert "duckdb_catalog_v_chunks_not_empty" in nodes  # the blocking checks run too


def test_eager_automation_downstream_of_the_manifest_follows_an_update():
    # The conditions the lead puts on every asset downstream of `repo_manifest`.
    downstream = dg.AssetSelection.assets("repo_manifest").downstream(include_self=False)
    keys = downstream.resolve(defs.resolve_asset_graph())
    automated = dg.map_asset_specs(
        lambda spec: (
            spec.replace_attributes(automation_condition=dg.AutomationCondition.eager())
            if spec.key in keys
            else spec
        ),
        list(ALL_ASSETS),
    )
    automated = dg.Definitions(assets=automated, resources={"codeintel": CodeintelResource()})
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(REPOS.name, ["a", "b"])
        first = dg.evaluate_automation_conditions(defs=automated, instance=instance)
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key="repo_manifest", partition="a")
        )
        second = dg.evaluate_automation_conditions(
            defs=automated, instance=instance, cursor=first.cursor
        )
    assert sum(r.true_subset.size for r in first.results) == 0  # nothing built yet: no run
    requested_now = {
        (r.key.to_user_string(), partition)
        for r in second.results
        for partition in r.true_subset.expensively_compute_partition_keys()
    }
    # The whole graph below the updated partition is planned in one go; nothing for "b".
    assert requested_now == {(key.to_user_string(), "a") for key in keys}
