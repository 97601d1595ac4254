"""Excerpts: the text of a search result, bounded by a token budget.

A result is a whole unit (a function, a class...). When its text fits the budget it is
returned whole; otherwise the excerpt keeps the unit's signature (its first lines, up
to the one that opens the body) and as much of the matched lines as fits, with ``...``
where lines were left out, and says which lines it shows.

Tokens are counted as words and punctuation marks (``\\w+`` runs and single other
characters), which is at least as many as a BPE tokenizer of a code model usually
makes of code: a budget in these tokens is not exceeded in the model's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(r"\w+|[^\w\s]")
SIGNATURE_MAX_LINES = 6
ELISION = "..."


def count_tokens(text: str) -> int:
    """Return the number of tokens of ``text`` (see the module docstring)."""
    return len(_TOKEN.findall(text))


@dataclass(frozen=True)
class Excerpt:
    text: str
    tokens: int
    truncated: bool
    shown: list[tuple[int, int]]  # the line ranges shown, 1-based inclusive


def signature_lines(lines: list[str]) -> int:
    """Return how many leading lines of a unit make its signature: up to the first line
    that opens the body (ends with ``:``, ``{`` or ``=>``), at most ``SIGNATURE_MAX_LINES``."""
    for index, line in enumerate(lines[:SIGNATURE_MAX_LINES]):
        if line.rstrip().endswith((":", "{", "=>")):
            return index + 1
    return 1 if lines else 0


def excerpt(lines: list[str], first_line: int, match: tuple[int, int], budget: int) -> Excerpt:
    """Return the excerpt of a unit whose ``lines`` start at ``first_line``, for a match
    on lines ``match`` (1-based inclusive), in at most ``budget`` tokens."""
    last_line = first_line + len(lines) - 1
    whole = "\n".join(lines)
    tokens = count_tokens(whole)
    if tokens <= budget:
        return Excerpt(whole, tokens, False, [(first_line, last_line)] if lines else [])
    head = signature_lines(lines)
    lo = min(max(match[0], first_line + head), last_line + 1)
    hi = min(max(match[1], lo), last_line)
    kept: list[tuple[int, str]] = []
    used = 0
    for number in [*range(first_line, first_line + head), *range(lo, hi + 1)]:
        cost = count_tokens(lines[number - first_line]) + 1
        if used + cost > budget:
            break
        kept.append((number, lines[number - first_line]))
        used += cost
    parts: list[str] = []
    shown: list[tuple[int, int]] = []
    previous = first_line - 1
    for number, text in kept:
        if number != previous + 1:
            parts.append(ELISION)
        if shown and shown[-1][1] == number - 1:
            shown[-1] = (shown[-1][0], number)
        else:
            shown.append((number, number))
        parts.append(text)
        previous = number
    if previous < last_line:
        parts.append(ELISION)
    text = "\n".join(parts)
    return Excerpt(text, count_tokens(text), True, shown)


def share_budget(sizes: int, remaining: int, index: int) -> int:
    """Return the budget of result ``index`` of ``sizes`` results when ``remaining`` tokens
    are left: an even share of what is left, so unused budget flows to later results."""
    return max(0, remaining // max(1, sizes - index))
