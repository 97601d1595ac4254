"""Modules table: module ids, metrics, import graph, chunk attribution and modules.jsonl."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow as pa
import pytest

from codeintel_assets.core.errors import BadInputError
from codeintel_assets.core.modules import modules_jsonl, modules_table, read_modules_jsonl
from codeintel_assets.core.schemas import MODULES

FILES = {
    "README.md": "# Fixture\n\nA small repository.\n",
    "pkg/__init__.py": '"""The fixture package."""\n',
    "pkg/a.py": '"""Module a uses b."""\nfrom . import b\n\n\ndef use_b(value):\n'
    "    return b.Greeter(value).greet()\n",
    "pkg/b.py": '''"""Module b: greetings."""
import functools


def traced(func):
    """Wrap func."""
    @functools.wraps(func)
    def wrapper(*args):
        return func(*args)
    return wrapper


class Greeter:
    """Says hello."""

    def __init__(self, name):
        self.name = name

    @traced
    def greet(self):
        """Return the greeting."""
        return f"héllo {self.name} ✓"

    def shout(self):
        return self.greet().upper() if self.name else ""


def _private(items):
    return [i for i in items if i and i > 0]


café = "naïve"
''',
    "pkg/broken.py": "def broken(:\n    pass\n",
    "pkg/notes.txt": "package notes\n",
    "web/app.js": "// Entry point.\nfunction greet(name) {\n  return `hi ${name}`;\n}\n",
    "web/types.ts": "export interface Shape { area(): number; }\n",
}
LANGS = {
    ".md": "markdown",
    ".py": "python",
    ".js": "javascript",
    ".ts": "typescript",
    ".txt": "text",
}


def _write(root: Path, files: dict[str, str]) -> list[tuple[str, str, bytes]]:
    """Write ``files`` under ``root``; return (uri, lang, bytes) read back from disk."""
    for uri, text in files.items():
        path = root / uri
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
    return [
        (p.relative_to(root).as_posix(), LANGS[p.suffix], p.read_bytes())
        for p in sorted(root.rglob("*"))
        if p.is_file()
    ]


@pytest.fixture
def repo(tmp_path: Path) -> list[tuple[str, str, bytes]]:
    return _write(tmp_path / "repo", FILES)


def _by_id(table: pa.Table) -> dict[str, dict]:
    return {row["module_id"]: row for row in table.to_pylist()}


def test_module_rows_and_metrics(repo: list[tuple[str, str, bytes]]) -> None:
    table, diagnostics = modules_table(repo)
    assert table.schema == MODULES
    rows = _by_id(table)
    assert {m: (r["uri_prefix"], r["language"]) for m, r in rows.items()} == {
        ".": ("", "markdown"),
        "pkg": ("pkg/", "python"),
        "pkg.a": ("pkg/a.py", "python"),
        "pkg.b": ("pkg/b.py", "python"),
        "pkg.broken": ("pkg/broken.py", "python"),
        "web": ("web/", "javascript"),  # one javascript, one typescript file: tie by name
    }
    assert table.column("module_id").to_pylist() == sorted(rows)

    a, b, package = rows["pkg.a"], rows["pkg.b"], rows["pkg"]
    # a → b is the only edge inside the repository (functools is external).
    assert (a["out_deg"], a["in_deg"], b["in_deg"], b["out_deg"]) == (1, 0, 1, 0)
    assert sum(r["in_deg"] for r in rows.values()) == 1

    # b: traced, wrapper, __init__, greet, shout, _private (6) + IfExp, comprehension
    # for and if, `and` (4).
    assert b["cyclomatic"] == 10
    assert a["cyclomatic"] == 1
    # Public: module, traced, Greeter, greet, shout (wrapper is nested, _private and
    # __init__ are private); shout has no docstring.
    assert b["doc_cov"] == pytest.approx(4 / 5)
    assert a["doc_cov"] == pytest.approx(1 / 2)  # module documented, use_b not
    assert (b["def_count"], a["def_count"]) == (7, 1)

    # The package module owns __init__.py and the package's non-Python files.
    assert (package["file_count"], package["size_loc"], package["doc_cov"]) == (2, 2, 1.0)
    assert (rows["."]["file_count"], rows["."]["size_loc"]) == (1, 2)
    assert (rows["web"]["file_count"], rows["web"]["size_loc"]) == (2, 5)
    assert rows["web"]["cyclomatic"] is None and rows["web"]["def_count"] is None

    broken = rows["pkg.broken"]
    assert (broken["cyclomatic"], broken["doc_cov"], broken["size_loc"]) == (None, None, 2)
    assert [(d.uri, d.reason) for d in diagnostics] == [("pkg/broken.py", "syntax_error")]

    centrality = table.column("centrality").to_pylist()
    assert math.isclose(sum(centrality), 1.0, rel_tol=1e-6)
    assert b["centrality"] > a["centrality"]
    assert all(r["chunk_count"] == 0 for r in rows.values())


def test_every_file_and_chunk_maps_to_a_module(repo: list[tuple[str, str, bytes]]) -> None:
    chunks = pa.table(
        {"uri": ["README.md", "pkg/a.py", "pkg/a.py", "pkg/notes.txt", "web/app.js", "pkg/b.py"]}
    )
    table, _ = modules_table(repo, chunks)
    prefixes = table.column("uri_prefix").to_pylist()
    for uri, _, _ in repo:
        assert any(uri.startswith(prefix) for prefix in prefixes), uri
    counts = {r["module_id"]: r["chunk_count"] for r in table.to_pylist()}
    assert counts == {".": 1, "pkg": 1, "pkg.a": 2, "pkg.b": 1, "pkg.broken": 0, "web": 1}
    assert sum(r["file_count"] for r in table.to_pylist()) == len(repo)


def test_imports_resolve_relative_src_layout_and_names_stay_unique(tmp_path: Path) -> None:
    files = _write(
        tmp_path,
        {
            "src/lib/__init__.py": "from .core import run\n",
            "src/lib/core.py": "def run():\n    pass\n",
            "src/lib/sub/__init__.py": "",
            "src/lib/sub/deep.py": "from .. import core\nfrom ...lib import core as again\n"
            "from ..core import run\n",
            "app.py": "import lib.core\nfrom lib import sub, core\nimport os.path\n",
            "docs.py": "import app\n",
            "docs/index.md": "# Docs\n",
            "tools/run.py": "from docs import nothing\n",
            "tools/README.md": "tools\n",
        },
    )
    table, diagnostics = modules_table(files)
    assert diagnostics == []
    rows = _by_id(table)
    assert {m: r["uri_prefix"] for m, r in rows.items()} == {
        "src.lib": "src/lib/",
        "src.lib.core": "src/lib/core.py",
        "src.lib.sub": "src/lib/sub/",
        "src.lib.sub.deep": "src/lib/sub/deep.py",
        "app": "app.py",
        "docs": "docs.py",
        "docs/": "docs/",  # the directory yields the name to the Python module
        "tools.run": "tools/run.py",
        "tools": "tools/",
    }
    degrees = {m: (r["in_deg"], r["out_deg"]) for m, r in rows.items()}
    # deep → core (three statements, one edge); lib → core; app → core, sub; docs → app;
    # tools.run → docs.
    assert degrees == {
        "src.lib": (0, 1),
        "src.lib.core": (3, 0),
        "src.lib.sub": (1, 0),
        "src.lib.sub.deep": (0, 1),
        "app": (1, 2),
        "docs": (1, 1),
        "docs/": (0, 0),
        "tools.run": (0, 1),
        "tools": (0, 0),
    }
    assert math.isclose(sum(table.column("centrality").to_pylist()), 1.0, rel_tol=1e-6)


def test_jsonl_round_trip(repo: list[tuple[str, str, bytes]], tmp_path: Path) -> None:
    table, _ = modules_table(repo)
    path = tmp_path / "modules.jsonl"
    text = modules_jsonl(table)
    assert text.count("\n") == table.num_rows
    path.write_text(text, encoding="utf-8")
    assert read_modules_jsonl(path).equals(table)


def test_jsonl_minimal_records_fill_nulls(tmp_path: Path) -> None:
    path = tmp_path / "modules.jsonl"
    path.write_text(
        '{"module_id": "pkg", "uri_prefix": "pkg/", "language": "python", "extra": 1}\n\n'
        '{"module_id": ".", "uri_prefix": "", "language": "text", "doc_cov": 1}\n'
    )
    table = read_modules_jsonl(path)
    assert table.schema == MODULES
    assert table.column("module_id").to_pylist() == ["pkg", "."]
    assert table.column("size_loc").to_pylist() == [None, None]
    assert table.column("doc_cov").to_pylist() == [None, 1.0]


GOOD = {"module_id": "m", "uri_prefix": "m.py", "language": "python"}


@pytest.mark.parametrize(
    ("second_line", "message"),
    [
        ({"uri_prefix": "x.py", "language": "python"}, "line 2: field 'module_id' is missing"),
        ({**GOOD, "module_id": "x", "size_loc": "12"}, "line 2: field 'size_loc' must be"),
        ({**GOOD, "module_id": "x", "in_deg": True}, "line 2: field 'in_deg' must be"),
        ({**GOOD, "module_id": "x", "centrality": "high"}, "line 2: field 'centrality' must"),
        ({**GOOD, "uri_prefix": "x.py"}, "line 2: field 'module_id' duplicates line 1"),
        ({**GOOD, "module_id": "x", "uri_prefix": "/abs/"}, "line 2: field 'uri_prefix' must"),
        ([1, 2], "line 2: expected a JSON object"),
    ],
)
def test_jsonl_validation_names_file_line_and_field(
    tmp_path: Path, second_line: object, message: str
) -> None:
    path = tmp_path / "modules.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(second_line) + "\n")
    with pytest.raises(BadInputError) as caught:
        read_modules_jsonl(path)
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def test_jsonl_invalid_json_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "modules.jsonl"
    path.write_text(json.dumps(GOOD) + "\n{not json\n")
    with pytest.raises(BadInputError, match="line 2: invalid JSON"):
        read_modules_jsonl(path)
    with pytest.raises(BadInputError, match="absent.jsonl"):
        read_modules_jsonl(tmp_path / "absent.jsonl")
