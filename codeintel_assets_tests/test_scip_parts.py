"""A full SCIP pass indexed in parts (one scip-python run per slice of the processing order)
equals one run over the whole tree, across parts: symbols defined in one part and used in
another, a base class in another part, re-exports, an import cycle split between parts.
And node's heap limit comes from the budget, so a run that needs more fails saying so."""

from __future__ import annotations

import stat
import sys
import textwrap
from pathlib import Path

import pytest

from codeintel_assets.core.errors import BadInputError
from codeintel_assets.core.scip.environment import minimal_environment
from codeintel_assets.core.scip.incremental import PROJECT_VERSION, ScipJob, update_scip_index
from codeintel_assets.core.scip.indexer import SCIP_PYTHON_ENV, scip_python_binary
from codeintel_assets.core.scip.parts import (
    MEMORY_ENV,
    PART_LINES_ENV,
    ScipBudget,
    budget_from_env,
    shadowed_stdlib_modules,
    split_in_parts,
)
from codeintel_assets_tests.scip_support import CORPUS, build, rows
from codeintel_assets_tests.support import write_fixture_repo

CROSS_PART = {
    **CORPUS,
    # A base class and an override in another part than the class.
    "pkg/special.py": textwrap.dedent(
        '''\
        from pkg import Shape


        class Square(Shape):
            """A shape that knows it is square."""

            def area(self) -> int:
                return super().area() + 0
        '''
    ),
    # An import cycle split between parts: a.py (first, by path) imports b.py's function by
    # name before b.py defines it, so in one run b.py's document has no information for it.
    "cyc/__init__.py": "",
    "cyc/a.py": textwrap.dedent(
        '''\
        from cyc.b import pong


        def ping(n: int) -> int:
            """Ping."""
            return pong(n - 1) if n else 0
        '''
    ),
    "cyc/b.py": textwrap.dedent(
        '''\
        from cyc import a


        def pong(n: int) -> int:
            """Pong."""
            return a.ping(n - 1) if n else 1
        '''
    ),
    "use.py": textwrap.dedent(
        """\
        from cyc.a import ping
        from pkg.special import Square

        print(ping(3), Square(2).area())
        """
    ),
}


def test_a_full_pass_in_parts_gives_the_tables_of_one_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    repo = write_fixture_repo(tmp_path / "repo", CROSS_PART, git=False)
    whole = build("corpus", repo, tmp_path / "whole")
    assert whole["scip"]["full_pass_parts"] == 1 and whole["scip"]["scip_python_runs"] == 1

    # One line per part: every file is a part of its own.
    monkeypatch.setenv(PART_LINES_ENV, "1")
    parts = build("corpus", repo, tmp_path / "parts")
    facts = parts["scip"]
    assert facts["mode"] == "full" and facts["ok"], facts["reason"]
    assert facts["full_pass_parts"] == len(CROSS_PART) and facts["scip_part_lines"] == 1
    assert facts["scip_python_runs"] >= len(CROSS_PART)
    assert facts["documents"] == whole["scip"]["documents"] == len(CROSS_PART)
    for table in ("scip_occurrences", "scip_symbols", "symbol_edges"):
        assert rows(parts[table]) == rows(whole[table]), table
    # The cross-part facts the comparison covers are really there.
    edges = rows(whole["symbol_edges"])
    assert any("Square#" in e and "Shape#" in e for e in edges)
    assert any("cyc/a.py" in e and "pong()" in e for e in edges)

    # Parts and incremental updates share the merge: an edit after a pass in parts is exact.
    special = repo / "pkg/special.py"
    special.write_text(special.read_text().replace("+ 0", "+ 1"))
    step = build("corpus", repo, tmp_path / "parts")
    assert step["scip"]["mode"] == "incremental", step["scip"]["mode_reason"]
    monkeypatch.delenv(PART_LINES_ENV)
    again = build("corpus", repo, tmp_path / "whole-again")
    for table in ("scip_occurrences", "scip_symbols", "symbol_edges"):
        assert rows(step[table]) == rows(again[table]), table


# node's heap limit played by the size of a run: scip-python itself runs when the files a
# run indexes have at most {limit} lines, else the run fails as node does at its limit.
HEAP_LIMIT_SHIM = """#!/bin/sh
if "{python}" - "$@" <<'SHIM'
import json, pathlib, sys
tree = pathlib.Path(sys.argv[sys.argv.index("--cwd") + 1])
include = json.loads((tree / "pyrightconfig.json").read_text())["include"]
lines = sum((tree / uri).read_text().count("\\n") + 1 for uri in include if uri != ".")
sys.exit(1 if "." in include or lines > {limit} else 0)
SHIM
then exec "{binary}" "$@"; fi
echo "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory"
exit 134
"""


def test_a_part_past_the_heap_limit_is_indexed_in_halves_with_the_same_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    repo = write_fixture_repo(tmp_path / "repo", CROSS_PART, git=False)
    whole = build("corpus", repo, tmp_path / "whole")
    shim = tmp_path / "scip-python"
    shim.write_text(
        HEAP_LIMIT_SHIM.format(python=sys.executable, binary=scip_python_binary(), limit=30)
    )
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv(SCIP_PYTHON_ENV, str(shim))
    # Parts of ~45 lines: the first is past the limit; its halves, and the later parts cut
    # to their size, are not.
    monkeypatch.setenv(PART_LINES_ENV, "45")
    parts = build("corpus", repo, tmp_path / "parts")
    facts = parts["scip"]
    assert facts["mode"] == "full" and facts["ok"], (facts["reason"], facts.get("failure"))
    assert facts["parts_split_at_heap_limit"] == 1
    assert facts["full_pass_parts"] > 2 and facts["documents"] == len(CROSS_PART)
    for table in ("scip_occurrences", "scip_symbols", "symbol_edges"):
        assert rows(parts[table]) == rows(whole[table]), table


def test_a_run_past_its_heap_limit_fails_saying_so(tmp_path: Path):
    repo = write_fixture_repo(tmp_path / "repo", {"a.py": "import os\nx = os.sep\n"}, git=False)
    job = ScipJob(
        repo,
        tmp_path / "index.scip",
        tmp_path / "scip_state.json",
        "corpus",
        PROJECT_VERSION,
        {"a.py": "h"},
        minimal_environment(),
        budget=ScipBudget(memory_mib=16),
    )
    update = update_scip_index(job)
    assert not update.ok and not job.output.exists()
    assert "ran out of its 16 MiB heap" in update.failure and MEMORY_ENV in update.failure


def test_the_budget_sets_the_part_size_and_bad_settings_are_named():
    assert budget_from_env({}) == ScipBudget()
    assert budget_from_env({MEMORY_ENV: "4096"}).lines_per_part() > ScipBudget().lines_per_part()
    assert budget_from_env({MEMORY_ENV: "4096", PART_LINES_ENV: "500"}).lines_per_part() == 500
    for bad in ({MEMORY_ENV: "lots"}, {MEMORY_ENV: "100"}, {PART_LINES_ENV: "0"}):
        with pytest.raises(BadInputError, match=next(iter(bad))):
            budget_from_env(bad)
    lines = {"a": 3, "b": 3, "c": 10, "d": 1}
    assert split_in_parts(["a", "b", "c", "d"], lines, 6) == [["a", "b"], ["c"], ["d"]]
    assert shadowed_stdlib_modules(["codeop.py", "email/utils.py", "pkg/io.py"]) == [
        "codeop",
        "email",
    ]
