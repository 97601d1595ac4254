"""indexctl: the verbs of the end-to-end slice and their errors on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from codeintel_assets.core import lifecycle
from codeintel_assets.core.layout import RepoLayout
from codeintel_assets_tests.support import one_line_error, run_cli


def test_repo_add_list_build_search_versions(
    capsys, fixture_repo: Path, data_dir: Path, dagster_home: Path
):
    code, out, _ = run_cli(capsys, "repo", "add", "fx", str(fixture_repo), "--exclude", "*.md")
    assert code == 0 and "registered fx" in out
    code, out, _ = run_cli(capsys, "repo", "list", "--format", "json")
    listed = json.loads(out)
    assert [r["name"] for r in listed] == ["fx"]
    assert listed[0]["exclude"] == ["*.md"]

    code, out, err = run_cli(capsys, "build", "fx", "--embedder", "hashing")
    assert code == 0, err
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "ran" in lines["chunks"] and "embedded" in lines["chunks"]
    assert "published fx version" in out

    code, out, err = run_cli(capsys, "build", "fx", "--embedder", "hashing")
    assert code == 0, err
    assert "skipped" in [line.split()[1] for line in out.splitlines() if line.startswith("chunks")]

    code, out, _ = run_cli(
        capsys, "search", "normalize vector", "--repo", "fx", "--k", "2", "--format", "json"
    )
    hits = json.loads(out)
    assert len(hits) == 2
    assert {"chunk_id", "uri", "start_line", "end_line", "lang", "score", "rank"} <= set(hits[0])
    unit_fields = {"unit_id", "kind", "name", "qualified_name", "excerpt", "truncated"}
    assert unit_fields | {"match_start_line", "match_end_line"} <= set(hits[0])
    assert not any(h["uri"].endswith(".md") for h in hits)
    # The table shows each whole definition: its header line, then its text.
    code, out, _ = run_cli(capsys, "search", "normalize vector", "--repo", "fx", "--k", "1")
    header, *body = out.splitlines()
    assert code == 0 and header.startswith("#1 ") and hits[0]["uri"] in header
    assert (
        "\n".join(line.removeprefix("    ") for line in body).strip() == hits[0]["excerpt"].strip()
    )

    code, out, _ = run_cli(capsys, "versions", "--repo", "fx", "--format", "json")
    versions = json.loads(out)
    assert len(versions) == 1 and versions[0]["current"] is True


def test_user_errors_are_one_line_and_change_nothing(
    capsys, fixture_repo: Path, data_dir: Path, dagster_home: Path, tmp_path: Path
):
    code, _, err = run_cli(capsys, "repo", "add", "ghost", str(tmp_path / "missing"))
    assert code == 1 and "does not exist" in one_line_error(err)

    code, _, err = run_cli(capsys, "search", "anything", "--repo", "nope")
    assert code == 1 and "'nope' is not registered" in one_line_error(err)

    code, _, err = run_cli(capsys, "build", "nope", "--embedder", "hashing")
    assert code == 1 and "'nope' is not registered" in one_line_error(err)

    run_cli(capsys, "repo", "add", "fx", str(fixture_repo))
    code, _, err = run_cli(capsys, "search", "anything", "--repo", "fx")
    assert code == 1 and "nothing is published" in one_line_error(err)

    assert run_cli(capsys, "build", "fx", "--embedder", "hashing")[0] == 0
    layout = RepoLayout(data_dir, "fx")
    published = lifecycle.current_version_or_none(layout)
    manifest_before = layout.version(published).version_manifest.read_bytes()

    code, _, err = run_cli(capsys, "search", "   ", "--repo", "fx")
    assert code == 1 and "query is empty" in one_line_error(err)
    code, _, err = run_cli(capsys, "rollback", "--repo", "fx")
    assert code == 1 and "no earlier version" in one_line_error(err)

    assert lifecycle.current_version_or_none(layout) == published
    assert layout.version(published).version_manifest.read_bytes() == manifest_before


def test_bad_files_are_skipped_counted_and_the_build_still_publishes(
    capsys, fixture_repo: Path, data_dir: Path, dagster_home: Path, tmp_path: Path
):
    (fixture_repo / "blob.bin").write_bytes(b"\0\1\2binary")
    (fixture_repo / "latin1.py").write_bytes("x = 'caf\xe9'\n".encode("latin-1"))
    (fixture_repo / "empty.py").write_bytes(b"")
    (fixture_repo / "big.txt").write_text("y" * (2 << 20))
    (tmp_path / "outside.py").write_text("secret = 1\n")
    os.symlink(tmp_path / "outside.py", fixture_repo / "escape.py")
    run_cli(capsys, "repo", "add", "fx", str(fixture_repo))
    code, _, err = run_cli(capsys, "build", "fx", "--embedder", "hashing")
    assert code == 0, err
    stamp = json.loads(RepoLayout(data_dir, "fx").stamp("repo_manifest").read_text())
    assert stamp["metadata"]["skip_counts"] == {
        "binary": 1,
        "not_utf8": 1,
        "empty": 1,
        "oversized": 1,
        "symlink_outside": 1,
    }


def test_console_script_exit_code_and_no_traceback(data_dir: Path):
    env = {**os.environ, "CODEINTEL_DATA": str(data_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "codeintel_assets.cli", "search", "x", "--repo", "nope"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "'nope' is not registered" in done.stderr


def test_faiss_export_idmap_and_refresh_idmap_join(
    capsys, fixture_repo: Path, data_dir: Path, dagster_home: Path, tmp_path: Path
):
    import pyarrow.parquet as pq

    run_cli(capsys, "repo", "add", "fx", str(fixture_repo))
    assert run_cli(capsys, "build", "fx", "--embedder", "hashing")[0] == 0
    out_file = tmp_path / "idmap.parquet"
    code, out, _ = run_cli(capsys, "faiss", "export-idmap", "--repo", "fx", "--out", str(out_file))
    assert code == 0
    exported = pq.read_table(out_file)
    built = pq.read_table(RepoLayout(data_dir, "fx").build.faiss_idmap)
    assert exported.column("faiss_id").to_pylist() == built.column("faiss_id").to_pylist()

    code, out, _ = run_cli(capsys, "duckdb", "refresh-idmap-join", "--repo", "fx")
    assert code == 0 and "faiss_idmap_mat refreshed" in out
    code, out, _ = run_cli(capsys, "duckdb", "refresh-idmap-join", "--repo", "fx")
    assert code == 0 and "faiss_idmap_mat unchanged" in out

    code, out, _ = run_cli(capsys, "status", "--repo", "fx", "--format", "json")
    status = json.loads(out)
    assert code == 0 and status["build_version"] == lifecycle.current_version_or_none(
        RepoLayout(data_dir, "fx")
    )


def test_a_second_build_of_the_same_repository_fails_clearly(
    capsys, fixture_repo: Path, data_dir: Path, dagster_home: Path
):
    run_cli(capsys, "repo", "add", "fx", str(fixture_repo))
    layout = RepoLayout(data_dir, "fx")
    with lifecycle.build_lock(layout):
        code, _, err = run_cli(capsys, "build", "fx", "--embedder", "hashing")
    assert code == 1
    assert "another build of repository 'fx' is running" in one_line_error(err)
    assert lifecycle.current_version_or_none(layout) is None
