"""The one path filter: SQL and Python agree, and manifest, watcher and search share it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from codeintel_assets.core.errors import BadInputError
from codeintel_assets.core.manifest import build_manifest
from codeintel_assets.core.pathfilter import PathFilter, expand_braces
from codeintel_assets.core.watch import folder_fingerprint

_CON = duckdb.connect()

SEGMENT = st.text(alphabet="ab._%'\\-!#{} \n", min_size=1, max_size=4).filter(
    lambda s: s not in (".", "..")
)
PATH = st.lists(SEGMENT, min_size=1, max_size=4).map("/".join)
GLOB = st.text(alphabet="ab._%'\\/*?[]!#{},- \n", min_size=1, max_size=10)


def _sql_matches(path_filter: PathFilter, uri: str) -> bool:
    condition, params = path_filter.sql("u")
    # The condition's placeholders come first in the text, the uri's last.
    sql = f"SELECT {condition} FROM (SELECT ?::VARCHAR AS u)"
    return bool(_CON.execute(sql, [*params, uri]).fetchone()[0])


def _compiled_or_skip(include: list[str], exclude: list[str]) -> PathFilter:
    try:
        return PathFilter.from_globs(include, exclude)
    except BadInputError:
        assume(False)
        raise


@settings(max_examples=700, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(glob=GLOB, uri=PATH)
def test_sql_agrees_with_pathspec_on_one_glob(glob: str, uri: str) -> None:
    path_filter = _compiled_or_skip([glob], [])
    assert _sql_matches(path_filter, uri) == path_filter.matches(uri), (glob, uri)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    include=st.lists(GLOB, max_size=3),
    exclude=st.lists(GLOB, max_size=3),
    uri=PATH,
)
def test_sql_agrees_with_pathspec_on_lists_with_negations(
    include: list[str], exclude: list[str], uri: str
) -> None:
    path_filter = _compiled_or_skip(include, exclude)
    assert _sql_matches(path_filter, uri) == path_filter.matches(uri), (include, exclude, uri)


@pytest.mark.parametrize(
    ("include", "exclude", "matching", "not_matching"),
    [
        (["*.py"], [], ["a.py", "pkg/sub/b.py"], ["a.pyc", "py"]),
        (["pkg/"], [], ["pkg/a.py", "x/pkg/b.py"], ["pkg", "pkga/b"]),
        (["pkg/**"], [], ["pkg/a.py", "pkg/s/b.py"], ["pkg", "x/pkg/a"]),
        (["/pkg/mod*"], [], ["pkg/mod.py", "pkg/module/x.py"], ["x/pkg/mod.py"]),
        (["pkg/*"], [], ["pkg/a.py", "pkg/sub/b.py"], ["pkg", "x/pkg/a.py"]),
        (["tests"], [], ["tests/a.py", "x/tests/b.py", "tests"], ["tests2/a.py"]),
        (["pkg/**/deep.py"], [], ["pkg/deep.py", "pkg/a/b/deep.py"], ["x/pkg/deep.py"]),
        (["[ab].py"], [], ["a.py", "z/b.py"], ["c.py", "ab.py"]),
        (["*.{py,md}"], [], ["a.py", "d/r.md"], ["a.js"]),
        (["src/{a,b}/**"], [], ["src/a/x.py", "src/b/y/z.py"], ["src/c/x.py", "src/ab/x"]),
        (["v{1..3}/*"], [], ["v1/a", "v3/b"], ["v4/a", "v/a"]),
        (["src/**", "!src/gen/**"], [], ["src/a.py"], ["src/gen/x.py", "lib/a.py"]),
        ([], ["*.md", "!README.md"], ["README.md", "a.py"], ["docs/x.md"]),
        (["\\#notes"], [], ["#notes"], ["notes"]),
        (["a_%'b"], [], ["a_%'b"], ["axyb", "a_b"]),
        (["'; DROP TABLE chunks; --"], [], [], ["chunks"]),
    ],
)
def test_documented_examples(
    include: list[str], exclude: list[str], matching: list[str], not_matching: list[str]
) -> None:
    path_filter = PathFilter.from_globs(include, exclude)
    for uri in matching:
        assert path_filter.matches(uri) and _sql_matches(path_filter, uri), uri
    for uri in not_matching:
        assert not path_filter.matches(uri) and not _sql_matches(path_filter, uri), uri


def test_brace_expansion_and_bad_globs() -> None:
    assert expand_braces("a{b,c{d,e}}f") == ["abf", "acdf", "acef"]
    assert expand_braces("{a}") == ["{a}"]  # no comma: literal
    assert expand_braces("a\\{b,c}") == ["a\\{b,c}"]  # escaped: literal
    assert expand_braces("a\\*{b,c}") == ["a\\*b", "a\\*c"]  # escapes kept for gitignore
    with pytest.raises(BadInputError, match="alternatives"):
        expand_braces("{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}")
    for bad, reason in [("  ", "empty glob"), ("#x", "comment"), ("[", "invalid"), ("/", "blank")]:
        with pytest.raises(BadInputError, match=reason):
            PathFilter.from_globs([bad])


def _tree(root: Path) -> None:
    for rel in ["src/a/x.py", "src/b/y.py", "src/c/z.py", "docs/README.md", "src/a/gen/g.py"]:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x = 1\n", encoding="utf-8")


@pytest.mark.parametrize("git", [False, True], ids=["folder", "git"])
def test_manifest_watcher_and_filter_select_the_same_files(tmp_path: Path, git: bool) -> None:
    _tree(tmp_path)
    if git:
        subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    include, exclude = ["src/{a,b}/**"], ["**/gen/"]
    manifest = build_manifest(tmp_path, include=include, exclude=exclude)
    selected = manifest.files.column("uri").to_pylist()
    assert selected == ["src/a/x.py", "src/b/y.py"]
    path_filter = PathFilter.from_globs(include, exclude)
    every = ["src/a/x.py", "src/b/y.py", "src/c/z.py", "docs/README.md", "src/a/gen/g.py"]
    assert sorted(uri for uri in every if path_filter.matches(uri)) == selected
    assert [uri for uri in every if _sql_matches(path_filter, uri)] == selected
    # The watcher's fingerprint moves with a selected file only.
    before = folder_fingerprint(tmp_path, include, exclude)
    (tmp_path / "src/c/z.py").write_text("x = 2\n", encoding="utf-8")
    assert folder_fingerprint(tmp_path, include, exclude) == before
    (tmp_path / "src/b/y.py").write_text("x = 22\n", encoding="utf-8")
    assert folder_fingerprint(tmp_path, include, exclude) != before
