"""Defects of the pinned scip-python (0.6.6) that the build does not correct, pinned as
strict expected failures: when an upgrade fixes one, its test passes, fails as XPASS,
and tells us to drop the README's caveat (see "SCIP: the environment and incremental
updates", "scip-python naming references by the first function met")."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from codeintel_assets_tests.scip_support import build

SOURCE = textwrap.dedent(
    """\
    import os
    import stat


    def f(p, mode):
        print(os.path.splitext(p))
        print(os.path.abspath(p), os.path.dirname(p))
        return stat.S_ISDIR(mode), stat.S_ISSOCK(mode)
    """
)


def _referenced(tmp_path: Path) -> dict[str, str]:
    """Return the symbol scip-python gives each name referenced as ``module.name`` in
    ``SOURCE`` (by the name's text at the occurrence)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "paths.py").write_text(SOURCE, encoding="utf-8")
    table = build("defects", repo, tmp_path / "data")["scip_occurrences"].to_pylist()
    lines = SOURCE.splitlines()
    return {
        lines[row["start_line"]][row["start_char"] : row["end_char"]]: row["symbol"]
        for row in table
        if row["uri"] == "paths.py" and "python-stdlib" in row["symbol"]
    }


def test_the_first_external_function_met_is_named_right(tmp_path: Path):
    symbols = _referenced(tmp_path)
    assert symbols["splitext"].endswith(" posixpath/splitext().")
    assert symbols["S_ISDIR"].endswith(" _stat/S_ISDIR().")


@pytest.mark.xfail(
    strict=True,
    reason="scip-python 0.6.6 names os.path.abspath and os.path.dirname posixpath/splitext() "
    "and stat.S_ISSOCK _stat/S_ISDIR(): another function of the module, met earlier in the run",
)
def test_later_external_functions_are_named_by_their_own_name(tmp_path: Path):
    symbols = _referenced(tmp_path)
    assert symbols["abspath"].endswith(" posixpath/abspath().")
    assert symbols["dirname"].endswith(" posixpath/dirname().")
    assert symbols["S_ISSOCK"].endswith(" _stat/S_ISSOCK().")
