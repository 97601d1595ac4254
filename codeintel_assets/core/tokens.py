"""Identifier splitting: the one place that says what the words of code are.

An identifier yields its lower-cased parts — snake_case, camelCase and digit runs split,
an acronym's last capital starting the next word (``parse_URL2json`` → ``parse url 2
json``; ``HTTPServer`` → ``http server``). Every reader of code words uses these
functions: BM25's tokens (``tokenize``), the definition channel's keys and query words
(``IDENTIFIER``, ``identifier_parts``), the masking of evaluation queries
(``identifier_tokens``) and the test embedder's words (``ascii_word_parts``).
"""

from __future__ import annotations

import io
import keyword
import re
import tokenize as pytokenize

from bm25s.stopwords import STOPWORDS_EN

# Unicode word runs: letters, digits and underscores (identifiers and prose words alike).
WORD = re.compile(r"\w+")
# An identifier: a word that does not start with a digit.
IDENTIFIER = re.compile(r"[^\W\d]\w*")
_ASCII_WORD = re.compile(r"[A-Za-z0-9]+")
_STOPWORDS = frozenset(STOPWORDS_EN)


def identifier_parts(word: str) -> list[str]:
    """Return the lower-cased sub-words of one identifier (snake_case, camelCase, digits).

    ``HTTPServer`` → ``[http, server]``; ``parse_URL2json`` → ``[parse, url, 2, json]``;
    ``__init__`` → ``[init]``. Works on any script: case changes are read with
    ``str.isupper``/``str.islower``, not ASCII ranges.
    """
    parts: list[str] = []
    for piece in word.split("_"):
        parts.extend(_case_parts(piece))
    return [p.lower() for p in parts if p]


def _case_parts(piece: str) -> list[str]:
    """Split one underscore-free piece on digit runs and case changes."""
    out: list[str] = []
    current = ""
    for i, ch in enumerate(piece):
        if not current:
            current = ch
            continue
        prev = current[-1]
        nxt = piece[i + 1] if i + 1 < len(piece) else ""
        boundary = (
            ch.isdigit() != prev.isdigit()
            or (prev.islower() and ch.isupper())
            # The last capital of an acronym starts the next word: HTTPServer → HTTP|Server.
            or (prev.isupper() and ch.isupper() and nxt.islower())
        )
        if boundary:
            out.append(current)
            current = ch
        else:
            current += ch
    if current:
        out.append(current)
    return out


def tokenize(text: str) -> list[str]:
    """Return the lexical tokens of ``text``: each word lower-cased plus its identifier parts.

    English stopwords are dropped (they carry no signal in code search and would match
    every docstring); an empty or punctuation-only text gives ``[]``.
    """
    tokens: list[str] = []
    for word in WORD.findall(text):
        whole = word.lower()
        parts = identifier_parts(word)
        if whole not in _STOPWORDS and (len(parts) != 1 or parts[0] != whole):
            tokens.append(whole)
        tokens.extend(p for p in parts if p not in _STOPWORDS)
    return tokens


def identifier_tokens(code: str) -> set[str]:
    """Return the lexical tokens of every identifier in ``code`` (keywords excluded).

    Python is read with ``tokenize`` so strings and comments are not identifiers; code
    that does not tokenize (other languages, fragments) falls back to every word that
    looks like an identifier, which yields more tokens, never fewer.
    """
    names: list[str] = []
    try:
        for tok in pytokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type == pytokenize.NAME and not keyword.iskeyword(tok.string):
                names.append(tok.string)
    except (pytokenize.TokenError, SyntaxError):
        names = IDENTIFIER.findall(code)
    return {t for name in names for t in tokenize(name)}


def ascii_word_parts(text: str) -> list[str]:
    """Return the identifier parts of every ASCII letter-and-digit run of ``text``, in order.

    The words of the test embedder: no stopwords dropped, no whole identifiers kept, and
    anything outside ``[A-Za-z0-9]`` separates words (so its vectors stay as they were
    when it had its own splitter).
    """
    return [part for word in _ASCII_WORD.findall(text) for part in identifier_parts(word)]
