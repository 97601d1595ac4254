"""Identifier splitting (core/tokens.py): the words every channel reads in code."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codeintel_assets.core.tokens import (
    ascii_word_parts,
    identifier_parts,
    identifier_tokens,
    tokenize,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("HTTPServer", ["httpserver", "http", "server"]),
        ("parse_URL2json", ["parse_url2json", "parse", "url", "2", "json"]),
        ("__init__", ["__init__", "init"]),
        ("x", ["x"]),
        ("getHTTPResponseCode", ["gethttpresponsecode", "get", "http", "response", "code"]),
        ("naïve_Café", ["naïve_café", "naïve", "café"]),
        ("ÉcoleNormale", ["écolenormale", "école", "normale"]),
        ("utf8", ["utf8", "utf", "8"]),
        ("MAX_SIZE", ["max_size", "max", "size"]),
    ],
)
def test_tokenize_tricky_identifiers(text, expected):
    assert tokenize(text) == expected


def test_tokenize_drops_punctuation_and_stopwords():
    assert tokenize("") == []
    assert tokenize("?!... ()") == []
    assert tokenize("the parser of the URL") == ["parser", "url"]
    assert tokenize("self.read_file(path)") == ["self", "read_file", "read", "file", "path"]


def test_identifier_parts():
    assert identifier_parts("XMLHttpRequest") == ["xml", "http", "request"]
    assert identifier_parts("__") == []


def test_identifier_tokens_read_python_names_not_strings():
    code = 'def parse_header(line):\n    return "quoted words"  # a comment\n'
    assert identifier_tokens(code) == {"parse_header", "parse", "header", "line"}
    # Not Python: every identifier-looking word counts.
    assert identifier_tokens("function greetUser() {") == {"function", "greetuser", "greet", "user"}


def _regex_split(text: str) -> list[str]:
    """The test embedder's former splitter, kept here as the reference its vectors came from."""
    return [
        part.lower()
        for word in re.findall(r"[A-Za-z0-9]+", text)
        for part in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", word)
    ]


@given(st.text(alphabet="aAbBzZ09_ é.(xX", max_size=24))
def test_ascii_word_parts_equal_the_former_splitter(text):
    assert ascii_word_parts(text) == _regex_split(text)
