"""Hostile input (issue 11): one bad file or state never stops, hangs or leaks into a build.

Every case makes the hostile file or state in a temp dir, runs the real CLI (or the
real pipeline through Dagster), and checks the message, the exit code and what is
published. F-numbers are the issue's.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest

from codeintel_assets.cli import main
from codeintel_assets.core import lifecycle, registry
from codeintel_assets.core.checksums import write_text_atomic
from codeintel_assets.core.chunking import chunk_file
from codeintel_assets.core.embedding import HashingEmbedder
from codeintel_assets.core.layout import PROJECT_ROOT, RepoLayout
from codeintel_assets.core.scip import decode_scip_file
from codeintel_assets.core.stamps import read_stamp
from codeintel_assets_tests.support import (
    FIXTURE_FILES,
    materialize_partition,
    one_line_error,
    write_fixture_repo,
)
from codeintel_assets_tests.support import run_cli as cli

NOBODY = 65534


def git_commit_all(repo: Path) -> None:
    write_fixture_repo(repo, files={}, git=True)


# -- F1, F2, F5, F6: one tree full of hostile files, built and published -----------------

MARKERS = (
    "outside_link",
    "root:x:0",
    "OTHER_REPO_DOC_MARKER",
    "other_link",
    "oversized_marker_fn",
    "big_mod",
    "excluded_marker_fn",
    "hidden_mod",
    "bad_name_marker",
    "loop_a",
    "loop_b",
)
LONG_LINE_CHARS = 1_000_000  # under the 1 MiB size limit: indexed, as one line


def hostile_tree(tmp: Path) -> Path:
    """The fixture repository plus every file the manifest must keep out of the index."""
    other = tmp / "other_repo"
    other.mkdir()
    (other / "secret_mod.py").write_text(
        'def other_repo_function():\n    """OTHER_REPO_DOC_MARKER lives in another repository."""\n'
    )
    repo = write_fixture_repo(tmp / "hostile", git=False)
    os.symlink("/etc/passwd", repo / "outside_link.py")  # F6: the leak
    os.symlink(other / "secret_mod.py", repo / "other_link.py")  # F6: another repository
    (repo / "big_mod.py").write_text(  # F6: skipped as oversized, never indexed
        "def oversized_marker_fn():\n    return 1\n" + "value = 1\n" * 120_000
    )
    (repo / "excluded").mkdir()
    (repo / "excluded" / "hidden_mod.py").write_text("def excluded_marker_fn():\n    return 2\n")
    os.symlink("loop_b.py", repo / "loop_a.py")  # F1
    os.symlink("loop_a.py", repo / "loop_b.py")
    (repo / os.fsdecode(b"caf\xe9.py")).write_text("def bad_name_marker():\n    pass\n")  # F2
    words = " ".join(f"w{i}" for i in range(LONG_LINE_CHARS // 7))  # F5: one ~1 MB line
    (repo / "data").mkdir()
    (repo / "data" / "long_line.txt").write_text(words[:LONG_LINE_CHARS] + "\n")
    git_commit_all(repo)
    return repo


def catalog_rows(catalog: Path) -> dict[str, list[tuple]]:
    """Return every row of every table and view of a catalog, by name."""
    with duckdb.connect(str(catalog), read_only=True) as con:
        names = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        names += [
            r[0]
            for r in con.execute(
                "SELECT view_name FROM duckdb_views() WHERE NOT internal"
            ).fetchall()
        ]
        return {name: con.execute(f'SELECT * FROM "{name}"').fetchall() for name in names}


def uri_values(catalog: Path) -> dict[str, set[str]]:
    """Return, per table or view, the values of its columns that hold file paths."""
    found: dict[str, set[str]] = {}
    with duckdb.connect(str(catalog), read_only=True) as con:
        columns = con.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE column_name IN ('uri', 'src_uri', 'dst_uri')"
        ).fetchall()
        for table, column in columns:
            values = con.execute(f'SELECT DISTINCT "{column}" FROM "{table}"').fetchall()
            found.setdefault(table, set()).update(v for (v,) in values if v is not None)
    return found


@pytest.mark.slow
def test_hostile_tree_is_skipped_counted_and_no_table_names_a_file_outside_the_manifest(
    capsys, tmp_path: Path, data_dir: Path, dagster_home: Path
):
    repo = hostile_tree(tmp_path)
    code, out, err = cli(capsys, "repo", "add", "hostile", str(repo), "--exclude", "excluded/")
    assert code == 0, err
    code, out, err = cli(capsys, "build", "hostile", "--embedder", "hashing")
    assert code == 0, err
    assert "published hostile version" in out

    layout = RepoLayout(data_dir, "hostile")
    counts = read_stamp(layout, "repo_manifest")["metadata"]["skip_counts"]
    assert counts == {
        "symlink_outside": 2,  # /etc/passwd and the other repository's file
        "oversized": 1,
        "broken_symlink": 2,  # the loop, both ends
        "bad_name": 1,
    }
    skips = {
        row["uri"]: (row["reason"], row["detail"])
        for row in pq.read_table(layout.build.manifest_skips).to_pylist()
    }
    assert skips["loop_a.py"] == ("broken_symlink", "symlink loop")
    assert skips["caf\\xe9.py"] == ("bad_name", "file name is not valid UTF-8")

    current = lifecycle.current_layout(layout)
    manifest_uris = set(pq.read_table(current.repo_manifest).column("uri").to_pylist())
    assert "data/long_line.txt" in manifest_uris and "pkg/vectors.py" in manifest_uris
    # F6: scip-python saw only manifest files; no table names any other file...
    documents = {d.relative_path for d in decode_scip_file(current.scip_index).documents}
    assert documents and documents <= manifest_uris
    by_table = uri_values(current.catalog)
    assert {"v_chunks", "scip_occurrences", "scip_symbols", "ast_nodes", "cst_nodes"} <= set(
        by_table
    )
    for table, uris in by_table.items():
        assert uris <= manifest_uris, (table, uris - manifest_uris)
    # ...and no row of any table holds a name or text of a file outside the manifest.
    for table, rows in catalog_rows(current.catalog).items():
        text = repr(rows)
        assert not [m for m in MARKERS if m in text], table

    # F5: the ~1 MB line was chunked (whole, in order) within the build.
    chunks = pq.read_table(current.chunks, columns=["uri", "start_byte", "content"]).to_pylist()
    long_line = sorted(
        (c for c in chunks if c["uri"] == "data/long_line.txt"), key=lambda c: c["start_byte"]
    )
    assert len(long_line) > 100
    assert "".join(c["content"] for c in long_line) == (repo / "data/long_line.txt").read_text()


def test_an_over_long_line_is_tokenized_a_bounded_number_of_times():
    """F5: the cut measures each window alone, so tokenized text stays linear in the line."""
    embedder = HashingEmbedder()
    tokenized = 0

    def counting(texts: list[str]) -> list[int]:
        nonlocal tokenized
        tokenized += sum(len(t) for t in texts)
        return embedder.count_tokens(texts)

    for chars in (50_000, 400_000):
        tokenized = 0
        line = " ".join(f"w{i}" for i in range(chars // 6))[:chars]
        chunks = chunk_file("r", "long.txt", line + "\n", "text", 128, counting)
        assert "".join(c.content for c in chunks) == line + "\n"
        assert max(embedder.count_tokens([c.content for c in chunks])) <= 128
        # The whole line once, then each window about once (the former cut: ~chars²/window).
        assert tokenized <= 4 * chars, (chars, tokenized)


# -- F3, F4: unreadable file and folder, as an unprivileged user -------------------------


def run_unprivileged(function: Callable[[], Any]) -> Any:
    """Run ``function`` as an unprivileged user and return its result.

    As root (which ignores ``chmod 000``) a forked child drops to ``nobody`` with
    ``os.setuid``: the interpreter is already loaded, so it need not be readable by
    ``nobody``. Any other user is unprivileged already and runs it here.
    """
    if os.geteuid() != 0:
        return function()
    context = multiprocessing.get_context("fork")
    queue = context.Queue()

    def child() -> None:
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            queue.put(("ok", function()))
        except BaseException as exc:  # reported to the parent, which fails the test
            queue.put(("error", repr(exc)))

    process = context.Process(target=child)
    process.start()
    state, value = queue.get(timeout=600)
    process.join(60)
    assert state == "ok", value
    return value


def closed_to_others(*paths: Path) -> Path | None:
    """Return the first folder on the way to ``paths`` that other users cannot enter
    (no ``o+x``), or None: an unprivileged process reads the virtualenv and the project
    lazily (Dagster's migration scripts, scip-python), so it must reach them."""
    for path in paths:
        for folder in [path, *path.parents]:
            if folder.is_dir() and not folder.stat().st_mode & stat.S_IXOTH:
                return folder
    return None


def captured_cli(*argv: str) -> tuple[int, str, str]:
    """Run indexctl in this process with stdout and stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = main(list(argv))
    finally:
        sys.stdout, sys.stderr = saved
    return code, out.getvalue(), err.getvalue()


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork() to drop privileges")
def test_unreadable_file_and_folder_are_skipped_and_counted_for_an_unprivileged_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    closed = closed_to_others(Path(dg.__file__).parent, PROJECT_ROOT)
    if os.geteuid() == 0 and closed is not None:
        pytest.skip(f"{closed} is closed to other users: 'nobody' cannot load the build")
    # A folder nobody can use (pytest's tmp_path is private to root).
    base = Path(tempfile.mkdtemp(prefix="codeintel-unprivileged-"))
    try:
        repo = write_fixture_repo(base / "repo")
        (repo / "noread.py").write_text("SECRET = 'unreadable file'\n")  # F3
        (repo / "locked").mkdir()  # F4: scip-python's virtualenv probe tripped on it
        (repo / "locked" / "pyvenv.cfg").write_text("home = /usr\n")
        (repo / "locked" / "inner.py").write_text("HIDDEN = 'unreadable folder'\n")
        for home in ("data", "dagster_home", "home"):
            (base / home).mkdir()
        (base / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        if os.geteuid() == 0:
            for path in [base, *base.rglob("*")]:
                os.lchown(path, NOBODY, NOBODY)
        (repo / "noread.py").chmod(0)
        (repo / "locked").chmod(0)
        monkeypatch.setenv("CODEINTEL_DATA", str(base / "data"))
        monkeypatch.setenv("DAGSTER_HOME", str(base / "dagster_home"))
        monkeypatch.setenv("HOME", str(base / "home"))
        # Warm up: load every module the build needs while we may still read them all.
        registry.add_repo(registry.RepoConfig(name="warm", path=str(repo)), tmp_path / "warm")
        assert materialize_partition("warm", tmp_path / "warm").success

        def build() -> tuple:
            added = captured_cli("repo", "add", "locked", str(repo))
            built = captured_cli("build", "locked", "--embedder", "hashing")
            searched = captured_cli("search", "unreadable", "--repo", "locked", "--mode", "bm25")
            return added, built, searched

        added, built, searched = run_unprivileged(build)
        assert added[0] == 0, added
        assert built[0] == 0, built
        assert "published locked version" in built[1]
        layout = RepoLayout(base / "data", "locked")
        skips = {
            r["uri"]: (r["reason"], r["detail"])
            for r in pq.read_table(layout.build.manifest_skips).to_pylist()
        }
        assert skips["noread.py"] == ("unreadable", "cannot read: Permission denied")
        assert skips["locked/"][0] == "unreadable"
        counts = read_stamp(layout, "repo_manifest")["metadata"]["skip_counts"]
        assert counts == {"unreadable": 2}
        current = lifecycle.current_layout(layout)
        uris = set(pq.read_table(current.chunks).column("uri").to_pylist())
        assert "pkg/vectors.py" in uris and not {"noread.py", "locked/inner.py"} & uris
        assert searched[0] == 0 and "noread" not in searched[1] and "inner.py" not in searched[1]
    finally:
        for path in (base / "repo" / "noread.py", base / "repo" / "locked"):
            if path.exists() or path.is_symlink():
                path.chmod(0o700)
        shutil.rmtree(base, ignore_errors=True)


# -- F7, F9, F14, F16 and a second registration: the registry ----------------------------


def test_a_name_ending_in_a_newline_is_refused(capsys, fixture_repo: Path, data_dir: Path):
    code, _, err = cli(capsys, "repo", "add", "trail\n", str(fixture_repo))
    assert code == 1 and "'trail\\n' is not valid" in one_line_error(err)
    assert not (data_dir / "repos.json").exists()


def test_parallel_registrations_are_all_kept(
    fixture_repo: Path, data_dir: Path, dagster_home: Path
):
    """F9: eight `indexctl repo add` at once; each must land in repos.json."""
    from codeintel_assets.partitions import REPOS
    from codeintel_assets.runner import dagster_instance

    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(8)

    def add(number: int) -> None:
        barrier.wait()
        code, out, err = captured_cli("repo", "add", f"race{number}", str(fixture_repo))
        os._exit(0 if code == 0 and f"registered race{number}" in out else 1)

    processes = [context.Process(target=add, args=(n,)) for n in range(8)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(300)
    assert [p.exitcode for p in processes] == [0] * 8
    names = sorted(json.loads((data_dir / "repos.json").read_text())["repos"])
    assert names == [f"race{n}" for n in range(8)]
    assert set(names) <= set(dagster_instance().get_dynamic_partitions(REPOS.name))


def test_given_artifact_paths_are_checked_and_stored_absolute(
    capsys,
    fixture_repo: Path,
    data_dir: Path,
    dagster_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    """F14: a relative --scip path must not depend on where `build` runs later."""
    given = tmp_path / "given"
    given.mkdir()
    (given / "modules.jsonl").write_text(
        '{"module_id": "pkg", "uri_prefix": "pkg/", "language": "python"}\n'
    )
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(
        capsys, "repo", "add", "rel", str(fixture_repo), "--modules-jsonl", "given/modules.jsonl"
    )
    assert code == 0, err
    stored = json.loads((data_dir / "repos.json").read_text())["repos"]["rel"]
    assert stored["modules_jsonl"] == str(given / "modules.jsonl")
    code, _, err = cli(capsys, "repo", "add", "bad", str(fixture_repo), "--scip", "nowhere.scip")
    assert code == 1 and "nowhere.scip: scip_index given for 'bad' is not a file" in (
        one_line_error(err)
    )
    assert "bad" not in json.loads((data_dir / "repos.json").read_text())["repos"]


def test_registering_a_name_again_needs_replace(
    capsys, fixture_repo: Path, data_dir: Path, dagster_home: Path, tmp_path: Path
):
    """Doubtful item, decided: a name is not silently re-pointed; the same settings are a no-op."""
    other = write_fixture_repo(tmp_path / "other", git=False)
    assert cli(capsys, "repo", "add", "fx", str(fixture_repo))[0] == 0
    assert cli(capsys, "repo", "add", "fx", str(fixture_repo))[0] == 0
    code, _, err = cli(capsys, "repo", "add", "fx", str(other))
    assert code == 1 and "'fx' is already registered" in one_line_error(err)
    assert registry.get_repo("fx").path == str(fixture_repo.resolve())
    assert cli(capsys, "repo", "add", "fx", str(other), "--replace")[0] == 0
    assert registry.get_repo("fx").path == str(other.resolve())


def test_a_data_root_that_is_a_file_is_one_clear_error(
    capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """F16."""
    not_a_folder = tmp_path / "data"
    not_a_folder.write_text("oops\n")
    monkeypatch.setenv("CODEINTEL_DATA", str(not_a_folder))
    for argv in (["repo", "list"], ["search", "x"], ["versions"]):
        code, _, err = cli(capsys, *argv)
        assert code == 1 and f"data root {not_a_folder}" in one_line_error(err)
    assert not_a_folder.read_text() == "oops\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"repos": []}, 'expected an object {"repos"'),
        ({"repos": {"x": {"path": 5}}}, "repository 'x': field 'path' must be str, got int"),
        ({"repos": {"x": {"path": "/tmp", "include": "*.py"}}}, "field 'include' must be list"),
        ({"repos": {"x": {}}}, "repository 'x': field 'path' is missing"),
        ({"repos": {"bad\nname": {"path": "/tmp"}}}, "is not valid"),
    ],
    ids=["repos-list", "path-int", "include-str", "no-path", "bad-name"],
)
def test_a_wrongly_typed_registry_is_one_clear_error(
    capsys, data_dir: Path, content: dict, message: str
):
    """F16."""
    (data_dir / "repos.json").write_text(json.dumps(content))
    for argv in (["repo", "list"], ["build", "x", "--embedder", "hashing"]):
        code, _, err = cli(capsys, *argv)
        line = one_line_error(err)
        assert code == 1 and str(data_dir / "repos.json") in line and message in line


# -- F11, F12, F13, S1: builds that cannot succeed fail once, clearly --------------------


def assert_nothing_published(data_dir: Path, name: str) -> None:
    layout = RepoLayout(data_dir, name)
    assert lifecycle.current_version_or_none(layout) is None
    assert not layout.versions_dir.exists() or not any(layout.versions_dir.iterdir())


def test_selections_without_files_are_refused_or_fail_at_the_manifest(
    capsys, data_dir: Path, dagster_home: Path, tmp_path: Path
):
    """F11 + S1: 'no indexable files', in one line, from repo_manifest; -v shows Dagster's log."""
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli(capsys, "repo", "add", "empty", str(empty))[0] == 0
    code, out, err = cli(capsys, "build", "empty", "--embedder", "hashing")
    line = one_line_error(err)
    assert code == 1 and out == ""
    assert f"failed at repo_manifest: no indexable files in {empty.resolve()}" in line
    assert "-v shows the Dagster log" in line
    assert_nothing_published(data_dir, "empty")

    repo = write_fixture_repo(tmp_path / "repo")
    # A glob that cannot select anything is refused when the repository is registered.
    code, _, err = cli(capsys, "repo", "add", "bracket", str(repo), "--include", "[")
    assert code == 1 and "glob '[': not a valid pattern" in one_line_error(err)
    # One that is valid but selects nothing fails at the manifest, saying so.
    assert cli(capsys, "repo", "add", "nothing", str(repo), "--include", "nowhere/**")[0] == 0
    code, out, err = cli(capsys, "build", "nothing", "--embedder", "hashing")
    line = one_line_error(err)
    assert code == 1 and "no indexable files" in line and "include ['nowhere/**']" in line
    assert_nothing_published(data_dir, "nothing")

    code, _, err = cli(capsys, "repo", "add", "neg", str(repo), "--max-file-bytes", "-1")
    assert code == 1 and "--max-file-bytes must be at least 1" in one_line_error(err)
    code, _, err = cli(capsys, "repo", "add", "glob", str(repo), "--exclude", "\\")
    assert code == 1 and "not a valid pattern" in one_line_error(err)
    assert set(json.loads((data_dir / "repos.json").read_text())["repos"]) == {"empty", "nothing"}


def test_verbose_build_shows_the_dagster_log(
    capfd, data_dir: Path, dagster_home: Path, tmp_path: Path
):
    """S1: the Dagster log is there when asked for."""
    empty = tmp_path / "empty"
    empty.mkdir()
    registry.add_repo(registry.RepoConfig(name="empty", path=str(empty)))
    assert main(["build", "empty", "--embedder", "hashing", "-v"]) == 1
    captured = capfd.readouterr()
    assert "STEP_FAILURE" in captured.err + captured.out
    assert "no indexable files" in captured.err.strip().splitlines()[-1]


def test_a_symbol_graph_given_as_scip_fails_the_build_naming_the_file(
    capsys, fixture_repo: Path, data_dir: Path, dagster_home: Path, tmp_path: Path
):
    """F12."""
    graph = tmp_path / "symbol_graph.json"
    graph.write_text(json.dumps({"nodes": [], "edges": []}))
    assert cli(capsys, "repo", "add", "fx", str(fixture_repo), "--scip", str(graph))[0] == 0
    code, out, err = cli(capsys, "build", "fx", "--embedder", "hashing")
    line = one_line_error(err)
    assert code == 1 and out == ""
    assert f"failed at scip_index: {graph}: not a SCIP index: it has no documents" in line
    assert_nothing_published(data_dir, "fx")


def test_a_bad_line_of_modules_jsonl_is_named_with_file_and_line(
    capsys, fixture_repo: Path, data_dir: Path, dagster_home: Path, tmp_path: Path
):
    """F13: the user's error, not the JSONDecodeError it wraps ('line 1 column 1')."""
    modules = tmp_path / "modules.jsonl"
    modules.write_text(
        '{"module_id": "pkg", "uri_prefix": "pkg/", "language": "python"}\nnot json\n'
    )
    cli(capsys, "repo", "add", "fx", str(fixture_repo), "--modules-jsonl", str(modules))
    code, out, err = cli(capsys, "build", "fx", "--embedder", "hashing")
    line = one_line_error(err)
    assert code == 1 and out == ""
    assert f"failed at modules: {modules}: line 2: invalid JSON" in line
    assert "column" not in line
    assert_nothing_published(data_dir, "fx")


@pytest.mark.slow
def test_documents_of_an_ingested_index_outside_the_manifest_are_dropped_and_counted(
    capsys, fixture_repo: Path, data_dir: Path, dagster_home: Path, tmp_path: Path
):
    """Doubtful item, decided: a `.scip.json` document `../../etc/passwd` never reaches a table."""
    symbol = "scip-python python fx 1 `pkg.parse`/parse_config()."
    index = {
        "metadata": {"version": 0, "project_root": "file:///elsewhere"},
        "documents": [
            {
                "relative_path": "pkg/parse.py",
                "occurrences": [{"range": [5, 4, 16], "symbol": symbol, "symbol_roles": 1}],
                "symbols": [{"symbol": symbol, "documentation": ["Parse a JSON document."]}],
            },
            {
                "relative_path": "../../etc/passwd",
                "occurrences": [{"range": [0, 0, 4], "symbol": "local passwd_marker"}],
            },
        ],
    }
    given = tmp_path / "index.scip.json"
    given.write_text(json.dumps(index))
    graph = tmp_path / "symbol_graph.json"
    edge = {"src_symbol": symbol, "dst_symbol": "local passwd_marker", "edge": "reference"}
    graph.write_text(
        json.dumps(
            [
                {**edge, "src_uri": "pkg/parse.py", "dst_uri": "../../etc/passwd"},
                {**edge, "dst_symbol": symbol, "src_uri": "pkg/parse.py", "dst_uri": None},
            ]
        )
    )
    cli(
        capsys,
        *("repo", "add", "fx", str(fixture_repo), "--scip", str(given)),
        *("--symbol-graph", str(graph)),
    )
    code, out, err = cli(capsys, "build", "fx", "--embedder", "hashing")
    assert code == 0, err
    layout = RepoLayout(data_dir, "fx")
    facts = read_stamp(layout, "scip_occurrences")["metadata"]
    assert facts["documents_outside_manifest"] == 1
    assert facts["documents_outside_manifest_examples"] == ["../../etc/passwd"]
    current = lifecycle.current_layout(layout)
    for table, uris in uri_values(current.catalog).items():
        assert "../../etc/passwd" not in uris, table
    occurrences = pq.read_table(current.scip_occurrences).to_pylist()
    assert {o["uri"] for o in occurrences} == {"pkg/parse.py"}
    assert read_stamp(layout, "symbol_edges")["metadata"]["edges_outside_manifest"] == 1
    assert pq.read_table(current.symbol_edges).column("dst_uri").to_pylist() == [None]

    # An index none of whose documents is in the manifest is another tree's: refused.
    index["documents"] = index["documents"][1:]
    given.write_text(json.dumps(index))
    code, _, err = cli(capsys, "build", "fx", "--embedder", "hashing")
    assert code == 1 and "none of its 1 documents is a file" in one_line_error(err)
    assert lifecycle.current_layout(layout).root == current.root


# -- F8, F10, F10b, F11b, F15 and the option checks: on a published index ---------------

MARKUP_FILES = {
    **FIXTURE_FILES,
    # F10: rich markup in code and in a path (`dir[/]weird.py`, a folder named `dir[`).
    "dir[/]weird.py": 'ALERT = "[red]alert[/red]"  # [/bold] weird markup\n',
}
NAME = "pub"


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root with a repository (markup in code and paths) built and published once."""
    tmp = tmp_path_factory.mktemp("hostile_published")
    repo = write_fixture_repo(tmp / "repo", files=MARKUP_FILES)
    root = tmp / "data"
    root.mkdir()
    registry.add_repo(registry.RepoConfig(name=NAME, path=str(repo)), root)
    assert materialize_partition(NAME, root).success
    return root


@pytest.fixture
def root(published: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the published data root, exported as $CODEINTEL_DATA."""
    copy = tmp_path / "data"
    shutil.copytree(published, copy, symlinks=True)
    monkeypatch.setenv("CODEINTEL_DATA", str(copy))
    return copy


def test_markup_in_code_and_paths_is_printed_as_text(capsys, root: Path):
    """F10."""
    code, out, err = cli(
        capsys, "search", "ALERT red alert weird", "--repo", NAME, "--mode", "bm25"
    )
    assert code == 0, err
    assert "dir[/]weird.py" in out
    assert '"[red]alert[/red]"' in out
    code, out, err = cli(capsys, "repo", "list")
    assert code == 0, err


def test_unknown_languages_are_named_with_the_known_ones(capsys, root: Path):
    """F15."""
    code, _, err = cli(capsys, "search", "vector", "--repo", NAME, "--lang", "py")
    line = one_line_error(err)
    assert code == 1 and "unknown language 'py' (did you mean 'python'?)" in line
    code, _, err = cli(capsys, "search", "vector", "--repo", NAME, "--lang", "cobol")
    line = one_line_error(err)
    assert code == 1 and "unknown language 'cobol'; known languages: c, cpp" in line
    assert "python" in line
    code, out, _ = cli(capsys, "search", "vector", "--repo", NAME, "--lang", "Python")
    assert code == 0 and "pkg/vectors.py" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tune", "--k", "0"], "--k must be ≥ 1, got 0"),
        (["tune", "--target-recall", "5"], "--target-recall must be in (0, 1], got 5.0"),
        (["tune", "--queries", "0"], "--queries must be ≥ 1, got 0"),
        (["eval", "recall", "--k", "0"], "--k must be ≥ 1, got 0"),
        (["eval", "recall", "--k-factor", "0"], "--k-factor must be ≥ 1, got 0.0"),
    ],
)
def test_counts_and_recalls_out_of_range_are_refused(
    capsys, root: Path, argv: list[str], message: str
):
    """Doubtful items, decided: `--k 0` and a recall of 5 mean nothing; refused, not run."""
    audit = RepoLayout(root, NAME).build.faiss_audit().read_bytes()
    code, _, err = cli(capsys, *argv, "--repo", NAME)
    assert code == 1 and message in one_line_error(err)
    assert RepoLayout(root, NAME).build.faiss_audit().read_bytes() == audit


