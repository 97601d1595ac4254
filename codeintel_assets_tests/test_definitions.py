"""The definition channel: which chunk defines what a query names."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from codeintel_assets.core.definitions import (
    build_definitions,
    definition_key,
    definition_table,
    load_definitions,
    query_words,
)
from codeintel_assets.core.errors import CodeintelError
from codeintel_assets.core.lexical import build_bm25, load_bm25

CHUNKS = [
    # id, uri, name, kind, start_byte
    (1, "mail/header.py", "parse_header", "function", 0),
    (2, "mail/header.py", "parse_header", "function", 400),  # second piece of the same function
    (3, "mail/header.py", "HeaderLine", "class", 900),
    (4, "mail/header.py", "HeaderLine.parse", "method", 1000),
    (5, "mail/message.py", "Message", "class", 0),
    (6, "mail/message.py", None, "module", 800),
    (7, "log/manager.py", "Manager._fixupChildren", "method", 0),
    (8, "log/other.py", "parse_header", "function", 0),  # the same name in another file
]


@pytest.fixture
def chunks() -> pa.Table:
    columns = list(zip(*CHUNKS, strict=True))
    names = ["id", "uri", "name", "kind", "start_byte"]
    return pa.table(dict(zip(names, columns, strict=True)))


def test_keys_join_identifier_parts():
    assert definition_key("_fixupChildren") == "fixupchildren"
    assert definition_key("HTTPServer") == "httpserver"
    assert definition_key("parse_URL2json") == "parseurl2json"


def test_table_keeps_the_first_chunk_of_each_named_definition(chunks):
    table = definition_table(chunks)
    rows = {(r["uri"], r["name"]): r for r in table.to_pylist()}
    assert rows[("mail/header.py", "parse_header")]["chunk_id"] == 1
    assert rows[("mail/header.py", "HeaderLine.parse")]["key"] == "parse"
    assert ("mail/message.py", None) not in rows
    assert table.num_rows == 6


def test_query_words_mark_whole_identifiers_and_code_use():
    words, whole, code_like = query_words("self._fixupChildren(ph, rv) message")
    assert words == ["self", "fixup", "children", "ph", "rv", "message"]
    assert "fixupchildren" in whole and "fixupchildren" in code_like
    assert "message" in whole and "message" not in code_like


def test_search_ranks_definitions_by_what_the_query_names(chunks):
    index = build_definitions(chunks)
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
    assert index.search("parse header", 1) == [(8, 2.0)]
    assert index.search("", 10) == [] and index.search("?!", 10) == []
    assert index.search("parse header", 0) == []


def test_definitions_travel_with_the_bm25_index(tmp_path, chunks):
    definitions = build_definitions(chunks)
    ids = chunks.column("id").to_numpy()
    texts = [f"{uri} {name}" for _, uri, name, _, _ in CHUNKS]
    build_bm25(ids, texts, definitions).save(tmp_path / "bm25")
    loaded = load_bm25(tmp_path / "bm25")
    assert loaded.definitions is not None and len(loaded.definitions) == len(definitions)
    channels = loaded.channels("self._fixupChildren(ph, rv)", 5)
    assert set(channels) == {"bm25", "definition"}
    assert channels["definition"] == [(7, 2.5)] and channels["bm25"][0][0] == 7
    # An index built without definitions offers BM25 alone.
    build_bm25(ids, texts).save(tmp_path / "plain")
    assert set(load_bm25(tmp_path / "plain").channels("parse", 5)) == {"bm25"}


def test_unreadable_definition_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "definitions.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(CodeintelError, match="definitions.parquet cannot be read"):
        load_definitions(bad)
    pq.write_table(pa.table({"key": ["a"]}), bad)
    with pytest.raises(CodeintelError, match="lacks columns"):
        load_definitions(bad)
