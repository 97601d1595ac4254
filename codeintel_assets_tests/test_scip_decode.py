"""SCIP decoding: our wire decoder on hand-encoded bytes, the JSON reader, and a real index.

The real index comes from running the pinned scip-python on a small repository
built in a temporary directory (one run per session of this module).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from codeintel_assets.core.errors import BadInputError
from codeintel_assets.core.scip import decode_scip_file
from codeintel_assets.core.scip.indexer import SCIP_PYTHON_ENV, run_scip_python
from codeintel_assets.core.scip.json_reader import read_scip_json, scip_json_from_index
from codeintel_assets.core.scip.model import ScipIndex
from codeintel_assets.core.scip.tables import occurrences_table, repo_text_reader, symbols_table
from codeintel_assets.core.scip.wire import decode_scip_bytes

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
        "        return str(x)\n"
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
    "pkg/uni.py": 'naïve = "日本語🙂"; x = 1; def_ = naïve\ndef grüß(): return "🙂🙂"\n',
    "pkg/broken.py": "def oops(:\n    pass\n",
    # Must never be indexed: a virtualenv and a node_modules folder inside the repository.
    ".venv/lib/site.py": "hidden = 1\n",
    "node_modules/m/n.py": "vendored = 1\n",
}


@pytest.fixture(scope="module")
def fixture_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ScipIndex]:
    root = tmp_path_factory.mktemp("scip_repo") / "repo"
    for rel, text in FIXTURE_FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    output = root.parent / "out" / "index.scip"
    result = run_scip_python(root, output, "fixture", "1.0", timeout_s=300)
    assert result.ok, result.reason + "\n" + result.stderr_tail
    assert result.python_files == 5
    return root, decode_scip_file(output)


# -- hand-encoded protobuf ----------------------------------------------------------


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number: int, wire: int, payload: bytes | int) -> bytes:
    tag = varint(number << 3 | wire)
    if wire == 0:
        assert isinstance(payload, int)
        return tag + varint(payload)
    assert isinstance(payload, bytes)
    if wire == 2:
        return tag + varint(len(payload)) + payload
    return tag + payload


def packed(values: list[int]) -> bytes:
    return b"".join(varint(v) for v in values)


def occurrence(rng: list[int], symbol: str, roles: int = 0, extra: bytes = b"") -> bytes:
    body = field(1, 2, packed(rng)) + field(2, 2, symbol.encode())
    if roles:
        body += field(3, 0, roles)
    return body + extra


def document(path: str, *occurrences: bytes) -> bytes:
    return field(1, 2, path.encode()) + b"".join(field(2, 2, occ) for occ in occurrences)


METADATA = field(1, 2, field(2, 2, field(1, 2, b"scip-python")) + field(4, 0, 1))


def test_packed_ranges_with_three_and_four_values() -> None:
    doc = document(
        "m.py",
        occurrence([2, 4, 9], "sym a", roles=1),
        occurrence([3, 1, 5, 2], "sym b"),
    )
    index = decode_scip_bytes(METADATA + field(2, 2, doc))
    occs = index.documents[0].occurrences
    assert occs[0].range == (2, 4, 2, 9)
    assert occs[0].symbol_roles == 1
    assert occs[1].range == (3, 1, 5, 2)
    assert occs[1].symbol_roles == 0
    assert index.metadata.tool_info.name == "scip-python"
    assert index.metadata.text_document_encoding == 1


def test_multibyte_varints_and_enclosing_range() -> None:
    occ = occurrence([300, 200, 70000], "s") + field(7, 2, packed([299, 0, 400, 1]))
    index = decode_scip_bytes(METADATA + field(2, 2, document("m.py", occ)))
    decoded = index.documents[0].occurrences[0]
    assert decoded.range == (300, 200, 300, 70000)
    assert decoded.enclosing_range == (299, 0, 400, 1)


def test_negative_range_value_is_rejected() -> None:
    occ = field(1, 2, packed([0, 5, (1 << 64) - 1])) + field(2, 2, b"s")
    with pytest.raises(BadInputError, match=r"in documents\[0\]\.occurrences\[0\]: negative"):
        decode_scip_bytes(METADATA + field(2, 2, document("m.py", occ)), "x.scip")


def test_unknown_fields_are_skipped() -> None:
    unknown = (
        field(15, 0, 123456)
        + field(16, 2, b"future payload")
        + field(17, 5, b"\x01\x02\x03\x04")
        + field(18, 1, b"\x00" * 8)
    )
    occ = occurrence([1, 2, 3], "sym x", extra=unknown)
    doc = document("m.py", occ) + field(30, 2, b"doc-level unknown")
    index = decode_scip_bytes(METADATA + field(2, 2, doc))
    decoded = index.documents[0].occurrences[0]
    assert (decoded.range, decoded.symbol) == ((1, 2, 1, 3), "sym x")


def test_concatenated_index_messages_are_merged() -> None:
    info = field(1, 2, b"ext sym") + field(3, 2, b"doc")
    stream = (
        METADATA
        + field(2, 2, document("a.py", occurrence([0, 0, 1], "s1")))
        + field(2, 2, document("b.py", occurrence([1, 0, 1], "s2")))
        + field(3, 2, info)
    )
    index = decode_scip_bytes(stream)
    assert [d.relative_path for d in index.documents] == ["a.py", "b.py"]
    assert index.external_symbols[0].symbol == "ext sym"
    assert index.external_symbols[0].documentation == ["doc"]


def test_truncated_input_names_the_offset() -> None:
    doc = document("m.py", occurrence([0, 1, 2], "sym"))
    stream = METADATA + field(2, 2, doc)
    cut = stream[: len(stream) - 3]
    with pytest.raises(BadInputError) as err:
        decode_scip_bytes(cut, "index.scip")
    # The document's length prefix sits right after its one-byte tag.
    assert f"byte {len(METADATA) + 1}:" in str(err.value)
    assert "index.scip" in str(err.value)
    assert "truncated" in str(err.value)


def test_truncated_varint_names_the_offset() -> None:
    stream = METADATA + b"\x12\xff"
    with pytest.raises(BadInputError, match=rf"byte {len(METADATA) + 1}: truncated varint"):
        decode_scip_bytes(stream, "x.scip")


def test_non_scip_bytes_are_rejected() -> None:
    with pytest.raises(BadInputError, match=r"x\.scip: byte 0: not a SCIP index"):
        decode_scip_bytes(b"hello world, this is text", "x.scip")
    with pytest.raises(BadInputError, match="empty file"):
        decode_scip_bytes(b"", "x.scip")
    with pytest.raises(BadInputError, match="no metadata"):
        decode_scip_bytes(field(2, 2, document("m.py")), "x.scip")


def test_bad_range_names_the_record() -> None:
    stream = (
        METADATA
        + field(2, 2, document("a.py", occurrence([0, 0, 1], "ok")))
        + field(
            2, 2, document("b.py", occurrence([0, 0, 1], "ok"), occurrence([1, 2, 3, 4, 5], "bad"))
        )
    )
    with pytest.raises(BadInputError, match=r"in documents\[1\]\.occurrences\[1\]: range has 5"):
        decode_scip_bytes(stream, "x.scip")


def test_invalid_utf8_string_is_rejected() -> None:
    occ = field(1, 2, packed([0, 0, 1])) + field(2, 2, b"\xff\xfe")
    with pytest.raises(BadInputError, match="not valid UTF-8"):
        decode_scip_bytes(METADATA + field(2, 2, document("m.py", occ)), "x.scip")


# -- JSON reader --------------------------------------------------------------------


def write_json(tmp_path: Path, value: object) -> Path:
    path = tmp_path / "index.scip.json"
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def test_json_reads_omitted_zero_values(tmp_path: Path) -> None:
    path = write_json(
        tmp_path,
        {
            "metadata": {"tool_info": {"name": "scip-python"}, "project_root": "file:///r"},
            "documents": [
                {
                    "relative_path": "m.py",
                    "occurrences": [
                        {
                            "range": [0, 4, 5],
                            "symbol": "s d",
                            "symbol_roles": 1,
                            "enclosing_range": [0, 0, 2, 3],
                        },
                        {"range": [1, 0, 1, 3], "symbol": "s d"},
                    ],
                    "symbols": [
                        {
                            "symbol": "s d",
                            "relationships": [{"symbol": "s base", "is_implementation": True}],
                        }
                    ],
                }
            ],
        },
    )
    index = decode_scip_file(path)
    occs = index.documents[0].occurrences
    assert occs[0].range == (0, 4, 0, 5) and occs[0].enclosing_range == (0, 0, 2, 3)
    assert occs[1].symbol_roles == 0 and occs[1].enclosing_range is None
    rel = index.documents[0].symbols[0].relationships[0]
    assert rel.is_implementation and not rel.is_reference


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"occurrences": []}, r"documents\[0\]\.relative_path: missing required"),
        ({"relative_path": 3}, r"documents\[0\]\.relative_path: expected a string, got int"),
        (
            {
                "relative_path": "m.py",
                "occurrences": [
                    {"range": [0, 0, 1], "symbol": "s"},
                    {"range": "0,0,1", "symbol": "s"},
                ],
            },
            r"documents\[0\]\.occurrences\[1\]\.range: expected an array, got str",
        ),
        (
            {"relative_path": "m.py", "occurrences": [{"symbol": "s"}]},
            r"documents\[0\]\.occurrences\[0\]\.range: missing required range",
        ),
        (
            {"relative_path": "m.py", "occurrences": [{"range": [0, 1], "symbol": "s"}]},
            r"documents\[0\]\.occurrences\[0\]\.range: has 2 values",
        ),
        (
            {
                "relative_path": "m.py",
                "occurrences": [{"range": [0, 0, 1], "symbol": "s", "symbol_roles": True}],
            },
            r"documents\[0\]\.occurrences\[0\]\.symbol_roles: expected an integer, got bool",
        ),
        (
            {
                "relative_path": "m.py",
                "symbols": [
                    {"symbol": "s", "relationships": [{"symbol": "t", "is_implementation": "yes"}]}
                ],
            },
            r"documents\[0\]\.symbols\[0\]\.relationships\[0\]\.is_implementation: expected a bool",
        ),
    ],
)
def test_json_validation_names_file_record_and_field(
    tmp_path: Path, document: dict[str, object], expected: str
) -> None:
    path = write_json(tmp_path, {"documents": [document]})
    with pytest.raises(BadInputError, match=re.escape(str(path)) + ": " + expected):
        read_scip_json(path)


def test_json_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "index.scip.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(BadInputError, match="not valid JSON"):
        decode_scip_file(path)


# -- the real index -----------------------------------------------------------------


def test_real_index_documents_exclude_venv_and_node_modules(
    fixture_repo: tuple[Path, ScipIndex],
) -> None:
    root, index = fixture_repo
    assert sorted(d.relative_path for d in index.documents) == [
        "pkg/__init__.py",
        "pkg/a.py",
        "pkg/b.py",
        "pkg/broken.py",
        "pkg/uni.py",
    ]
    assert index.metadata.tool_info.name == "scip-python"
    # scip-python ran on a staging tree of the manifest's files, never on the work tree.
    assert not index.metadata.project_root.endswith("/repo")


def test_real_index_definitions_at_zero_based_lines(fixture_repo: tuple[Path, ScipIndex]) -> None:
    root, index = fixture_repo
    table = occurrences_table(index, repo_text_reader(root))
    defs = {
        (row["uri"], row["symbol"].removeprefix(PREFIX)): row
        for row in table.to_pylist()
        if row["role"] == "def"
    }
    f = defs[("pkg/a.py", "`pkg.a`/f().")]
    assert (f["start_line"], f["start_char"], f["end_line"], f["end_char"]) == (5, 4, 5, 5)
    assert (f["enclosing_start_line"], f["enclosing_end_line"]) == (5, 6)
    child = defs[("pkg/a.py", "`pkg.a`/Child#")]
    assert (child["start_line"], child["start_char"]) == (9, 6)
    run = defs[("pkg/a.py", "`pkg.a`/Child#run().")]
    # The enclosing range starts at the decorator line.
    assert (run["start_line"], run["enclosing_start_line"], run["enclosing_end_line"]) == (
        11,
        10,
        12,
    )
    g = defs[("pkg/b.py", "`pkg.b`/g().")]
    assert (g["start_line"], g["start_char"], g["roles"] & 1) == (3, 4, 1)
    assert ("pkg/broken.py", "`pkg.broken`/oops().") in defs


def test_real_index_non_ascii_columns_are_code_points(fixture_repo: tuple[Path, ScipIndex]) -> None:
    root, index = fixture_repo
    table = occurrences_table(index, repo_text_reader(root))
    lines = FIXTURE_FILES["pkg/uni.py"].split("\n")
    rows = [r for r in table.to_pylist() if r["uri"] == "pkg/uni.py" and r["end_char"] > 0]
    spans = {(r["start_line"], r["start_char"], r["end_char"]): r["role"] for r in rows}
    # ``x`` follows an emoji (two UTF-16 units, one code point) on the same line.
    assert spans[(0, 16, 17)] == "def"
    assert spans[(0, 23, 27)] == "def"
    assert spans[(0, 30, 35)] == "ref"
    assert spans[(1, 4, 8)] == "def"
    names = {lines[r["start_line"]][r["start_char"] : r["end_char"]] for r in rows}
    assert names == {"naïve", "x", "def_", "grüß"}
    # Without the text, the raw UTF-16 offsets remain (the emoji counts twice).
    raw = occurrences_table(index)
    raw_x = [r for r in raw.to_pylist() if r["symbol"].endswith("`pkg.uni`/x.")]
    assert raw_x[0]["start_char"] == 17


def test_real_index_symbols_table(fixture_repo: tuple[Path, ScipIndex]) -> None:
    _, index = fixture_repo
    rows = {r["symbol"].removeprefix(PREFIX): r for r in symbols_table(index).to_pylist()}
    g = rows["`pkg.b`/g()."]
    assert (g["kind"], g["display_name"], g["documentation"], g["uri"]) == (
        "Function",
        "g",
        "Return one.",
        "pkg/b.py",
    )
    assert g["signature"].startswith("def g()")
    assert g["enclosing_symbol"] == PREFIX + "`pkg.b`/__init__:"
    assert rows["`pkg.a`/Child#"]["kind"] == "Class"
    assert [r["symbol"] for r in rows["`pkg.a`/Child#"]["relationships"]] == [
        PREFIX + "`pkg.b`/Base#"
    ]
    run = rows["`pkg.a`/Child#run()."]
    assert (run["kind"], run["enclosing_symbol"]) == ("Method", PREFIX + "`pkg.a`/Child#")
    assert rows["`pkg.a`/Child#run().(x)"]["kind"] == "Parameter"
    assert rows["`pkg.a`/__init__:"]["kind"] == "Module"
    assert rows["`pkg.a`/__init__:"]["documentation"] == "Module a: calls into b."
    assert rows["`pkg.uni`/`naïve`."]["kind"] == "Variable"
    assert rows["`pkg.uni`/`naïve`."]["display_name"] == "naïve"
    assert not any(symbol.startswith("local ") for symbol in rows)
    externals = [r for r in rows.values() if r["uri"] is None]
    assert externals and all("python-stdlib" in r["symbol"] for r in externals)


def test_json_export_reads_back_to_the_same_index(
    fixture_repo: tuple[Path, ScipIndex], tmp_path: Path
) -> None:
    _, index = fixture_repo
    path = tmp_path / "index.scip.json"
    exported = scip_json_from_index(index)
    path.write_text(json.dumps(exported), encoding="utf-8")
    # ``scip print --json`` conventions: snake_case keys, zero values omitted.
    first_doc = exported["documents"][0]
    assert "relative_path" in first_doc and "position_encoding" not in first_doc
    assert all(
        "symbol_roles" not in occ
        for doc in exported["documents"]
        for occ in doc["occurrences"]
        if occ["symbol"].startswith("local ")
    )
    assert decode_scip_file(path) == index


def test_indexer_without_python_files(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# no python here\n", encoding="utf-8")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "x.py").write_text("x = 1\n", encoding="utf-8")
    output = tmp_path / "out" / "index.scip"
    result = run_scip_python(tmp_path, output, "p", "1")
    assert not result.ok
    assert "no Python files" in result.reason
    assert not output.exists()


def test_indexer_missing_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "m.py").write_text("x = 1\n", encoding="utf-8")
    monkeypatch.setenv(SCIP_PYTHON_ENV, str(tmp_path / "nowhere" / "scip-python"))
    result = run_scip_python(tmp_path, tmp_path / "index.scip", "p", "1")
    assert not result.ok and "scip-python not found" in result.reason


def test_indexer_timeout_leaves_previous_output(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("x = 1\n", encoding="utf-8")
    output = tmp_path / "out" / "index.scip"
    output.parent.mkdir()
    output.write_bytes(b"previous")
    result = run_scip_python(tmp_path, output, "p", "1", timeout_s=0.05)
    assert not result.ok and "timed out" in result.reason
    assert output.read_bytes() == b"previous"
    assert list(output.parent.iterdir()) == [output]