def test_out_files_need_an_existing_folder(capsys, root: Path, tmp_path: Path):
    """Doubtful item, decided: `--out` never creates folders."""
    missing = tmp_path / "nonexistent" / "dir"
    for argv in (
        ["faiss", "export-idmap", "--repo", NAME],
        ["eval", "recall", "--repo", NAME],
        ["eval", "write-pool", "--tsv", str(tmp_path / "pool.tsv")],
    ):
        code, _, err = cli(capsys, *argv, "--out", str(missing / "x"))
        assert code == 1 and f"folder {missing} does not exist" in one_line_error(err)
    assert not missing.parent.exists()
    code, out, err = cli(
        capsys, "faiss", "export-idmap", "--repo", NAME, "--out", str(tmp_path / "idmap.parquet")
    )
    assert code == 0, err


def test_rollback_takes_only_version_ids_of_its_own_repository(capsys, root: Path):
    """F8: `--to ../../other/versions/<v>` or an absolute path never moves `current`."""
    layout = RepoLayout(root, NAME)
    first = lifecycle.current_version_or_none(layout)
    # A second repository with its own version: the foreign target.
    other = RepoLayout(root, "other")
    shutil.copytree(layout.versions_dir / first, other.versions_dir / first)
    new_build_version = second_version(root)
    history = layout.publish_history.read_bytes()
    for target in (
        f"../../other/versions/{first}",
        str(other.versions_dir / first),
        f"versions/{first}",
        "",
    ):
        code, _, err = cli(capsys, "rollback", "--repo", NAME, "--to", target)
        assert code == 1 and "is not a build version" in one_line_error(err)
        assert lifecycle.current_version_or_none(layout) == new_build_version
        assert layout.publish_history.read_bytes() == history
    # A foreign path written into history.json by hand is never rolled back to.
    entries = json.loads(history)
    entries.append({"build_version": f"../../other/versions/{first}", "at": "2026-01-01"})
    layout.publish_history.write_text(json.dumps(entries))
    code, out, err = cli(capsys, "rollback", "--repo", NAME)
    assert code == 0, err
    assert out.strip() == f"current: {new_build_version} -> {first}"
    assert os.readlink(layout.current_pointer) == f"versions/{first}"
    code, out, _ = cli(capsys, "search", "normalize vector", "--repo", NAME)
    assert code == 0 and "pkg/vectors.py" in out


