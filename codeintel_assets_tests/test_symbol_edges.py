"""The symbol graph: call sites from ``ast``, edges from a real scip-python index, JSON export."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from codeintel_assets.core import schemas
from codeintel_assets.core.errors import BadInputError
from codeintel_assets.core.scip import decode_scip_file
from codeintel_assets.core.scip.indexer import run_scip_python
from codeintel_assets.core.scip.tables import occurrences_table, repo_text_reader, symbols_table
from codeintel_assets.core.symbols import (
    python_call_sites,
    python_import_lines,
    python_syntax_sites,
    read_symbol_graph_json,
    symbol_edges_table,
    symbol_graph_json,
)
from codeintel_assets_tests.scip_support import CORPUS, assert_same_as_full, build
from codeintel_assets_tests.support import write_fixture_repo

PREFIX = "scip-python python fixture 1.0 "

FIXTURE_FILES = {
    "pkg/__init__.py": "",
    "pkg/a.py": (
        '"""Module a: calls into b."""\n'
        "from pkg import b\n"
        "from pkg.b import Base, deco\n"
        "\n"
        "\n"
        "def f():\n"
        "    return b.g() + b.g()\n"
        "\n"
        "\n"
        "class Child(Base):\n"
        "    @deco\n"
        "    def run(self, x):\n"
        "        return f()\n"
    ),
    "pkg/b.py": (
        "import functools\n"
        "\n"
        "\n"
        "def g():\n"
        '    """Return one."""\n'
        "    return 1\n"
        "\n"
        "\n"
        "def deco(fn):\n"
        "    @functools.wraps(fn)\n"
        "    def inner(*args):\n"
        "        return fn(*args)\n"
        "    return inner\n"
        "\n"
        "\n"
        "class Base:\n"
        "    def run(self, x):\n"
        "        return x\n"
    ),
    "pkg/uni.py": 'naïve = "日本語🙂"; x = 1; def_ = naïve\ndef grüß(): return naïve.upper()\n',
    "pkg/broken.py": "def oops(:\n    pass\n",
    # Unreachable on this platform: scip-python lists WinChild#run's SymbolInformation
    # (with its relationship to Base#run) in this file but no definition occurrence.
    "pkg/plat.py": (
        "import sys\n"
        "from pkg.b import Base\n"
        "\n"
        'if sys.platform == "win32":\n'
        "    class WinChild(Base):\n"
        "        def run(self, x):\n"
        "            return x\n"
    ),
}


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[pa.Table, pa.Table]:
    """The fixture's symbol edges and the SCIP occurrences they were made from."""
    root = tmp_path_factory.mktemp("edges_repo") / "repo"
    for rel, text in FIXTURE_FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    output = root.parent / "index.scip"
    result = run_scip_python(root, output, "fixture", "1.0", timeout_s=300)
    assert result.ok, result.reason + "\n" + result.stderr_tail
    index = decode_scip_file(output)
    read_text = repo_text_reader(root)
    occurrences = occurrences_table(index, read_text)
    sites = python_syntax_sites(sorted(set(occurrences["uri"].to_pylist())), read_text)
    assert sites.unparsed == ["pkg/broken.py"]
    edges = symbol_edges_table(occurrences, symbols_table(index), sites.calls, sites.import_lines)
    return edges, occurrences


@pytest.fixture(scope="module")
def edges(indexed: tuple[pa.Table, pa.Table]) -> pa.Table:
    return indexed[0]


def short(symbol: str | None) -> str | None:
    return symbol.removeprefix(PREFIX) if symbol else symbol


def edge_rows(edges: pa.Table) -> dict[tuple[str, str, str], dict[str, object]]:
    return {
        (short(r["src_symbol"]), short(r["dst_symbol"]), r["edge"]): r for r in edges.to_pylist()
    }


# -- syntax sites -------------------------------------------------------------------


def test_call_sites_name_and_attribute_positions() -> None:
    text = "f(1)\na.b.g(2)\nx = naïve.grüß(3)\ny = (f)(4)\nz = f()()\nw = obj.m\n"
    assert python_call_sites(text) == {
        (0, 0),  # f
        (1, 4),  # g, after ``a.b.``
        (2, 10),  # grüß: columns are code points, not UTF-8 bytes
        (3, 5),  # the parenthesized name
        (4, 4),  # only the inner ``f()`` has a callee name
    }


def test_call_sites_of_multiline_attribute_call() -> None:
    text = "result = (client\n    .session\n    .get(url))\n"
    assert python_call_sites(text) == {(2, 5)}


def test_import_lines_cover_multiline_statements() -> None:
    text = "import os\nfrom x import (\n    a,\n    b,\n)\n\ndef f():\n    import json\n"
    assert python_import_lines(text) == {0, 1, 2, 3, 4, 7}


def test_syntax_errors_raise() -> None:
    with pytest.raises(SyntaxError):
        python_call_sites("def oops(:\n")


# -- edges from the real index --------------------------------------------------------


