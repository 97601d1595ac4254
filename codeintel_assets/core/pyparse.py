"""Python source parsed by ``ast``, robust to a CPython bug every parser of ours shares."""

from __future__ import annotations

import ast

# What ``parse_python`` may raise for a file that is not parseable Python (or too deep).
PARSE_ERRORS = (SyntaxError, ValueError, RecursionError, MemoryError, SystemError)


def parse_python(text: str, filename: str = "<unknown>") -> ast.Module:
    """Return ``ast.parse(text)``, parsed again once after CPython's spurious SystemError.

    CPython before 3.11.8/3.12.1 can raise "AST constructor recursion depth mismatch"
    for a valid file when its recursion counter was left off by an earlier parse in the
    same process (gh-106905: a too-deep file, then any file); the next call starts from a
    reset counter. Raises ``SyntaxError``, ``ValueError`` (NUL bytes), ``RecursionError``
    or ``MemoryError`` (nesting too deep) and ``SystemError`` when it happens again.
    """
    try:
        return ast.parse(text, filename=filename)
    except SystemError:
        return ast.parse(text, filename=filename)
