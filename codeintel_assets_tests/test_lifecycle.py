"""Publish, versions, rollback, retention, the publish lock, and the CLI verbs."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from codeintel_assets.cli import main
from codeintel_assets.core import lifecycle
from codeintel_assets.core.catalog import build_catalog
from codeintel_assets.core.errors import PublishError
from codeintel_assets.core.layout import RepoLayout
from codeintel_assets.core.lifecycle import publish_build, tool_versions
from codeintel_assets.core.validation import validate_version
from codeintel_assets_tests.lifecycle_support import (
    NAME,
    assert_current_is_complete,
    context,
    new_build,
)

pytestmark = pytest.mark.integration


def versions(root: Path) -> list[str]:
    return [v["build_version"] for v in lifecycle.list_versions(RepoLayout(root, NAME))]


def test_publish_versions_and_rollback(root: Path):
    layout = RepoLayout(root, NAME)
    first = assert_current_is_complete(root)
    assert versions(root) == [first]

    new_build(root, "second")
    outcome = publish_build(context(root))
    second = outcome.build_version
    assert outcome.previous == first and not outcome.reused
    assert assert_current_is_complete(root) == second
    listed = lifecycle.list_versions(layout)
    assert [(v["build_version"], v["current"]) for v in listed] == [(second, True), (first, False)]
    assert listed[0]["chunks"] > 5

    # Publishing the same build again moves nothing and rebuilds nothing.
    again = publish_build(context(root))
    assert again.reused and again.build_version == second

    assert lifecycle.rollback(layout) == (second, first)
    assert assert_current_is_complete(root) == first
    assert lifecycle.rollback(layout, to=second) == (first, second)
    assert assert_current_is_complete(root) == second
    with pytest.raises(PublishError, match="does not exist or is incomplete"):
        lifecycle.rollback(layout, to="0123456789abcdef")
    assert lifecycle.current_version_or_none(layout) == second


def test_rollback_with_one_version_says_there_is_nothing_earlier(root: Path):
    with pytest.raises(PublishError, match="no earlier version"):
        lifecycle.rollback(RepoLayout(root, NAME))
    assert_current_is_complete(root)


def test_retention_keeps_last_n_and_never_current_or_the_one_before(root: Path):
    layout = RepoLayout(root, NAME)
    published = [lifecycle.current_version_or_none(layout)]
    for i in range(5):
        new_build(root, f"v{i}")
        published.append(publish_build(context(root, retention=3)).build_version)
    assert len(set(published)) == 6
    assert set(versions(root)) == set(published[-3:])
    assert not any((layout.versions_dir / v).exists() for v in published[:3])

    # Roll back to the oldest survivor, then publish with retention 1: the new current and
    # the version current was before it both survive; everything else goes.
    lifecycle.rollback(layout, to=published[-3])
    new_build(root, "last")
    latest = publish_build(context(root, retention=1)).build_version
    assert set(versions(root)) == {latest, published[-3]}
    assert lifecycle.prune_versions(layout, retention=0) == []
    assert assert_current_is_complete(root) == latest


def test_failed_validation_leaves_current_and_no_version(root: Path):
    layout = RepoLayout(root, NAME)
    before = lifecycle.current_version_or_none(layout)
    new_build(root, "invalid")
    with pytest.raises(PublishError, match="failed validation: broken on purpose"):
        lifecycle.publish_version(
            layout,
            build_catalog=lambda v: build_catalog(v).to_dict(),
            validate=lambda v: ["broken on purpose"],
        )
    assert assert_current_is_complete(root) == before
    assert versions(root) == [before]
    assert sorted(p.name for p in layout.versions_dir.iterdir() if p.is_dir()) == [before]


def test_two_publishes_at_once_one_wins_the_other_fails_clearly(root: Path):
    layout = RepoLayout(root, NAME)
    before = lifecycle.current_version_or_none(layout)
    new_build(root, "contended")
    inside, release = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def slow_catalog(version):
        inside.set()
        assert release.wait(30)
        return build_catalog(version).to_dict()

    def first_publisher():
        try:
            outcome["won"] = lifecycle.publish_version(
                layout, slow_catalog, validate_version, tool_versions(context(root))
            )
        except Exception as exc:  # surfaced by the assertions below
            outcome["error"] = exc

    winner = threading.Thread(target=first_publisher)
    winner.start()
    try:
        assert inside.wait(30)
        with pytest.raises(PublishError, match="another publish of repository 'life' is running"):
            publish_build(context(root))
        with pytest.raises(PublishError, match="another publish"):
            lifecycle.rollback(layout)
        # Mid-publish, readers still see the previous complete version.
        assert assert_current_is_complete(root) == before
    finally:
        release.set()
        winner.join(60)
    assert "error" not in outcome
    won = outcome["won"]
    assert assert_current_is_complete(root) == won.build_version != before
    # The lock is free again.
    assert publish_build(context(root)).reused


def test_cli_stage_publish_versions_rollback(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    monkeypatch.setenv("CODEINTEL_DATA", str(root))
    layout = RepoLayout(root, NAME)
    first = lifecycle.current_version_or_none(layout)
    new_build(root, "cli")

    assert main(["stage", "--repo", NAME]) == 0
    staged = capsys.readouterr().out
    version = staged.split()[1]
    assert staged.startswith("staged ") and (layout.versions_dir / version).is_dir()
    assert lifecycle.current_version_or_none(layout) == first  # staging does not publish

    assert main(["publish", "--repo", NAME]) == 0
    assert capsys.readouterr().out.strip() == f"published {version} (previous: {first})"
    assert assert_current_is_complete(root) == version

    assert main(["versions", "--repo", NAME, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["build_version"], r["current"]) for r in rows] == [(version, True), (first, False)]

    assert main(["rollback", "--repo", NAME]) == 0
    assert capsys.readouterr().out.strip() == f"current: {version} -> {first}"
    assert main(["rollback", "--repo", NAME, "--to", version]) == 0
    assert capsys.readouterr().out.strip() == f"current: {first} -> {version}"
    assert main(["rollback", "--repo", NAME, "--to", "nope"]) == 1
    assert "'nope' is not a build version" in capsys.readouterr().err
    assert main(["rollback", "--repo", NAME, "--to", "0123456789abcdef"]) == 1
    assert "does not exist or is incomplete" in capsys.readouterr().err
    assert assert_current_is_complete(root) == version


def test_a_staged_version_survives_clean_up_and_is_what_publish_publishes(root: Path):
    layout = RepoLayout(root, NAME)
    first = lifecycle.current_version_or_none(layout)
    new_build(root, "staged")
    with lifecycle.publish_lock(layout):
        staged, _, _ = lifecycle.stage_for_publish(layout)
    new_build(root, "later")  # the build moves on; the operator staged the earlier one
    with lifecycle.publish_lock(layout):
        assert lifecycle.remove_crash_leftovers(layout) == []
    assert lifecycle.staged_version_or_none(layout) == staged

    outcome = publish_build(context(root), staged=staged)
    assert (outcome.build_version, outcome.previous) == (staged, first)
    assert assert_current_is_complete(root) == staged
    assert lifecycle.staged_version_or_none(layout) is None
    assert not layout.staged_pointer.exists()
    # Without a staged version, publish stages the build as it is now: a third version.
    assert publish_build(context(root)).build_version not in (first, staged)


def test_stage_version_puts_given_files_in_place_of_built_ones(root: Path, tmp_path: Path):
    layout = RepoLayout(root, NAME)
    given = tmp_path / "report.md"
    given.write_text("# the operator's report\n")
    plain, _, _ = lifecycle.stage_version(layout)
    replaced, version, _ = lifecycle.stage_version(
        layout, {"eval/report.md": given, "eval/report.png": None}
    )
    assert replaced != plain
    assert version.eval_report.read_text() == "# the operator's report\n"
    assert not version.eval_plot.exists()
    assert layout.build.eval_plot.exists()  # the build area keeps its own files
