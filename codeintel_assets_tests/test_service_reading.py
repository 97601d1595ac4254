"""`definition` of local variables and `read`/`definition` of over-long lines, in process,
on a Python repository built and published with the real pipeline (scip-python numbers the
locals of every file from 0, so ``local 0`` names a different variable in each file)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from codeintel_assets.core import registry
from codeintel_assets.core.service.handles import HandleCache
from codeintel_assets.core.service.tools import CHARS_PER_TOKEN, call_tool
from codeintel_assets_tests.support import materialize_partition, write_fixture_repo

pytestmark = pytest.mark.integration

WIDE = "x" * 20_000
FILES = {
    "pkg/__init__.py": "",
    "pkg/a.py": "from pkg.b import g\n\n\ndef f():\n    total = g() + g()\n    return total\n",
    "pkg/b.py": (
        "def g():\n    total = 1\n    return total\n\n\ndef h():\n    count = 2\n    return count\n"
    ),
    "pkg/wide.py": f'def wide():\n    return "{WIDE}"\n\n\ndef after():\n    return 2\n',
}


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HandleCache, Path]]:
    root = tmp_path_factory.mktemp("reading")
    repo = write_fixture_repo(root / "repo", FILES)
    registry.add_repo(registry.RepoConfig(name="loc", path=str(repo)), root=root / "data")
    assert materialize_partition("loc", data_root=root / "data").success
    cache = HandleCache(["loc"], root=root / "data")
    yield cache, repo
    cache.close()


@pytest.mark.parametrize(
    ("uri", "line", "character", "expected"),
    [
        ("pkg/a.py", 6, 12, ("pkg/a.py", 5, "    total = g() + g()")),  # `return total` in f
        ("pkg/b.py", 3, 12, ("pkg/b.py", 2, "    total = 1")),  # the same `local 0` in g
        ("pkg/b.py", 8, 12, ("pkg/b.py", 7, "    count = 2")),  # `local 1` in h
    ],
)
def test_a_local_is_defined_in_its_own_file(
    published: tuple[HandleCache, Path], uri: str, line: int, character: int, expected: tuple
) -> None:
    cache, _ = published
    answer = call_tool(cache, "definition", {"uri": uri, "line": line, "character": character})
    (match,) = answer["matches"]
    assert match["symbol"].startswith("local ") and not answer["ambiguous"]
    assert (match["uri"], match["line"], match["source"]) == expected
    assert match["name"] == expected[2].split()[0]  # its name from the source, not `local 0`


def test_read_gives_an_over_long_line_whole_or_cut_and_says_so(
    published: tuple[HandleCache, Path],
) -> None:
    cache, repo = published
    whole = call_tool(cache, "read", {"uri": "pkg/wide.py", "max_tokens": 20_000})
    assert whole["text"] == (repo / "pkg/wide.py").read_text().rstrip("\n")
    assert not whole["truncated"] and whole["end_line"] == whole["total_lines"] == 6
    # The wide line does not fit: the read stops before it and says where to go on.
    head = call_tool(cache, "read", {"uri": "pkg/wide.py", "max_tokens": 100})
    assert (head["text"], head["end_line"], head["next_start_line"]) == ("def wide():", 1, 2)
    assert head["truncated"]
    # Starting on it: the line itself is cut to the budget, and the note says so.
    cut = call_tool(cache, "read", {"uri": "pkg/wide.py", "start_line": 2, "max_tokens": 100})
    assert cut["truncated"] and cut["end_line"] == 2
    assert cut["text"] == f'    return "{WIDE}"'[: 100 * CHARS_PER_TOKEN]
    assert any("line 2 is cut" in note for note in cut["notes"])


def test_definition_of_a_unit_with_an_over_long_line_fits_max_tokens(
    published: tuple[HandleCache, Path],
) -> None:
    cache, _ = published
    whole = call_tool(cache, "definition", {"symbol": "pkg.wide.wide", "max_tokens": 20_000})
    (full,) = whole["matches"]
    assert full["source"] == f'def wide():\n    return "{WIDE}"' and not whole["truncated"]
    cut = call_tool(cache, "definition", {"symbol": "pkg.wide.wide", "max_tokens": 200})
    (match,) = cut["matches"]
    assert cut["truncated"] and full["source"].startswith(match["source"])
    assert len(str(match)) <= 200 * CHARS_PER_TOKEN
    assert any("raise max_tokens" in note for note in cut["notes"])
    # The definition after it is whole: the long line does not spill into its neighbours.
    after = call_tool(cache, "definition", {"symbol": "after", "max_tokens": 200})
    assert after["matches"][0]["source"] == "def after():\n    return 2"
