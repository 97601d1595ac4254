"""The definition channel: which chunk defines what a query names."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from codeintel_assets.core.channels import LexicalChannels, load_lexical_channels
from codeintel_assets.core.definitions import (
    build_definitions,
    definition_key,
    definition_table,
    load_definitions,
    query_words,
)
from codeintel_assets.core.errors import CodeintelError
from codeintel_assets.core.lexical import build_bm25

# Syntax rows (cst_nodes columns): definitions where tree-sitter puts them.
NODES = [
    # uri, kind, start_byte, name
    ("mail/header.py", "function_definition", 10, "parse_header"),
    ("mail/header.py", "class_definition", 900, "HeaderLine"),
    ("mail/header.py", "function_definition", 930, "small_a"),  # merged with small_b
    ("mail/header.py", "function_definition", 960, "small_b"),
    ("mail/header.py", "function_definition", 1010, "parse"),
    ("mail/header.py", "identifier", 14, "parse_header"),  # not a definition kind
    ("mail/message.py", "class_definition", 0, "Message"),
    ("log/manager.py", "function_definition", 40, "_fixupChildren"),
    ("log/other.py", "function_definition", 0, "parse_header"),
    ("gone.py", "function_definition", 0, "orphan"),  # no chunk covers it
]
# Chunks: id, uri, start_byte, end_byte (they cover each file's bytes once).
CHUNKS = [
    (1, "mail/header.py", 0, 400),
    (2, "mail/header.py", 400, 900),  # the rest of parse_header
    (3, "mail/header.py", 900, 1000),  # class header and two small methods, merged
    (4, "mail/header.py", 1000, 1200),
    (5, "mail/message.py", 0, 800),
    (7, "log/manager.py", 0, 300),
    (8, "log/other.py", 0, 100),
]


def _table(rows, names) -> pa.Table:
    return pa.table(dict(zip(names, list(zip(*rows, strict=True)), strict=True)))


@pytest.fixture
def nodes() -> pa.Table:
    return _table(NODES, ["uri", "kind", "start_byte", "name"])


@pytest.fixture
def chunks() -> pa.Table:
    return _table(CHUNKS, ["id", "uri", "start_byte", "end_byte"])


def test_keys_join_identifier_parts():
    assert definition_key("_fixupChildren") == "fixupchildren"
    assert definition_key("HTTPServer") == "httpserver"
    assert definition_key("parse_URL2json") == "parseurl2json"


def test_each_definition_maps_to_the_chunk_holding_its_start(nodes, chunks):
    table = definition_table(nodes, chunks)
    rows = {(r["uri"], r["name"]): r["chunk_id"] for r in table.to_pylist()}
    assert rows[("mail/header.py", "parse_header")] == 1
    # Merged small definitions each keep an entry, in the chunk they share.
    assert rows[("mail/header.py", "HeaderLine")] == 3
    assert rows[("mail/header.py", "small_a")] == rows[("mail/header.py", "small_b")] == 3
    assert rows[("mail/header.py", "parse")] == 4
    assert ("gone.py", "orphan") not in rows
    assert table.num_rows == 8
    assert table["key"].to_pylist()[:2] == ["fixupchildren", "parseheader"]  # file order


def test_query_words_mark_whole_identifiers_and_code_use():
    words, whole, code_like = query_words("self._fixupChildren(ph, rv) message")
    assert words == ["self", "fixup", "children", "ph", "rv", "message"]
    assert "fixupchildren" in whole and "fixupchildren" in code_like
    assert "message" in whole and "message" not in code_like


def test_search_ranks_definitions_by_what_the_query_names(nodes, chunks):
    index = build_definitions(nodes, chunks)
    # Prose words naming a multi-word definition: both files' parse_header, in table order.
    assert [i for i, _ in index.search("parse header of a mail", 10)] == [8, 1]
    # Code at the cursor: the called method's definition.
    assert index.search("self._fixupChildren(ph, rv)", 10) == [(7, 2.5)]
    # A single prose word names nothing; the same word called as code does.
    assert index.search("the message was lost", 10) == []
    assert index.search("msg = Message()", 10) == [(5, 1.5)]
    assert [i for i, _ in index.search("x.parse()", 10)] == [4]
    # A whole identifier outranks the same words as prose; longer runs outrank shorter.
    ranked = index.search("HeaderLine then parse header", 10)
    assert ranked[0] == (3, 2.5) and {i for i, s in ranked[1:]} == {1, 8}
    # Two definitions the query names equally tie on score (fusion ranks them alike).
    assert {s for _, s in index.search("parse header", 10)} == {2.0}
    assert index.search("small_a(x)", 10) == [(3, 2.5)]
    assert index.search("parse header", 1) == [(8, 2.0)]
    assert index.search("", 10) == [] and index.search("?!", 10) == []
    assert index.search("parse header", 0) == []


def test_definitions_travel_with_the_bm25_index(tmp_path, nodes, chunks):
    definitions = build_definitions(nodes, chunks)
    ids = chunks.column("id").to_numpy()
    names = {2: "parse_header body", 3: "HeaderLine", 7: "Manager._fixupChildren"}
    texts = [f"{uri} {names.get(i, '')}" for i, uri, _, _ in CHUNKS]
    LexicalChannels(build_bm25(ids, texts), definitions).save(tmp_path / "bm25")
    loaded = load_lexical_channels(tmp_path / "bm25")
    assert loaded.definitions is not None and len(loaded.definitions) == len(definitions)
    channels = loaded.channels("self._fixupChildren(ph, rv)", 5)
    assert set(channels) == {"bm25", "definition"}
    assert channels["definition"] == [(7, 2.5)] and channels["bm25"][0][0] == 7
    # An index built without definitions offers BM25 alone.
    LexicalChannels(build_bm25(ids, texts)).save(tmp_path / "plain")
    assert set(load_lexical_channels(tmp_path / "plain").channels("parse", 5)) == {"bm25"}


def test_unreadable_definition_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "definitions.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(CodeintelError, match="definitions.parquet cannot be read"):
        load_definitions(bad)
    pq.write_table(pa.table({"key": ["a"]}), bad)
    with pytest.raises(CodeintelError, match="lacks columns"):
        load_definitions(bad)