def test_call_edge_with_weight(edges: pa.Table) -> None:
    row = edge_rows(edges)[("`pkg.a`/f().", "`pkg.b`/g().", "call")]
    assert row["src_symbol"].endswith("`pkg.a`/f().") and row["dst_symbol"].endswith("`pkg.b`/g().")
    assert (row["weight"], row["src_uri"], row["dst_uri"]) == (2, "pkg/a.py", "pkg/b.py")
    assert ("`pkg.a`/Child#run().", "`pkg.a`/f().", "call") in edge_rows(edges)


def test_inherits_and_implements_edges(edges: pa.Table) -> None:
    rows = edge_rows(edges)
    inherits = rows[("`pkg.a`/Child#", "`pkg.b`/Base#", "inherits")]
    assert (inherits["weight"], inherits["src_uri"], inherits["dst_uri"]) == (
        1,
        "pkg/a.py",
        "pkg/b.py",
    )
    assert ("`pkg.a`/Child#run().", "`pkg.b`/Base#run().", "implements") in rows
    # The base-class expression itself is a plain reference from the class.
    assert ("`pkg.a`/Child#", "`pkg.b`/Base#", "reference") in rows


def test_import_edges_come_from_the_module(edges: pa.Table) -> None:
    imports = {
        (src, dst)
        for src, dst, edge in edge_rows(edges)
        if edge == "import" and not src.startswith("`pkg.plat`")
    }
    assert imports == {
        ("`pkg.a`/__init__:", "pkg/__init__:"),
        ("`pkg.a`/__init__:", "`pkg.b`/__init__:"),
        ("`pkg.a`/__init__:", "`pkg.b`/Base#"),
        ("`pkg.a`/__init__:", "`pkg.b`/deco()."),
        ("`pkg.b`/__init__:", "scip-python python python-stdlib 3.11 functools/__init__:"),
    }
    rows = edge_rows(edges)
    # ``from pkg import b`` and ``from pkg.b import ...`` both name module ``pkg.b``.
    assert rows[("`pkg.a`/__init__:", "`pkg.b`/__init__:", "import")]["weight"] == 2
    assert rows[("`pkg.a`/__init__:", "pkg/__init__:", "import")]["dst_uri"] == "pkg/__init__.py"


def test_decorators_belong_to_the_enclosing_scope(edges: pa.Table) -> None:
    rows = edge_rows(edges)
    # ``@deco`` above ``Child.run`` is evaluated in the class body.
    assert ("`pkg.a`/Child#", "`pkg.b`/deco().", "reference") in rows
    assert not any(
        src == "`pkg.a`/Child#run()." and dst == "`pkg.b`/deco()." for src, dst, _ in rows
    )
    wraps = [
        r
        for (src, dst, edge), r in rows.items()
        if src == "`pkg.b`/deco()." and dst.endswith("functools/wraps().")
    ]
    assert [(r["edge"], r["dst_uri"]) for r in wraps] == [("call", None)]


def test_an_edge_names_only_files_that_define_its_endpoints(
    indexed: tuple[pa.Table, pa.Table],
) -> None:
    edges, occurrences = indexed
    defined = {
        (row["symbol"], row["uri"])
        for row in occurrences.select(["symbol", "uri", "role"]).to_pylist()
        if row["role"] == "def"
    }
    endpoints = [
        (row[f"{end}_symbol"], row[f"{end}_uri"])
        for row in edges.to_pylist()
        for end in ("src", "dst")
        if row[f"{end}_uri"] is not None
    ]
    assert endpoints
    assert [e for e in endpoints if e not in defined] == []
    # The unreachable class's relationship is still an edge, with no file for its source.
    rows = edge_rows(edges)
    win = rows[("`pkg.plat`/WinChild#run().", "`pkg.b`/Base#run().", "implements")]
    assert (win["src_uri"], win["dst_uri"]) == (None, "pkg/b.py")


def test_no_local_symbols_and_valid_edge_kinds(edges: pa.Table) -> None:
    assert edges.schema == schemas.SYMBOL_EDGES
    for row in edges.to_pylist():
        assert not row["src_symbol"].startswith("local ")
        assert not row["dst_symbol"].startswith("local ")
        assert row["edge"] in {"call", "reference", "import", "inherits", "implements", "type_def"}
        assert row["weight"] >= 1


def test_non_ascii_call_site_matches_scip_column(edges: pa.Table) -> None:
    rows = edge_rows(edges)
    upper = [
        r
        for (src, dst, edge), r in rows.items()
        if src == "`pkg.uni`/`grüß`()." and dst.endswith("str#upper().")
    ]
    assert [r["edge"] for r in upper] == ["call"]


# -- symbol_graph.json ---------------------------------------------------------------


