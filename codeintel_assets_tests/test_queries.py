"""Synthetic queries: SCIP and ast sources, styles, positives, masking, JSONL."""

from __future__ import annotations

import io
import json
import keyword
import shutil
import sysconfig
import tokenize as pytokenize
from pathlib import Path

import pyarrow as pa
import pytest

from codeintel_assets.core.chunk_table import build_chunk_table, chunk_repository
from codeintel_assets.core.embedding import EmbeddingCache, HashingEmbedder
from codeintel_assets.core.errors import BadInputError
from codeintel_assets.core.manifest import build_manifest
from codeintel_assets.core.queries import (
    Definition,
    ast_definitions,
    call_query,
    doc_query,
    masked_query,
    name_query,
    read_queries_jsonl,
    remap_positives,
    synthetic_queries,
    write_queries_jsonl,
)
from codeintel_assets.core.schemas import SCIP_OCCURRENCES, SCIP_SYMBOLS
from codeintel_assets.core.tokens import tokenize


@pytest.fixture(scope="module")
def stdlib_chunks(tmp_path_factory) -> pa.Table:
    """Chunks of a copy of the standard library's json and email packages."""
    root = tmp_path_factory.mktemp("repo")
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for package in ("json", "email"):
        shutil.copytree(
            stdlib / package, root / package, ignore=shutil.ignore_patterns("__pycache__", "test*")
        )
    embedder = HashingEmbedder(dim=16)
    manifest = build_manifest(root).files
    chunks, stats = chunk_repository("r", root, manifest, embedder)
    cache = EmbeddingCache(root.parent / "cache", embedder.model_id, embedder.dim)
    table = build_chunk_table(chunks, embedder, cache, stats)
    return table


def code_identifier_tokens(code: str) -> set[str]:
    """Lexical tokens of the NAME tokens of ``code`` (the test's own reading of 'identifier')."""
    names = [
        t.string
        for t in pytokenize.generate_tokens(io.StringIO(code).readline)
        if t.type == pytokenize.NAME and not keyword.iskeyword(t.string)
    ]
    return {tok for name in names for tok in tokenize(name)}


def test_ast_fallback_makes_all_styles_with_positives_on_the_definition_line(stdlib_chunks):
    queries = synthetic_queries(None, None, stdlib_chunks, count=60, seed=0)
    assert len(queries) == 60
    assert {q.style for q in queries} == {"heldout", "doc", "name", "masked", "call"}
    assert sum(q.style == "masked" for q in queries) == 12
    rows = {
        r["id"]: r
        for r in stdlib_chunks.select(
            ["id", "uri", "start_line", "end_line", "content"]
        ).to_pylist()
    }
    for q in queries:
        assert q.positives, q
        for p in q.positives:
            assert rows[p]["uri"] == q.uri
            assert rows[p]["start_line"] <= q.line <= rows[p]["end_line"]
        name = q.symbol.split("::")[1].split(".")[-1]
        line = rows[q.positives[0]]["content"].splitlines()[
            q.line - rows[q.positives[0]]["start_line"]
        ]
        assert f"def {name}" in line or f"class {name}" in line
    assert len({q.query_id for q in queries}) == len(queries)


def test_call_queries_are_a_use_of_the_target_outside_its_chunks(stdlib_chunks):
    queries = synthetic_queries(None, None, stdlib_chunks, count=150, seed=0)
    rows = stdlib_chunks.select(["id", "uri", "start_line", "end_line", "content"]).to_pylist()
    calls = [q for q in queries if q.style == "call"]
    assert len(calls) == 30
    for q in calls:
        name = q.symbol.split("::")[1].split(".")[-1]
        assert f"{name}(" in q.text, q
        assert not q.text.startswith(("import ", "from ")) and len(q.text) >= 12
        # The line is real code of some chunk, and that chunk is not a positive.
        holders = [r for r in rows if q.text in r["content"]]
        assert holders and not {r["id"] for r in holders} <= set(q.positives), q
    assert len({q.text for q in calls}) > 25


