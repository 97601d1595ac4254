"""SCIP decoding: the protobuf reader on messages built with the generated classes (and a
hypothesis round trip), the JSON reader, and a real index.

The real index comes from running the pinned scip-python on a small repository
built in a temporary directory (one run per session of this module).
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from codeintel_assets.core.checksums import xxh64_file
from codeintel_assets.core.errors import BadInputError
from codeintel_assets.core.scip import decode_scip_file
from codeintel_assets.core.scip.incremental import read_written_index
from codeintel_assets.core.scip.indexer import SCIP_PYTHON_ENV, run_scip_python
from codeintel_assets.core.scip.json_reader import (
    read_scip_json,
    scip_index_from_json,
    scip_json_from_index,
)
from codeintel_assets.core.scip.proto import scip_pb2 as scip
from codeintel_assets.core.scip.protobuf_reader import decode_scip_bytes, stream_scip_records
from codeintel_assets.core.scip.symbol_names import infer_kind
from codeintel_assets.core.scip.tables import (
    full_range,
    occurrences_table,
    repo_text_reader,
    symbols_table,
)

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
def fixture_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, scip.Index]:
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


# -- protobuf, built with the generated classes -------------------------------------


def serialized(**fields: object) -> bytes:
    """One ``Index`` message; scip-python writes several back to back."""
    return scip.Index(**fields).SerializeToString()


def occurrence(rng: list[int], symbol: str, roles: int = 0, **fields: object) -> scip.Occurrence:
    return scip.Occurrence(range=rng, symbol=symbol, symbol_roles=roles, **fields)


def document(path: str, *occurrences: scip.Occurrence, **fields: object) -> bytes:
    return serialized(
        documents=[scip.Document(relative_path=path, occurrences=occurrences, **fields)]
    )


METADATA = serialized(
    metadata=scip.Metadata(
        tool_info=scip.ToolInfo(name="scip-python"), text_document_encoding=scip.UTF8
    )
)


def test_ranges_with_three_and_four_values() -> None:
    stream = METADATA + document(
        "m.py",
        occurrence([2, 4, 9], "sym a", roles=scip.SymbolRole.Definition),
        occurrence([3, 1, 5, 2], "sym b"),
    )
    index = decode_scip_bytes(stream)
    occs = index.documents[0].occurrences
    assert full_range(occs[0].range) == (2, 4, 2, 9)
    assert occs[0].symbol_roles == scip.SymbolRole.Definition
    assert full_range(occs[1].range) == (3, 1, 5, 2)
    assert occs[1].symbol_roles == 0
    assert index.metadata.tool_info.name == "scip-python"
    assert index.metadata.text_document_encoding == scip.UTF8


def test_multibyte_varints_and_enclosing_range() -> None:
    occ = occurrence([300, 200, 70000], "s", enclosing_range=[299, 0, 400, 1])
    decoded = decode_scip_bytes(METADATA + document("m.py", occ)).documents[0].occurrences[0]
    assert full_range(decoded.range) == (300, 200, 300, 70000)
    assert full_range(decoded.enclosing_range) == (299, 0, 400, 1)


def test_negative_range_value_is_rejected() -> None:
    occ = occurrence([0, 5, -1], "s")
    with pytest.raises(BadInputError, match=r"in documents\[0\]\.occurrences\[0\]: negative"):
        decode_scip_bytes(METADATA + document("m.py", occ), "x.scip")


def future_index_class() -> type[Message]:
    """``Index`` of a newer SCIP: the vendored schema plus fields of all four wire types."""
    file = descriptor_pb2.FileDescriptorProto()
    scip.DESCRIPTOR.CopyToProto(file)
    field_type = descriptor_pb2.FieldDescriptorProto
    for message in file.message_type:
        if message.name in ("Document", "Occurrence"):
            for number, name, kind in [
                (15, "future_varint", field_type.TYPE_INT64),
                (16, "future_text", field_type.TYPE_STRING),
                (17, "future_fixed32", field_type.TYPE_FIXED32),
                (18, "future_double", field_type.TYPE_DOUBLE),
            ]:
                message.field.add(
                    name=name, number=number, type=kind, label=field_type.LABEL_OPTIONAL
                )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("scip.Index"))


def test_unknown_fields_of_a_newer_schema_are_skipped() -> None:
    future = future_index_class()()
    doc = future.documents.add(relative_path="m.py", future_text="doc-level unknown")
    doc.occurrences.add(
        range=[1, 2, 3],
        symbol="sym x",
        future_varint=123456,
        future_text="future payload",
        future_fixed32=7,
        future_double=0.5,
    )
    index = decode_scip_bytes(METADATA + future.SerializeToString())
    decoded = index.documents[0].occurrences[0]
    assert (full_range(decoded.range), decoded.symbol) == ((1, 2, 1, 3), "sym x")
    assert index.documents[0].relative_path == "m.py"


def test_concatenated_index_messages_are_merged() -> None:
    stream = (
        METADATA
        + document("a.py", occurrence([0, 0, 1], "s1"))
        + document("b.py", occurrence([1, 0, 1], "s2"))
        + serialized(metadata=scip.Metadata(project_root="file:///r"))
        + serialized(
            external_symbols=[scip.SymbolInformation(symbol="ext sym", documentation=["doc"])]
        )
    )
    index = decode_scip_bytes(stream)
    assert [d.relative_path for d in index.documents] == ["a.py", "b.py"]
    assert index.external_symbols[0].symbol == "ext sym"
    assert list(index.external_symbols[0].documentation) == ["doc"]
    # A repeated metadata merges into the first, as protobuf merges messages.
    assert (index.metadata.tool_info.name, index.metadata.project_root) == (
        "scip-python",
        "file:///r",
    )
    assert index == scip.Index.FromString(stream)


def test_stream_yields_records_in_order_until_the_bad_one() -> None:
    stream = (
        METADATA
        + document("a.py", occurrence([0, 0, 1], "s1"))
        + document("b.py", occurrence([1, 0, 1], "s2"))
        + document("c.py", occurrence([1, 0], "bad"))
    )
    seen = []
    with pytest.raises(BadInputError, match=r"x\.scip: byte \d+ in documents\[2\]\.occurrences"):
        for record in stream_scip_records(io.BytesIO(stream), "x.scip"):
            seen.append(record)
    assert [type(r).__name__ for r in seen] == ["Metadata", "Document", "Document"]
    assert [r.relative_path for r in seen[1:]] == ["a.py", "b.py"]


def test_truncated_input_names_the_offset() -> None:
    stream = METADATA + document("m.py", occurrence([0, 1, 2], "sym"))
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
        decode_scip_bytes(document("m.py"), "x.scip")


@pytest.mark.parametrize(
    ("tail", "at", "expected"),
    [
        # Field 1 (metadata) as a varint, not a length-delimited record: at its tag.
        (b"\x08\x01", 0, "not a SCIP index: unexpected top-level field 1 \\(wire type 0\\)"),
        # A documents record whose length never ends, or claims 2 GiB: at the length.
        (b"\x12" + b"\xff" * 11, 1, "varint longer than 10 bytes"),
        (b"\x12\x80\x80\x80\x80\x08", 1, "record length 2147483648 is over protobuf's 2 GiB"),
    ],
)
def test_bad_top_level_framing_names_the_offset(tail: bytes, at: int, expected: str) -> None:
    with pytest.raises(BadInputError, match=rf"x\.scip: byte {len(METADATA) + at}: {expected}"):
        decode_scip_bytes(METADATA + tail, "x.scip")


def test_garbage_inside_a_document_names_the_document() -> None:
    good = document("a.py", occurrence([0, 0, 1], "s"))
    # A documents record whose relative_path claims 5 bytes but holds 1.
    garbage = bytes([0x12, 3, 0x0A, 5]) + b"a"
    with pytest.raises(
        BadInputError,
        match=rf"x\.scip: byte {len(METADATA + good) + 2} in documents\[1\]: not a valid "
        "Document record",
    ):
        decode_scip_bytes(METADATA + good + garbage, "x.scip")


def test_bad_range_names_the_record() -> None:
    stream = (
        METADATA
        + document("a.py", occurrence([0, 0, 1], "ok"))
        + document("b.py", occurrence([0, 0, 1], "ok"), occurrence([1, 2, 3, 4, 5], "bad"))
    )
    with pytest.raises(BadInputError, match=r"in documents\[1\]\.occurrences\[1\]: range has 5"):
        decode_scip_bytes(stream, "x.scip")


def test_only_an_index_whose_checksum_the_state_records_skips_the_checks(tmp_path: Path) -> None:
    stream = METADATA + document("b.py", occurrence([1, 2, 3, 4, 5], "bad"))
    index, state = tmp_path / "index.scip", tmp_path / "scip_state.json"
    index.write_bytes(stream)
    for recorded in (None, "0" * 16, {"index_xxh64": "0" * 16}, ["x"]):
        if recorded is None:
            state.unlink(missing_ok=True)
        else:
            state.write_text(json.dumps(recorded), encoding="utf-8")
        with pytest.raises(BadInputError, match=r"in documents\[0\]\.occurrences\[0\]"):
            read_written_index(index, state)
    # The checksum ``_write`` recorded: bytes this code wrote from checked records.
    state.write_text(json.dumps({"index_xxh64": xxh64_file(index)}), encoding="utf-8")
    assert read_written_index(index, state).documents[0].relative_path == "b.py"
    # Framing and parse errors are still errors.
    index.write_bytes(stream[:-3])
    state.write_text(json.dumps({"index_xxh64": xxh64_file(index)}), encoding="utf-8")
    with pytest.raises(BadInputError, match="truncated record"):
        read_written_index(index, state)


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (scip.Document(), r"in documents\[0\]: document has no relative_path"),
        (
            scip.Document(relative_path="m.py", occurrences=[scip.Occurrence(range=[0, 0, 1])]),
            r"in documents\[0\]\.occurrences\[0\]: occurrence has no symbol",
        ),
        (
            scip.Document(relative_path="m.py", occurrences=[scip.Occurrence(symbol="s")]),
            r"in documents\[0\]\.occurrences\[0\]: occurrence has no range",
        ),
        (
            scip.Document(
                relative_path="m.py",
                occurrences=[occurrence([0, 0, 1], "s", enclosing_range=[0, 0])],
            ),
            r"in documents\[0\]\.occurrences\[0\]: enclosing_range has 2 values",
        ),
        (
            scip.Document(
                relative_path="m.py",
                symbols=[
                    scip.SymbolInformation(symbol="s"),
                    scip.SymbolInformation(
                        symbol="t", relationships=[scip.Relationship(is_reference=True)]
                    ),
                ],
            ),
            r"in documents\[0\]\.symbols\[1\]\.relationships\[0\]: relationship has no symbol",
        ),
    ],
)
def test_record_rules_name_the_record(doc: scip.Document, expected: str) -> None:
    with pytest.raises(BadInputError, match=r"x\.scip: byte \d+ " + expected):
        decode_scip_bytes(METADATA + serialized(documents=[doc]), "x.scip")


def test_invalid_utf8_string_is_rejected() -> None:
    stream = METADATA + document("m.py", occurrence([0, 0, 1], "XX"))
    broken = stream.replace(b"XX", b"\xff\xfe")
    with pytest.raises(BadInputError, match=r"in documents\[0\]: .*not UTF-8"):
        decode_scip_bytes(broken, "x.scip")


def test_kind_names_come_from_the_generated_enum() -> None:
    kind = scip.SymbolInformation.Kind
    assert infer_kind("s", kind.StaticMethod) == "StaticMethod"
    assert infer_kind("s", kind.Concept) == "Concept"
    # A value newer than the vendored schema keeps its number.
    assert infer_kind("s", 999) == "Kind999"


# -- round trip (hypothesis) ---------------------------------------------------------

_names = st.text(min_size=1, max_size=12)
_texts = st.text(max_size=20)
_positions = st.integers(min_value=0, max_value=2**31 - 1)
_ranges = st.integers(3, 4).flatmap(lambda n: st.lists(_positions, min_size=n, max_size=n))
_roles = st.sets(st.sampled_from(scip.SymbolRole.values())).map(sum)


def _enum(enum: EnumTypeWrapper) -> st.SearchStrategy[int]:
    return st.sampled_from(sorted(set(enum.values())))


_diagnostics = st.builds(
    scip.Diagnostic,
    severity=_enum(scip.Severity),
    code=_texts,
    message=_texts,
    source=_texts,
    tags=st.lists(_enum(scip.DiagnosticTag), max_size=2),
)
_occurrences = st.builds(
    scip.Occurrence,
    range=_ranges,
    symbol=_names,
    symbol_roles=_roles,
    override_documentation=st.lists(_texts, max_size=2),
    syntax_kind=_enum(scip.SyntaxKind),
    diagnostics=st.lists(_diagnostics, max_size=1),
    enclosing_range=st.one_of(st.just([]), _ranges),
)
_relationships = st.builds(
    scip.Relationship,
    symbol=_names,
    is_reference=st.booleans(),
    is_implementation=st.booleans(),
    is_type_definition=st.booleans(),
    is_definition=st.booleans(),
)
_symbols = st.builds(
    scip.SymbolInformation,
    symbol=_names,
    documentation=st.lists(_texts, max_size=2),
    relationships=st.lists(_relationships, max_size=2),
    kind=_enum(scip.SymbolInformation.Kind),
    display_name=_texts,
    signature_documentation=st.one_of(
        st.none(),
        st.builds(
            scip.Document,
            language=_texts,
            text=_texts,
            occurrences=st.lists(_occurrences, max_size=1),
        ),
    ),
    enclosing_symbol=_texts,
)
_documents = st.builds(
    scip.Document,
    relative_path=_names,
    occurrences=st.lists(_occurrences, max_size=4),
    symbols=st.lists(_symbols, max_size=2),
    language=_texts,
    text=_texts,
    position_encoding=_enum(scip.PositionEncoding),
)
_indexes = st.builds(
    scip.Index,
    metadata=st.builds(
        scip.Metadata,
        tool_info=st.one_of(
            st.none(),
            st.builds(
                scip.ToolInfo, name=_texts, version=_texts, arguments=st.lists(_texts, max_size=2)
            ),
        ),
        project_root=_texts,
        text_document_encoding=_enum(scip.TextEncoding),
    ),
    documents=st.lists(_documents, max_size=3),
    external_symbols=st.lists(_symbols, max_size=2),
)


def scip_python_stream(index: scip.Index) -> bytes:
    """Serialize as scip-python does: the metadata, one Index per document, the externals."""
    parts = [serialized(metadata=index.metadata)]
    parts += [serialized(documents=[doc]) for doc in index.documents]
    parts.append(serialized(external_symbols=index.external_symbols))
    return b"".join(parts)


@settings(max_examples=150, deadline=None)
@given(_indexes)
def test_round_trip_through_the_generated_classes(index: scip.Index) -> None:
    for stream in (index.SerializeToString(), scip_python_stream(index)):
        assert decode_scip_bytes(stream) == index
        records = list(stream_scip_records(io.BytesIO(stream)))
        assert [r for r in records if isinstance(r, scip.Document)] == list(index.documents)
    assert scip_index_from_json(json.loads(json.dumps(scip_json_from_index(index)))) == index


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
    assert full_range(occs[0].range) == (0, 4, 0, 5)
    assert full_range(occs[0].enclosing_range) == (0, 0, 2, 3)
    assert occs[1].symbol_roles == 0 and not occs[1].enclosing_range
    assert index.metadata.tool_info.name == "scip-python"
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
                "occurrences": [{"range": [0, 0, 1], "symbol": "s", "symbol_roles": 2**40}],
            },
            r"documents\[0\]\.occurrences\[0\]\.symbol_roles: 1099511627776 does not fit an int32",
        ),
        (
            {"relative_path": "m.py", "occurrences": [{"range": [0, 0, 2**31], "symbol": "s"}]},
            r"documents\[0\]\.occurrences\[0\]\.range: expected non-negative int32",
        ),
        (
            {"relative_path": "m.py", "occurrences": [{"range": [0, 0, 1], "symbol": "\ud800"}]},
            r"documents\[0\]\.occurrences\[0\]\.symbol: string holds a lone surrogate",
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
    fixture_repo: tuple[Path, scip.Index],
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
    # scip-python ran on a staging tree of the manifest's files; the index still names the
    # repository as its root (the same tree gives the same bytes, whatever the staging path).
    assert index.metadata.project_root == root.resolve().as_uri()


def test_real_index_definitions_at_zero_based_lines(fixture_repo: tuple[Path, scip.Index]) -> None:
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


def test_real_index_non_ascii_columns_are_code_points(
    fixture_repo: tuple[Path, scip.Index],
) -> None:
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


def test_real_index_symbols_table(fixture_repo: tuple[Path, scip.Index]) -> None:
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
    fixture_repo: tuple[Path, scip.Index], tmp_path: Path
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


def _index(*docs: scip.Document, external: tuple[scip.SymbolInformation, ...] = ()) -> scip.Index:
    return scip.Index(documents=list(docs), external_symbols=list(external))


def _doc(path: str, informed: tuple[str, ...] = (), defined: tuple[str, ...] = ()) -> scip.Document:
    """A document giving information for ``informed`` symbols and defining ``defined``."""
    return scip.Document(
        relative_path=path,
        symbols=[
            scip.SymbolInformation(symbol=s, documentation=[f"{s} in {path}"]) for s in informed
        ],
        occurrences=[
            scip.Occurrence(symbol=s, range=[0, 0, 1], symbol_roles=scip.SymbolRole.Definition)
            for s in defined
        ],
    )


def _read_back(table: pa.Table) -> pa.Table:
    """The table as a stage reads its previous one: through Parquet."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return pq.read_table(pa.BufferReader(sink.getvalue()))