def test_symbol_graph_json_round_trip(edges: pa.Table, tmp_path: Path) -> None:
    path = tmp_path / "symbol_graph.json"
    path.write_text(json.dumps(symbol_graph_json(edges)), encoding="utf-8")
    assert read_symbol_graph_json(path).equals(edges)


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        (
            [
                {"src_symbol": "a", "dst_symbol": "b", "edge": "call"},
                {"src_symbol": "a", "dst_symbol": "b"},
            ],
            r"edges\[1\]\.edge: missing required",
        ),
        (
            [{"src_symbol": "a", "dst_symbol": "b", "edge": "friend"}],
            r"edges\[0\]\.edge: expected one of",
        ),
        (
            [{"src_symbol": "a", "dst_symbol": "b", "edge": "call", "weight": "2"}],
            r"edges\[0\]\.weight: expected a positive integer",
        ),
        (
            [{"src_symbol": 5, "dst_symbol": "b", "edge": "call"}],
            r"edges\[0\]\.src_symbol: expected a non-empty string",
        ),
        (
            [{"src_symbol": "a", "dst_symbol": "b", "edge": "call", "dst_uri": 3}],
            r"edges\[0\]\.dst_uri: expected a string or null",
        ),
        (["not an object"], r"edges\[0\]: expected an object"),
    ],
)
def test_symbol_graph_json_validation(tmp_path: Path, records: list[object], expected: str) -> None:
    path = tmp_path / "symbol_graph.json"
    path.write_text(json.dumps({"edges": records}), encoding="utf-8")
    with pytest.raises(BadInputError, match=str(path).replace(".", r"\.") + ": " + expected):
        read_symbol_graph_json(path)


def test_symbol_graph_json_defaults(tmp_path: Path) -> None:
    path = tmp_path / "symbol_graph.json"
    path.write_text(
        json.dumps([{"src_symbol": "a", "dst_symbol": "b", "edge": "import"}]), encoding="utf-8"
    )
    table = read_symbol_graph_json(path)
    assert table.to_pylist() == [
        {
            "src_symbol": "a",
            "dst_symbol": "b",
            "edge": "import",
            "weight": 1,
            "src_uri": None,
            "dst_uri": None,
        }
    ]


def _counted(step: dict[str, object]) -> int:
    """How many files' reference edges a build counted afresh (the rest were kept)."""
    edges = step["edges"]
    assert edges["edges_reuse"] == "reused", edges
    return edges["edges_files_processed"]


@pytest.mark.integration
def test_kept_file_edges_write_the_graph_of_a_clean_build(tmp_path: Path):
    """Each file's reference edges are kept while its SCIP document and bytes are unchanged;
    the graph (table and JSON, byte for byte) is a clean build's after every kind of edit."""
    repo = write_fixture_repo(tmp_path / "repo", CORPUS, git=False)
    data = tmp_path / "data"
    first = build("corpus", repo, data)
    assert first["edges"]["edges_files_processed"] == len(CORPUS)

    # A body edit that only adds a local: the graph is the same, its files are kept.
    util = repo / "pkg/util.py"
    graph = data / "corpus/symbol_graph/symbol_graph.json"
    before = graph.stat().st_mtime_ns
    util.write_text(util.read_text().replace("    return", "    local = x\n    return"))
    step = build("corpus", repo, data)
    assert _counted(step) == 1 and step["edges"]["graph_rewritten"] is False
    assert graph.stat().st_mtime_ns == before
    assert_same_as_full(step, repo, tmp_path)

    # A body edit: that file's edges alone are counted again, and the graph is written.
    util.write_text(util.read_text().replace("x * 2", "helper_twice(x)") + _TWICE)
    step = build("corpus", repo, data)
    assert _counted(step) == 1 and step["edges"]["edges_files_reused"] == len(CORPUS) - 1
    assert step["edges"]["graph_rewritten"] is True
    assert_same_as_full(step, repo, tmp_path)

    # Shape moves to another module, re-exported from pkg: app.py's bytes are unchanged but
    # its document now names pkg.other's Shape, so its edges are counted again.
    (repo / "pkg/other.py").write_text(CORPUS["pkg/shapes.py"])
    (repo / "pkg/__init__.py").write_text("from pkg.other import Shape as Shape\n")
    step = build("corpus", repo, data)
    assert "app.py" in step["scip"]["reindexed_examples"]
    assert _counted(step) >= 3  # pkg/__init__.py, pkg/other.py (added), app.py
    shape = [
        dst for dst in step["symbol_edges"]["dst_symbol"].to_pylist() if "other`/Shape#" in dst
    ]
    assert shape, "app.py's edges still point at pkg.shapes' Shape"
    assert_same_as_full(step, repo, tmp_path)

    # A signature change used from another file, then a deleted file others import.
    shapes = repo / "pkg/shapes.py"
    shapes.write_text(
        shapes.read_text().replace("(size: int) -> Shape", "(size: int, k: int = 1) -> Shape")
    )
    step = build("corpus", repo, data)
    assert 1 <= _counted(step) < len(CORPUS)
    assert_same_as_full(step, repo, tmp_path)
    (repo / "pkg/report.py").unlink()
    step = build("corpus", repo, data)
    assert step["edges"]["edges_files_deleted"] == 1
    assert "pkg/report.py" not in step["symbol_edges"]["src_uri"].to_pylist()
    assert_same_as_full(step, repo, tmp_path)


_TWICE = "\n\ndef helper_twice(x: int) -> int:\n    return x + x\n"
