"""AST and CST node tables and node_to_chunk on a generated fixture repository."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from codeintel_assets.core.checksums import signed_xxh64, xxh64_bytes
from codeintel_assets.core.schemas import AST_NODES, CST_NODES, NODE_TO_CHUNK
from codeintel_assets.core.syntax import (
    Diagnostic,
    ast_nodes_table,
    cst_nodes_table,
    node_to_chunk_table,
    parser_for,
)

REPO = "fixture"

B_PY = '''"""Module b: greetings."""
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


café = "naïve"
'''

GREET_TEXT = '''def greet(self):
        """Return the greeting."""
        return f"héllo {self.name} ✓"'''

FILES = {
    "README.md": "# Fixture\n\nA small repository.\n",
    "pkg/__init__.py": '"""The fixture package."""\n',
    "pkg/a.py": '"""Module a uses b."""\nfrom . import b\n\n\ndef use_b(value):\n'
    "    return b.Greeter(value).greet()\n",
    "pkg/b.py": B_PY,
    "pkg/broken.py": "def broken(:\n    pass\n\nx = = 1\n",
    "web/app.js": "// Entry point.\nfunction greet(name) {\n  return `hi ${name}`;\n}\n"
    "class Box { open() { return 1; } }\n",
    "web/types.ts": "export interface Shape { area(): number; }\n"
    "export function area(s: Shape): number { return s.area(); }\n",
    "web/view.tsx": "const View = () => <div>hi</div>;\n",
}
LANGS = {
    ".md": "markdown",
    ".py": "python",
    ".js": "javascript",
    ".ts": "typescript",
    ".tsx": "tsx",
}


@pytest.fixture
def repo(tmp_path: Path) -> dict[str, bytes]:
    """Write the fixture repository and return its files' bytes as read back from disk."""
    for uri, text in FILES.items():
        path = tmp_path / uri
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
    return {
        path.relative_to(tmp_path).as_posix(): path.read_bytes()
        for path in sorted(tmp_path.rglob("*"))
        if path.is_file()
    }


def _python(repo: dict[str, bytes]) -> list[tuple[str, bytes]]:
    return [(uri, data) for uri, data in repo.items() if uri.endswith(".py")]


def _all(repo: dict[str, bytes]) -> list[tuple[str, str, bytes]]:
    return [(uri, LANGS[Path(uri).suffix], data) for uri, data in repo.items()]


def _rows(table: pa.Table, **where: object) -> list[dict]:
    return [row for row in table.to_pylist() if all(row[k] == v for k, v in where.items())]


def _assert_tree(table: pa.Table, repo: dict[str, bytes]) -> None:
    """Ids unique, every parent present, one root per file, text_hash matches the bytes."""
    rows = table.to_pylist()
    ids = [row["node_id"] for row in rows]
    assert len(ids) == len(set(ids))
    known = set(ids)
    assert all(row["parent_id"] in known for row in rows if row["parent_id"] is not None)
    roots = [row["uri"] for row in rows if row["parent_id"] is None]
    assert sorted(roots) == sorted({row["uri"] for row in rows})
    for row in rows:
        assert row["depth"] == 0 if row["parent_id"] is None else row["depth"] > 0
        data = repo[row["uri"]]
        assert row["text_hash"] == xxh64_bytes(data[row["start_byte"] : row["end_byte"]])
        assert 1 <= row["start_line"] <= row["end_line"]


# -- ast --------------------------------------------------------------------------------


def test_ast_definitions_have_exact_lines_and_bytes(repo: dict[str, bytes]) -> None:
    table, _ = ast_nodes_table(REPO, _python(repo))
    assert table.schema == AST_NODES
    source = repo["pkg/b.py"]

    (greet,) = _rows(table, uri="pkg/b.py", kind="FunctionDef", name="greet")
    assert (greet["start_line"], greet["end_line"]) == (20, 22)
    assert greet["start_byte"] == source.index(b"def greet")
    assert source[greet["start_byte"] : greet["end_byte"]] == GREET_TEXT.encode()

    (greeter,) = _rows(table, uri="pkg/b.py", kind="ClassDef", name="Greeter")
    assert (greeter["start_line"], greeter["end_line"]) == (13, 22)
    assert source[greeter["start_byte"] : greeter["end_byte"]].startswith(b"class Greeter:\n")
    assert source[greeter["start_byte"] : greeter["end_byte"]].endswith(GREET_TEXT.encode())
    assert greet["parent_id"] == greeter["node_id"]
    assert greet["depth"] == greeter["depth"] + 1 == 2

    names = {row["name"] for row in _rows(table, uri="pkg/b.py", kind="FunctionDef")}
    assert names == {"traced", "wrapper", "__init__", "greet"}

    # The decorator is a child of the method it decorates, on the line before it.
    (decorator,) = _rows(table, uri="pkg/b.py", kind="Name", start_line=19)
    assert decorator["parent_id"] == greet["node_id"]
    assert source[decorator["start_byte"] : decorator["end_byte"]] == b"traced"

    # Non-ASCII identifier and string: col offsets are UTF-8 byte offsets.
    (assign,) = _rows(table, uri="pkg/b.py", kind="Assign", start_line=25)
    assert source[assign["start_byte"] : assign["end_byte"]] == 'café = "naïve"'.encode()
    (attribute,) = _rows(table, uri="pkg/b.py", kind="Attribute", start_line=22)
    assert source[attribute["start_byte"] : attribute["end_byte"]] == b"self.name"

    (module,) = _rows(table, uri="pkg/b.py", kind="Module")
    assert (module["start_byte"], module["end_byte"]) == (0, len(source))
    assert (module["start_line"], module["end_line"]) == (1, 25)
    assert module["node_id"] == signed_xxh64(REPO, "pkg/b.py", "Module", 0, len(source))
    _assert_tree(table, repo)