S, T, U = (
    "scip-python python p . `m`/S#",
    "scip-python python p . `m`/T#",
    "scip-python python p . `m`/U#",
)


@pytest.mark.parametrize(
    ("before", "after", "unchanged"),
    [
        # a.py no longer gives S: its row now comes from b.py, unchanged but second before.
        (
            _index(_doc("a.py", (S, T)), _doc("b.py", (S, U))),
            _index(_doc("a.py", (T,)), _doc("b.py", (S, U))),
            {"b.py"},
        ),
        # A changed earlier document now gives U first.
        (
            _index(_doc("a.py", (T,)), _doc("b.py", (S, U))),
            _index(_doc("a.py", (T, U)), _doc("b.py", (S, U))),
            {"b.py"},
        ),
        # A definition without information loses to external information that appeared.
        (
            _index(_doc("a.py", (S,)), _doc("b.py", (), (T,))),
            _index(
                _doc("a.py", (S,)),
                _doc("b.py", (), (T,)),
                external=(scip.SymbolInformation(symbol=T, documentation=["ext"]),),
            ),
            {"a.py", "b.py"},
        ),
        # A deleted document's rows are gone; a new one's are made.
        (
            _index(_doc("a.py", (S,)), _doc("b.py", (T,))),
            _index(_doc("b.py", (T,)), _doc("c.py", (U, S))),
            {"b.py"},
        ),
    ],
)
def test_symbols_kept_from_unchanged_documents_equal_a_clean_table(
    before: scip.Index, after: scip.Index, unchanged: set[str]
) -> None:
    previous = _read_back(symbols_table(before))
    kept = symbols_table(after, previous, unchanged)
    clean = symbols_table(after)
    assert kept.equals(clean) and kept.schema == clean.schema
    assert kept.to_pylist() == clean.to_pylist()


def test_an_unchanged_documents_rows_are_taken_from_the_previous_table() -> None:
    index = _index(_doc("a.py", (S,)), _doc("b.py", (T,)))
    previous = _read_back(symbols_table(index))
    # A mark only the previous table carries shows which rows were kept, not made again.
    marked = previous.set_column(
        previous.schema.get_field_index("documentation"),
        "documentation",
        [["kept", "kept"]],
    )
    kept = symbols_table(index, marked, {"b.py"})
    assert kept.column("documentation").to_pylist() == [f"{S} in a.py", "kept"]