def test_masked_queries_share_no_identifier_token_with_their_targets(stdlib_chunks):
    queries = synthetic_queries(None, None, stdlib_chunks, count=150, seed=3)
    contents = dict(
        zip(stdlib_chunks["id"].to_pylist(), stdlib_chunks["content"].to_pylist(), strict=True)
    )
    masked = [q for q in queries if q.style == "masked"]
    assert len(masked) >= 30
    for q in masked:
        target = "".join(contents[p] for p in q.positives)
        assert not set(tokenize(q.text)) & code_identifier_tokens(target), q
        assert len(q.text.split()) >= 3


def test_sampling_is_deterministic_and_seeded(stdlib_chunks):
    a = synthetic_queries(None, None, stdlib_chunks, count=30, seed=0)
    b = synthetic_queries(None, None, stdlib_chunks, count=30, seed=0)
    c = synthetic_queries(None, None, stdlib_chunks, count=30, seed=1)
    assert [q.to_dict() for q in a] == [q.to_dict() for q in b]
    assert [q.query_id for q in a] != [q.query_id for q in c]


def test_scip_definitions_convert_zero_based_lines():
    code = (
        "import os\n\n\ndef parse_config_file(path):\n"
        "    '''Read settings from disk.'''\n    return os.path.exists(path)\n"
    )
    caller = "from a import parse_config_file\nsettings = parse_config_file('x.ini')\n"
    chunks = pa.table(
        {
            "id": [1, 2, 3],
            "uri": ["a.py", "a.py", "b.py"],
            "start_line": [1, 4, 1],
            "end_line": [3, 6, 2],
            "start_byte": [0, 11, 0],
            "content": [code[:11], code[11:], caller],
            "lang": ["python"] * 3,
        }
    )
    symbol = "scip-python python r 0 a/parse_config_file()."
    symbols = pa.Table.from_pylist(
        [
            {
                "symbol": symbol,
                "kind": "Function",
                "display_name": "parse_config_file",
                "documentation": "Read settings from disk. More text.",
                "signature": None,
                "enclosing_symbol": None,
                "relationships": [],
                "uri": "a.py",
            }
        ],
        schema=SCIP_SYMBOLS,
    )
    occurrences = pa.Table.from_pylist(
        [
            {
                "symbol": symbol,
                "uri": "a.py",
                "role": "def",
                "roles": 1,
                "start_line": 3,
                "start_char": 4,
                "end_line": 3,
                "end_char": 21,
            },
            {
                "symbol": symbol,
                "uri": "a.py",
                "role": "ref",
                "roles": 0,
                "start_line": 0,
                "start_char": 0,
                "end_line": 0,
                "end_char": 1,
            },
        ]
        + [
            # The import (skipped: not a use) and the call in b.py, SCIP's 0-based lines.
            {
                "symbol": symbol,
                "uri": "b.py",
                "role": "ref",
                "roles": 0,
                "start_line": line,
                "start_char": 0,
                "end_line": line,
                "end_char": 1,
            }
            for line in (0, 1)
        ],
        schema=SCIP_OCCURRENCES,
    )
    queries = synthetic_queries(symbols, occurrences, chunks, count=5)
    by_style = {q.style: q for q in queries}
    assert by_style["heldout"].text == by_style["doc"].text
    assert by_style["doc"].text == "Read settings from disk."
    assert by_style["name"].text == "parse config file"
    assert by_style["doc"].line == 4 and by_style["doc"].positives == [2]
    assert by_style["doc"].symbol == symbol
    assert by_style["call"].text == "settings = parse_config_file('x.ini')"
    assert by_style["call"].positives == [2]
    # No word of that docstring is an identifier of the target, so nothing is masked.
    assert by_style["masked"].text == "Read settings from disk. More text."
    assert masked_query("Parse config file into nested settings mapping", code) == (
        "into nested settings mapping"
    )
    # Masking leaves only stopwords and one content word: dropped.
    assert masked_query("Parse the config file at path quickly", code) is None


def test_style_helpers():
    assert doc_query("Return the value.  Second sentence.") == "Return the value."
    assert doc_query("Short.") is None
    assert name_query("HTTPServer.get_URL") == "http server get url"
    assert name_query("run") is None


def test_remap_positives_to_another_chunking(stdlib_chunks):
    queries = synthetic_queries(None, None, stdlib_chunks, count=9)
    windows = pa.table(
        {"id": [7, 8], "uri": [queries[0].uri] * 2, "start_line": [1, 41], "end_line": [40, 10_000]}
    )
    remapped = remap_positives(queries, windows)
    assert remapped and all(q.uri == queries[0].uri for q in remapped)
    assert all(q.positives == ([7] if q.line <= 40 else [8]) for q in remapped)


