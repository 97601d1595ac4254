"""`indexctl build`'s runner: a build with nothing stale launches no Dagster run."""

from __future__ import annotations

import json
from pathlib import Path

from codeintel_assets.core.layout import RepoLayout
from codeintel_assets.core.stages import STAGES
from codeintel_assets_tests.support import run_cli


def test_a_noop_build_launches_no_dagster_run_and_an_edit_does(
    capsys, fixture_repo: Path, data_dir: Path, dagster_home: Path
):
    run_cli(capsys, "repo", "add", "fx", str(fixture_repo))
    code, out, err = run_cli(capsys, "build", "fx", "--embedder", "hashing", "--json")
    assert code == 0, err
    first = json.loads(out)
    assert first["dagster_run_id"] and all(s["ran"] for s in first["stages"])
    chunks = next(s for s in first["stages"] if s["asset"] == "chunks")
    assert chunks["metadata"]["peak_rss_mib"] >= chunks["metadata"]["rss_before_mib"]

    code, out, err = run_cli(capsys, "build", "fx", "--embedder", "hashing")
    assert code == 0, err
    assert "up to date: no stage was stale, no Dagster run" in out
    assert "published fx version" in out
    last = json.loads(RepoLayout(data_dir, "fx").last_build.read_text())
    assert last["success"] and last["dagster_run_id"] is None and last["ran"] == []

    code, out, err = run_cli(capsys, "build", "fx", "--embedder", "hashing", "--json")
    noop = json.loads(out)
    assert noop["dagster_run_id"] is None
    assert [s["asset"] for s in noop["stages"]] == [stage.name for stage in STAGES]
    assert not any(s["ran"] for s in noop["stages"])

    (fixture_repo / "pkg" / "parse.py").write_text("def parse_config(text):\n    return text\n")
    code, out, err = run_cli(capsys, "build", "fx", "--embedder", "hashing", "--json")
    assert code == 0, err
    edited = json.loads(out)
    ran = {s["asset"] for s in edited["stages"] if s["ran"]}
    assert edited["dagster_run_id"] and {"repo_manifest", "ast_nodes", "chunks"} <= ran