def second_version(root: Path) -> str:
    """Change one artifact of the working build and publish it: a second version."""
    from codeintel_assets.core.context import BuildContext
    from codeintel_assets.core.embedding import EmbedderSpec
    from codeintel_assets.core.lifecycle import publish_build

    # Written by rename like every artifact, so the first version keeps its file.
    write_text_atomic(RepoLayout(root, NAME).build.eval_report, "# report two\n")
    outcome = publish_build(BuildContext.for_repo(NAME, root, EmbedderSpec(kind="hashing")))
    assert not outcome.reused
    return outcome.build_version


@pytest.mark.parametrize("damage", ["truncated", "random"])
def test_a_damaged_catalog_is_one_clear_error(capsys, root: Path, damage: str):
    """F11b: the published catalog (checked against its manifest) and the build's."""
    layout = RepoLayout(root, NAME)
    for catalog in (lifecycle.current_layout(layout).catalog, layout.build.catalog):
        data = catalog.read_bytes()
        catalog.write_bytes(data[: len(data) // 3] if damage == "truncated" else os.urandom(9000))
    for argv in (["search", "vector", "--repo", NAME], ["status", "--repo", NAME]):
        code, _, err = cli(capsys, *argv)
        line = one_line_error(err)
        assert code == 1 and "is damaged (db/codeintel.duckdb: size or checksum differs" in line
        assert f"indexctl rollback --repo {NAME}" in line
    code, _, err = cli(capsys, "duckdb", "refresh-idmap-join", "--repo", NAME)
    line = one_line_error(err)
    assert code == 1 and f"catalog {layout.build.catalog}: not a readable DuckDB catalog" in line


def test_a_broken_version_manifest_is_one_clear_error(capsys, root: Path):
    """F11b."""
    manifest = lifecycle.current_layout(RepoLayout(root, NAME)).version_manifest
    manifest.write_text('{"artifacts": [')
    for argv in (
        ["search", "vector", "--repo", NAME],
        ["status", "--repo", NAME],
        ["versions", "--repo", NAME],
    ):
        code, out, err = cli(capsys, *argv)
        if argv[0] == "versions":  # listing still works: the version shows without details
            assert code == 0, err
            continue
        line = one_line_error(err)
        assert code == 1 and f"{manifest}: not a readable version manifest" in line


def test_a_published_file_changed_in_place_is_published_again(
    capsys, root: Path, dagster_home: Path
):
    """F10b: `current`'s FAISS file shares its inode with the build's; the build must notice."""
    layout = RepoLayout(root, NAME)
    faiss_file = lifecycle.current_layout(layout).faiss_index()
    # As published: the version's file is a hard link of the build's (copying lost that).
    faiss_file.unlink()
    os.link(layout.build.faiss_index(), faiss_file)
    with open(faiss_file, "r+b") as handle:
        handle.seek(64)
        handle.write(b"\xff" * 64)
    code, _, err = cli(capsys, "search", "vector", "--repo", NAME)
    assert code == 1 and "is damaged (faiss/chunks.faiss" in one_line_error(err)

    code, out, err = cli(capsys, "build", NAME, "--embedder", "hashing")
    assert code == 0, err
    assert "published" in out
    assert lifecycle.verify_version(lifecycle.current_layout(layout)) == []
    assert f"published {NAME} version {lifecycle.current_version_or_none(layout)}" in out
    code, out, err = cli(capsys, "search", "normalize vector", "--repo", NAME)
    assert code == 0 and "pkg/vectors.py" in out


def test_console_script_prints_one_line_for_a_failing_build(tmp_path: Path):
    """S1 through the real console script: no Dagster log, no traceback."""
    empty = tmp_path / "empty"
    empty.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "CODEINTEL_DATA": str(tmp_path / "data"), "DAGSTER_HOME": str(home)}
    indexctl = [sys.executable, "-m", "codeintel_assets.cli"]
    subprocess.run(
        [*indexctl, "repo", "add", "empty", str(empty)],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    done = subprocess.run(
        [*indexctl, "build", "empty", "--embedder", "hashing"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    line = one_line_error(done.stderr)
    assert "no indexable files" in line and "STEP_FAILURE" not in done.stderr


def test_a_second_run_of_a_partition_waits_for_the_stage_the_first_is_writing(
    fixture_repo: Path, data_dir: Path
):
    """Doubtful item, decided: `indexctl build` and `dagster asset materialize` of one
    partition may overlap; a stage is never written by both at once (its lock), and the
    one that waited finds the stamp current and skips."""
    import threading
    import time

    from codeintel_assets.core.stamps import stage_lock

    registry.add_repo(registry.RepoConfig(name="fx", path=str(fixture_repo)))
    layout = RepoLayout(data_dir, "fx")
    results: list[Any] = []
    with stage_lock(layout, "repo_manifest"):  # another run is writing the manifest
        worker = threading.Thread(target=lambda: results.append(materialize_partition("fx")))
        worker.start()
        time.sleep(3)
        assert worker.is_alive() and read_stamp(layout, "repo_manifest") is None
    worker.join(600)
    assert results and results[0].success
    assert lifecycle.verify_version(lifecycle.current_layout(layout)) == []