def test_jsonl_roundtrip(tmp_path, stdlib_chunks):
    queries = synthetic_queries(None, None, stdlib_chunks, count=12)
    path = tmp_path / "eval" / "queries.jsonl"
    write_queries_jsonl(queries, path)
    assert read_queries_jsonl(path) == queries


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ("not json", r"q.jsonl: line 2: invalid JSON"),
        ("[1, 2]", r"q.jsonl: line 2: expected a JSON object"),
        ('{"query_id": "x"}', r"q.jsonl: line 2: field 'text' is missing"),
        (None, r"q.jsonl: line 2: field 'line' should be int, got str"),
        ("STYLE", r"q.jsonl: line 2: field 'style' is 'fuzzy'"),
        ("POS", r"q.jsonl: line 2: field 'positives' should list integer chunk ids"),
    ],
)
def test_jsonl_bad_records_name_file_line_and_field(tmp_path, record, message):
    good = {
        "query_id": "q1",
        "text": "t",
        "style": "doc",
        "symbol": "s",
        "positives": [1],
        "uri": "a.py",
        "line": 3,
    }
    if record is None:
        record = json.dumps({**good, "line": "3"})
    elif record == "STYLE":
        record = json.dumps({**good, "style": "fuzzy"})
    elif record == "POS":
        record = json.dumps({**good, "positives": ["1"]})
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps(good) + "\n" + record + "\n", encoding="utf-8")
    with pytest.raises(BadInputError, match=message):
        read_queries_jsonl(path)


def test_ast_fallback_skips_files_that_do_not_parse():
    chunks = pa.table(
        {
            "id": [1, 2],
            "uri": ["bad.py", "ok.py"],
            "start_byte": [0, 0],
            "content": ["def broken(:\n", 'def fine_name():\n    """Does a thing."""\n'],
            "lang": ["python", "python"],
        }
    )
    definitions = ast_definitions(chunks)
    assert [d.symbol for d in definitions] == ["ok.py::fine_name"]
    assert definitions[0].line == 1 and definitions[0].kind == "function"


def _one_chunk_per_file(files: dict[str, str]) -> pa.Table:
    rows = [
        {"id": i, "uri": uri, "start_line": 1, "end_line": text.count("\n") + 1, "start_byte": 0}
        | {"content": text, "lang": "python"}
        for i, (uri, text) in enumerate(sorted(files.items()), start=1)
    ]
    return pa.Table.from_pylist(rows)


def test_ast_call_sites_are_calls_of_that_definition_only():
    chunks = _one_chunk_per_file(
        {
            "a.py": 'def open(path):\n    """Open a thing from the path."""\n    return path\n\n\n'
            'def helper_tool(x):\n    """Compute the helper value."""\n    return x\n',
            "b.py": "from a import helper_tool as tool\n"
            'with open("p", encoding="utf-8") as fh:\n'
            "    value = tool(fh.read())\n",
            "c.py": "from a import (\n    helper_tool,\n)\nresult = helper_tool(1)\n",
        }
    )
    sites = {d.name: d.call_sites for d in ast_definitions(chunks)}
    # b.py calls the builtin open, not a.py's; helper_tool is called where it is imported.
    assert sites["open"] == ()
    assert sites["helper_tool"] == (("b.py", 3), ("c.py", 4))
    queries = synthetic_queries(None, None, chunks, count=8)
    calls = {q.symbol: q.text for q in queries if q.style == "call"}
    assert calls["a.py::helper_tool"] in ("value = tool(fh.read())", "result = helper_tool(1)")
    assert "a.py::open" not in calls


def test_a_continued_list_of_names_is_not_call_context():
    definition = Definition("s", "helper_tool", "function", "Doc.", "a.py", 1, (("c.py", 2),))
    spans = {"c.py": [(1, 4, 1)]}  # one chunk (id 1) holds c.py; the target's chunk is 99
    assert call_query(definition, spans, [99], lambda uri, line: "    helper_tool,") is None
    assert call_query(definition, spans, [99], lambda uri, line: "x = helper_tool()") == (
        "x = helper_tool()"
    )
