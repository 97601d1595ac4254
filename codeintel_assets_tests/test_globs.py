"""Glob semantics: the SQL LIKE path and the Python path agree with pathspec (gitignore rules)."""

from __future__ import annotations

import duckdb
import pathspec
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from codeintel_assets.core.catalog.globs import (
    PathFilter,
    compile_glob,
    escape_like,
    expand_braces,
)
from codeintel_assets.core.errors import BadInputError

_CON = duckdb.connect()

SEGMENT = st.text(alphabet="ab._%'\\-", min_size=1, max_size=4).filter(
    lambda s: s not in (".", "..")
)
PATH = st.lists(SEGMENT, min_size=1, max_size=4).map("/".join)
GLOB = st.text(alphabet="ab._%'\\/*?[]!", min_size=1, max_size=9)
BRACE_GLOB = st.text(alphabet="ab./*{},", min_size=1, max_size=9)


def _sql_matches(condition: tuple[str, list[str]], uri: str) -> bool:
    expr, params = condition
    # The condition's placeholders come first in the text, the uri's last.
    sql = f"SELECT {expr} FROM (SELECT ?::VARCHAR AS u)"
    return bool(_CON.execute(sql, [*params, uri]).fetchone()[0])


def _reference(glob: str, uri: str) -> bool:
    """pathspec with brace alternatives: the documented semantics, independently evaluated."""
    lines = ["\\" + g if g.startswith(("!", "#")) else g for g in expand_braces(glob.strip())]
    return any(pathspec.PathSpec.from_lines("gitignore", [line]).match_file(uri) for line in lines)


def _compiled_or_skip(glob: str):
    try:
        return compile_glob(glob)
    except BadInputError:
        assume(False)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(glob=GLOB, uri=PATH)
def test_like_is_exact_or_a_superset_of_pathspec(glob: str, uri: str) -> None:
    compiled = _compiled_or_skip(glob)
    truth = _reference(glob, uri)
    sql = _sql_matches(compiled.like.sql("u"), uri)
    if compiled.exact:
        assert sql == truth, (glob, uri, compiled.like)
    elif truth:
        assert sql, (glob, uri, compiled.like)  # the prefilter never drops a true match
    assert compiled.matches(uri) == truth


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    include=st.lists(GLOB | BRACE_GLOB, max_size=2), exclude=st.lists(GLOB, max_size=2), uri=PATH
)
def test_filter_sql_then_python_equals_python(
    include: list[str], exclude: list[str], uri: str
) -> None:
    try:
        path_filter = PathFilter.from_globs(include, exclude)
    except BadInputError:
        assume(False)
    expected = (not include or any(_reference(g, uri) for g in include)) and not any(
        _reference(g, uri) for g in exclude
    )
    passed_sql = _sql_matches(path_filter.sql("u"), uri)
    final = passed_sql and (not path_filter.needs_post_filter or path_filter.matches(uri))
    assert final == expected
    assert path_filter.matches(uri) == expected


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet="ab%_\\'", max_size=8), other=st.text(alphabet="ab%_\\'", max_size=8))
def test_escape_like_matches_only_itself(text: str, other: str) -> None:
    condition = ("u LIKE ? ESCAPE '\\'", [escape_like(text)])
    assert _sql_matches(condition, other) == (text == other)


@pytest.mark.parametrize(
    ("glob", "matching", "not_matching", "exact"),
    [
        ("*.py", ["a.py", "pkg/sub/b.py"], ["a.pyc", "py"], True),
        ("pkg/", ["pkg/a.py", "x/pkg/b.py"], ["pkg", "pkga/b"], True),
        ("pkg/**", ["pkg/a.py", "pkg/s/b.py"], ["pkg", "x/pkg/a"], True),
        ("/pkg/mod*", ["pkg/mod.py", "pkg/module/x.py"], ["x/pkg/mod.py"], True),
        ("pkg/*", ["pkg/a.py"], ["pkg/sub/b.py", "pkg"], False),
        ("tests", ["tests/a.py", "x/tests/b.py", "tests"], ["tests2/a.py"], True),
        ("pkg/**/deep.py", ["pkg/deep.py", "pkg/a/b/deep.py"], ["x/pkg/deep.py"], False),
        ("[ab].py", ["a.py", "z/b.py"], ["c.py", "ab.py"], False),
        ("*.{py,md}", ["a.py", "d/r.md"], ["a.js"], True),
        ("src/{a,b[0-9]}/*", ["src/a/x", "src/b1/y"], ["src/b/x", "src/c/x"], False),
        ("!important", ["!important"], ["important"], False),
        ("a_%'b", ["a_%'b"], ["axyb", "a_b"], True),
    ],
)
def test_documented_examples(
    glob: str, matching: list[str], not_matching: list[str], exact: bool
) -> None:
    compiled = compile_glob(glob)
    assert compiled.exact is exact
    for uri in matching:
        assert compiled.matches(uri) and _sql_matches(compiled.like.sql("u"), uri), uri
    for uri in not_matching:
        assert not compiled.matches(uri), uri
        if exact:
            assert not _sql_matches(compiled.like.sql("u"), uri), uri


def test_brace_expansion_rules() -> None:
    assert expand_braces("a{b,c{d,e}}f") == ["abf", "acdf", "acef"]
    assert expand_braces("{a}") == ["{a}"]  # no comma: literal
    assert expand_braces("x[{,}]") == ["x[{,}]"]  # inside a class: literal
    assert expand_braces("a\\{b,c}") == ["a\\{b,c}"]  # escaped: literal
    with pytest.raises(BadInputError, match="alternatives"):
        expand_braces("{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}")