def test_ast_syntax_error_is_a_diagnostic_not_rows(repo: dict[str, bytes]) -> None:
    table, diagnostics = ast_nodes_table(REPO, _python(repo))
    assert [(d.uri, d.reason) for d in diagnostics] == [("pkg/broken.py", "syntax_error")]
    assert diagnostics[0].detail.startswith("line 1:")
    assert "pkg/broken.py" not in set(table.column("uri").to_pylist())
    assert {"pkg/__init__.py", "pkg/a.py", "pkg/b.py"} <= set(table.column("uri").to_pylist())


def test_ast_ids_are_stable_and_repeated_ranges_disambiguated(repo: dict[str, bytes]) -> None:
    first, _ = ast_nodes_table(REPO, _python(repo))
    second, _ = ast_nodes_table(REPO, list(reversed(_python(repo))))
    key = ["uri", "node_id"]
    assert first.sort_by([(k, "ascending") for k in key]).equals(
        second.sort_by([(k, "ascending") for k in key])
    )
    other_repo, _ = ast_nodes_table("other", _python(repo))
    assert set(first.column("node_id").to_pylist()).isdisjoint(
        other_repo.column("node_id").to_pylist()
    )
    # f"a{x}b" holds two string parts; on some Pythons they share one range and kind.
    table, _ = ast_nodes_table(REPO, [("f.py", b'f"a{x}b"\n')])
    assert len(set(table.column("node_id").to_pylist())) == table.num_rows


def test_ast_bom_crlf_and_non_utf8(tmp_path: Path) -> None:
    source = "\ufeffdef é():\r\n    return 'ü'\r\n".encode()
    table, diagnostics = ast_nodes_table(
        REPO, [("bom.py", source), ("latin.py", "x = 'é'\n".encode("latin-1"))]
    )
    (function,) = _rows(table, kind="FunctionDef")
    assert function["name"] == "é"
    assert source[function["start_byte"] : function["end_byte"]] == (
        "def é():\r\n    return 'ü'".encode()
    )
    assert (function["start_line"], function["end_line"]) == (1, 2)
    assert [d.reason for d in diagnostics] == ["not_utf8"]
    assert diagnostics[0].uri == "latin.py"


# -- cst --------------------------------------------------------------------------------


def test_cst_definitions_match_ast_ranges(repo: dict[str, bytes]) -> None:
    cst, _ = cst_nodes_table(REPO, [f for f in _all(repo) if f[1] == "python"])
    ast_table, _ = ast_nodes_table(REPO, _python(repo))
    assert cst.schema == CST_NODES

    def definitions(table: pa.Table, kinds: set[str]) -> set[tuple]:
        return {
            (row["name"], row["start_byte"], row["end_byte"], row["start_line"], row["end_line"])
            for row in table.to_pylist()
            if row["uri"] == "pkg/b.py" and row["kind"] in kinds
        }

    cst_defs = definitions(cst, {"function_definition", "class_definition"})
    assert cst_defs == definitions(ast_table, {"FunctionDef", "ClassDef"})
    assert ("greet", repo["pkg/b.py"].index(b"def greet")) in {d[:2] for d in cst_defs}
    _assert_tree(cst, repo)


