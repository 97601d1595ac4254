"""The definition channel: which unit defines what a query names."""

from __future__ import annotations

import pyarrow as pa

from codeintel_assets.core.definitions import (
    build_definitions,
    definition_key,
    definition_table,
    query_words,
)
from codeintel_assets.core.schemas import UNITS

# Units (the UNITS columns that matter here), in file order.
UNITS_ROWS = [
    # unit_id, uri, start_line, kind, name
    (1, "log/manager.py", 3, "method", "_fixupChildren"),
    (2, "log/other.py", 1, "function", "parse_header"),
    (3, "mail/header.py", 1, "module", "header.py"),  # a module block names nothing
    (4, "mail/header.py", 5, "function", "parse_header"),
    (5, "mail/header.py", 40, "class", "HeaderLine"),
    (6, "mail/header.py", 42, "method", "small_a"),
    (7, "mail/header.py", 44, "method", "parse"),
    (8, "mail/message.py", 1, "class", "Message"),
    (9, "README.md", 1, "section", "Usage"),  # the chunk-units of unparsed files name nothing
    (10, "x.py", 1, "function", "__"),  # a name of no identifier part has no key
    (11, "x.py", 3, "function", ""),
]


def _units() -> pa.Table:
    rows = [
        {
            "unit_id": i,
            "uri": uri,
            "start_line": line,
            "end_line": line + 1,
            "start_byte": 0,
            "end_byte": 1,
            "kind": kind,
            "name": name,
            "qualified_name": name,
            "parent_unit_id": None,
            "lang": "python",
            "first_chunk_id": i,
        }
        for i, uri, line, kind, name in UNITS_ROWS
    ]
    return pa.Table.from_pylist(rows, schema=UNITS)


def test_keys_join_identifier_parts():
    assert definition_key("_fixupChildren") == "fixupchildren"
    assert definition_key("HTTPServer") == "httpserver"
    assert definition_key("parse_URL2json") == "parseurl2json"


def test_table_keeps_named_definition_units_only():
    table = definition_table(_units())
    assert table["unit_id"].to_pylist() == [1, 2, 4, 5, 6, 7, 8]
    assert table["key"].to_pylist()[:2] == ["fixupchildren", "parseheader"]


def test_query_words_mark_whole_identifiers_and_code_use():
    words, whole, code_like = query_words("self._fixupChildren(ph, rv) message")
    assert words == ["self", "fixup", "children", "ph", "rv", "message"]
    assert "fixupchildren" in whole and "fixupchildren" in code_like
    assert "message" in whole and "message" not in code_like
    # A query that is one identifier names it, even without code punctuation.
    assert query_words("Blueprint")[2] == {"blueprint"}
    assert query_words("a Blueprint")[2] == set()


def test_search_ranks_definitions_by_what_the_query_names():
    index = build_definitions(_units())
    # Prose words naming a multi-word definition: both files' parse_header, in table order.
    assert [i for i, _ in index.search("parse header of a mail", 10)] == [2, 4]
    # Code at the cursor: the called method's definition.
    assert index.search("self._fixupChildren(ph, rv)", 10) == [(1, 2.5)]
    # A single prose word names nothing; the same word called as code, or alone, does.
    assert index.search("the message was lost", 10) == []
    assert index.search("msg = Message()", 10) == [(8, 1.5)]
    assert index.search("Message", 10) == [(8, 1.5)]
    assert [i for i, _ in index.search("x.parse()", 10)] == [7]
    # A whole identifier outranks the same words as prose; longer runs outrank shorter.
    ranked = index.search("HeaderLine then parse header", 10)
    assert ranked[0] == (5, 2.5) and {i for i, s in ranked[1:]} == {2, 4}
    # Two definitions the query names equally tie on score (fusion ranks them alike).
    assert {s for _, s in index.search("parse header", 10)} == {2.0}
    assert index.search("parse header", 1) == [(2, 2.0)]
    assert index.search("", 10) == [] and index.search("?!", 10) == []
    assert index.search("parse header", 0) == []
    # Module blocks and unparsed sections are never definitions.
    assert index.search("Usage", 10) == [] and index.search("header.py", 10) == []