def test_cst_keeps_comments_keywords_and_tokens(repo: dict[str, bytes]) -> None:
    table, diagnostics = cst_nodes_table(REPO, _all(repo))
    assert diagnostics == [
        Diagnostic("README.md", "unsupported_language", "markdown"),
        Diagnostic("pkg/broken.py", "syntax_error", "1 ERROR, 1 MISSING nodes; first at line 1"),
    ]
    js = repo["web/app.js"]
    (comment,) = _rows(table, uri="web/app.js", kind="comment")
    assert js[comment["start_byte"] : comment["end_byte"]] == b"// Entry point."
    assert _rows(table, uri="web/app.js", kind='"function"')  # keyword token
    assert len(_rows(table, uri="web/app.js", kind='"{"')) == 3  # punctuation token
    assert len(_rows(table, uri="web/app.js", kind='"${"')) == 1  # template substitution
    # Python's lambda: the named expression and its anonymous keyword stay apart.
    lam, _ = cst_nodes_table(REPO, [("l.py", "python", b"f = lambda: 0\n")])
    assert [r["kind"] for r in lam.to_pylist() if "lambda" in r["kind"]] == ["lambda", '"lambda"']
    assert {row["name"] for row in table.to_pylist() if row["name"]} >= {
        "traced",
        "wrapper",
        "Greeter",
        "__init__",
        "greet",
        "use_b",  # python
        "Box",
        "open",  # javascript (greet again)
        "Shape",
        "area",  # typescript
    }
    (method,) = _rows(table, uri="web/app.js", kind="method_definition")
    assert (method["name"], method["start_line"]) == ("open", 5)
    (interface,) = _rows(table, uri="web/types.ts", kind="interface_declaration")
    assert interface["name"] == "Shape"
    assert _rows(table, uri="web/view.tsx", kind="jsx_element")
    # The whole file is covered by its root, parsed without error.
    (root,) = _rows(table, uri="web/app.js", parent_id=None)
    assert (root["start_byte"], root["end_byte"], root["end_line"]) == (0, len(js), 5)
    _assert_tree(table, repo)


def test_cst_keeps_error_nodes_of_a_broken_file(repo: dict[str, bytes]) -> None:
    table, _ = cst_nodes_table(REPO, [("pkg/broken.py", "python", repo["pkg/broken.py"])])
    broken = repo["pkg/broken.py"]
    (error,) = _rows(table, kind="ERROR")
    assert error["start_line"] == 4 and broken[error["start_byte"] : error["end_byte"]] == b"="
    (missing,) = _rows(table, kind="MISSING")
    assert (missing["name"], missing["start_byte"], missing["end_byte"]) == (")", 11, 11)
    (function,) = _rows(table, kind="function_definition")
    assert function["name"] == "broken"


def test_cst_ids_stable_across_runs(repo: dict[str, bytes]) -> None:
    first, _ = cst_nodes_table(REPO, _all(repo))
    second, _ = cst_nodes_table(REPO, _all(repo))
    assert first.equals(second)
    assert parser_for("python").language is not None


# -- node_to_chunk ----------------------------------------------------------------------


def test_node_to_chunk_maps_contained_and_spanning_nodes(repo: dict[str, bytes]) -> None:
    source = repo["pkg/b.py"]
    class_at = source.index(b"class Greeter")
    greet_at = source.index(b"    @traced")
    chunks = pa.table(
        {
            "id": [10, 20, 30, 40],
            "uri": ["pkg/b.py", "pkg/b.py", "pkg/b.py", "pkg/a.py"],
            "start_byte": [0, class_at, greet_at, 0],
            "end_byte": [class_at, greet_at, len(source), len(repo["pkg/a.py"])],
        }
    )
    nodes, _ = ast_nodes_table(REPO, [("pkg/b.py", source)])
    mapping = node_to_chunk_table(nodes, chunks)
    assert mapping.schema == NODE_TO_CHUNK
    chunks_of: dict[int, set[int]] = {}
    for row in mapping.to_pylist():
        chunks_of.setdefault(row["node_id"], set()).add(row["chunk_id"])

    def node(kind: str, **where: object) -> int:
        (row,) = _rows(nodes, kind=kind, **where)
        return row["node_id"]

    assert chunks_of[node("Import")] == {10}
    assert chunks_of[node("FunctionDef", name="greet")] == {30}
    assert chunks_of[node("ClassDef", name="Greeter")] == {20, 30}  # split over two parts
    assert chunks_of[node("Module")] == {10, 20, 30}
    assert set(chunks_of) == set(nodes.column("node_id").to_pylist())  # chunks cover b.py
    assert mapping.num_rows == len({(r["chunk_id"], r["node_id"]) for r in mapping.to_pylist()})


def test_node_to_chunk_maps_zero_width_nodes(repo: dict[str, bytes]) -> None:
    broken = repo["pkg/broken.py"]
    nodes, _ = cst_nodes_table(REPO, [("pkg/broken.py", "python", broken)])
    chunks = pa.table(
        {
            "id": [1, 2],
            "uri": ["pkg/broken.py"] * 2,
            "start_byte": [0, 20],
            "end_byte": [20, len(broken)],
        }
    )
    mapping = node_to_chunk_table(nodes, chunks)
    (missing,) = _rows(nodes, kind="MISSING")
    assert _rows(mapping, node_id=missing["node_id"]) == [
        {"chunk_id": 1, "node_id": missing["node_id"]}
    ]
