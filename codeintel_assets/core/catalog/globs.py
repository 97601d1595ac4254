"""Path globs for catalog filters: one semantics, two evaluators (SQL ``LIKE`` and Python).

Semantics (the contract both evaluators follow)
------------------------------------------------
A glob is matched against a chunk's ``uri`` (repository-relative POSIX path) with
**gitignore pattern rules** as implemented by ``pathspec`` ("gitignore" style), plus
``{a,b}`` brace alternation:

* ``*`` matches any run of characters except ``/``; ``?`` one character except ``/``;
  ``[abc]`` / ``[a-z]`` / ``[!a]`` are character classes; ``\\x`` matches ``x`` literally.
* ``**`` as a whole segment spans directories: ``**/x`` (x at any depth), ``a/**`` (all
  under ``a``), ``a/**/b`` (zero or more directories between).
* A glob without a ``/`` (other than a trailing one) matches a path component at any
  depth: ``*.py`` matches ``pkg/mod.py``; ``tests`` matches ``tests/a.py`` and ``x/tests/b.py``.
  A glob with a ``/`` in the middle or at the start is anchored at the repository root.
* A glob that matches a directory matches everything under it (``/pkg/mod*`` matches
  ``pkg/module/x.py``), except that a whole final ``*`` segment matches one level only
  (``pkg/*`` matches ``pkg/a.py``, not ``pkg/sub/b.py``; use ``pkg/**`` or ``pkg/``).
  A trailing ``/`` limits the glob to directories.
* ``{a,b,c}`` (with at least one top-level comma, outside a character class) expands into
  alternatives before matching; a path matches when any alternative does.
* A leading ``!`` or ``#`` is literal (it is not a gitignore negation or comment), and
  quotes, ``%``, ``_`` and SQL fragments have no meaning at all: they match themselves.

A filter keeps a uri when it matches **any** include glob (or there are none) and
**no** exclude glob.

How the two evaluators share it
-------------------------------
``compile_glob`` translates a glob into ``LIKE`` patterns (escaped with ``\\``, always
bound as parameters). When the translation is *exact* (literal paths, directory
prefixes, ``*.ext``, ``/dir/prefix*``) SQL alone decides. Otherwise (character
classes, ``**`` in the middle, ``?``, braces with complex alternatives...) the ``LIKE``
patterns are a *superset* prefilter (a literal prefix or a literal run every match
must contain) and :meth:`PathFilter.matches` post-filters the rows in Python with
``pathspec``. Property tests check both facts against ``pathspec``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import pathspec

from codeintel_assets.core.errors import BadInputError

LIKE_ESCAPE = "\\"
_SPECIAL = frozenset("*?[\\")
_MAX_ALTERNATIVES = 64


@dataclass(frozen=True)
class LikeCondition:
    """A disjunction ``uri LIKE p1 OR uri LIKE p2 ...`` (``conjuncts`` ANDed per alternative).

    ``alternatives`` is a tuple of alternatives; each alternative is a tuple of LIKE
    patterns that must all match. An empty alternative matches everything.
    """

    alternatives: tuple[tuple[str, ...], ...]

    def sql(self, column: str) -> tuple[str, list[str]]:
        """Return a SQL boolean expression over ``column`` and its bound parameters."""
        parts: list[str] = []
        params: list[str] = []
        for conjuncts in self.alternatives:
            if not conjuncts:
                return "TRUE", []
            parts.append(
                "(" + " AND ".join(f"{column} LIKE ? ESCAPE '\\'" for _ in conjuncts) + ")"
            )
            params.extend(conjuncts)
        return ("(" + " OR ".join(parts) + ")") if parts else "FALSE", params


@dataclass(frozen=True)
class CompiledGlob:
    """A glob with its ``LIKE`` translation; ``exact`` says SQL alone decides."""

    glob: str
    like: LikeCondition
    exact: bool

    @cached_property
    def _spec(self) -> pathspec.PathSpec:
        # One gitignore line per brace alternative: positive lines OR together.
        lines = [line for alt in expand_braces(self.glob) for line in _gitignore_lines(alt)]
        return pathspec.PathSpec.from_lines("gitignore", lines)

    def matches(self, uri: str) -> bool:
        """Return True when ``uri`` matches the glob (the Python evaluator)."""
        return self._spec.match_file(uri)


def escape_like(text: str) -> str:
    """Return ``text`` with ``\\``, ``%`` and ``_`` escaped for ``LIKE ... ESCAPE '\\'``."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def expand_braces(glob: str) -> list[str]:
    """Return the alternatives of ``glob`` after ``{a,b}`` expansion (nested allowed).

    A brace group without a top-level comma, an unbalanced brace, or a brace inside a
    character class stays literal. Raises ``BadInputError`` above 64 alternatives.
    """
    results = _expand(glob)
    if len(results) > _MAX_ALTERNATIVES:
        raise BadInputError(
            f"glob {glob!r}: braces expand to {len(results)} alternatives "
            f"(at most {_MAX_ALTERNATIVES})"
        )
    return results


def compile_glob(glob: str) -> CompiledGlob:
    """Compile one glob into its ``LIKE`` condition and exactness flag.

    Raises ``BadInputError`` when the glob is empty or not a valid pattern.
    """
    # Surrounding whitespace is never part of a glob (gitignore would strip trailing spaces).
    glob = glob.strip()
    if not glob:
        raise BadInputError("glob '': empty glob")
    alternatives = expand_braces(glob)
    likes: list[tuple[str, ...]] = []
    exact = True
    for alternative in alternatives:
        try:
            pathspec.PathSpec.from_lines("gitignore", _gitignore_lines(alternative))
        except (ValueError, TypeError) as error:
            raise BadInputError(f"glob {glob!r}: not a valid pattern ({error})") from error
        exact_likes = _exact_like(alternative)
        if exact_likes is not None:
            likes.extend((pattern,) for pattern in exact_likes)
        else:
            exact = False
            likes.append(_prefilter_like(alternative))
    return CompiledGlob(glob=glob, like=LikeCondition(tuple(likes)), exact=exact)


@dataclass(frozen=True)
class PathFilter:
    """Include/exclude globs compiled once; see the module docstring for the semantics."""

    include: tuple[CompiledGlob, ...]
    exclude: tuple[CompiledGlob, ...]

    @classmethod
    def from_globs(cls, include: Iterable[str] = (), exclude: Iterable[str] = ()) -> PathFilter:
        """Compile include and exclude globs. Raises ``BadInputError`` on a bad glob."""
        return cls(
            include=tuple(compile_glob(g) for g in include),
            exclude=tuple(compile_glob(g) for g in exclude),
        )

    @property
    def is_empty(self) -> bool:
        return not self.include and not self.exclude

    @property
    def needs_post_filter(self) -> bool:
        """True when some glob is not exactly expressible in SQL."""
        return any(not g.exact for g in (*self.include, *self.exclude))

    def sql(self, column: str) -> tuple[str, list[str]]:
        """Return a SQL condition (a superset when ``needs_post_filter``) and its parameters.

        Includes contribute their exact or prefilter ``LIKE``s; only exact excludes can be
        applied in SQL (negating a superset would drop true matches).
        """
        clauses: list[str] = []
        params: list[str] = []
        if self.include:
            ors: list[str] = []
            for glob in self.include:
                expr, glob_params = glob.like.sql(column)
                ors.append(expr)
                params.extend(glob_params)
            clauses.append("(" + " OR ".join(ors) + ")")
        for glob in self.exclude:
            if glob.exact:
                expr, glob_params = glob.like.sql(column)
                clauses.append(f"NOT {expr}")
                params.extend(glob_params)
        return (" AND ".join(clauses) if clauses else "TRUE"), params

    def matches(self, uri: str) -> bool:
        """Return True when ``uri`` passes the filter (the Python evaluator)."""
        if self.include and not any(g.matches(uri) for g in self.include):
            return False
        return not any(g.matches(uri) for g in self.exclude)


def _gitignore_lines(glob: str) -> list[str]:
    # A leading '!' or '#' would be a gitignore negation or comment: make it literal.
    if glob.startswith(("!", "#")):
        return ["\\" + glob]
    return [glob]


def _expand(glob: str) -> list[str]:
    group = _first_brace_group(glob)
    if group is None:
        return [glob]
    start, end, options = group
    results: list[str] = []
    for option in options:
        for tail in _expand(glob[end + 1 :]):
            for head in _expand(option):
                results.append(glob[:start] + head + tail)
                if len(results) > _MAX_ALTERNATIVES:
                    return results
    return results


def _first_brace_group(glob: str) -> tuple[int, int, list[str]] | None:
    """Return (open index, close index, options) of the first expandable ``{...}``."""
    i = 0
    while i < len(glob):
        char = glob[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":
            close = _class_end(glob, i)
            if close is not None:
                i = close + 1
                continue
        if char == "{":
            parsed = _brace_options(glob, i)
            if parsed is not None:
                return i, parsed[0], parsed[1]
        i += 1
    return None


def _brace_options(glob: str, start: int) -> tuple[int, list[str]] | None:
    depth = 0
    options: list[str] = []
    piece_start = start + 1
    i = start
    while i < len(glob):
        char = glob[i]
        if char == "\\":
            i += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                options.append(glob[piece_start:i])
                return (i, options) if len(options) > 1 else None
        elif char == "," and depth == 1:
            options.append(glob[piece_start:i])
            piece_start = i + 1
        i += 1
    return None


def _class_end(glob: str, start: int) -> int | None:
    i = start + 1
    if i < len(glob) and glob[i] in "!^":
        i += 1
    if i < len(glob) and glob[i] == "]":
        i += 1
    while i < len(glob):
        if glob[i] == "]":
            return i
        i += 1
    return None


def _is_literal(text: str) -> bool:
    return not any(char in _SPECIAL for char in text)


def _exact_like(glob: str) -> list[str] | None:
    """Return LIKE patterns (ORed) exactly equivalent to ``glob``, or None when there are none.

    Only shapes proven equivalent under gitignore rules for normalized uris (no empty
    segments, no leading or trailing ``/``) are translated; everything else is post-filtered.
    """
    if glob.startswith(("!", "#")):
        return None
    dir_only = glob.endswith("/")
    body = glob.rstrip("/") if dir_only else glob
    if glob.endswith("//") or not body:
        return None
    anchored = "/" in body
    body = body.removeprefix("/")
    if not body or "//" in body:
        return None
    if _is_literal(body):
        literal = escape_like(body)
        if anchored:
            return [literal + "/%"] if dir_only else [literal, literal + "/%"]
        if dir_only:
            return [literal + "/%", "%/" + literal + "/%"]
        return [literal, literal + "/%", "%/" + literal, "%/" + literal + "/%"]
    if dir_only:
        return None
    if anchored and body.endswith("/**") and _is_literal(body[:-3]) and body[:-3]:
        return [escape_like(body[:-3]) + "/%"]
    if not anchored and body.startswith("*") and _is_literal(body[1:]) and body[1:]:
        suffix = escape_like(body[1:])
        return ["%" + suffix, "%" + suffix + "/%"]
    if anchored and body.endswith("*") and not body.endswith("**") and _is_literal(body[:-1]):
        prefix = body[:-1]
        # A whole final '*' segment ('dir/*', '/*') matches one level only: not a LIKE.
        if prefix and not prefix.endswith("/"):
            return [escape_like(prefix) + "%"]
    return None


def _prefilter_like(glob: str) -> tuple[str, ...]:
    """Return LIKE patterns (ANDed) that every uri matching ``glob`` satisfies."""
    body = glob.rstrip("/")
    anchored = "/" in body
    body = body.removeprefix("/")
    likes: list[str] = []
    runs = _literal_runs(body)
    if anchored and not body.startswith("**") and runs and runs[0][0] == 0:
        prefix = runs[0][1].rstrip("/")
        if prefix:
            likes.append(escape_like(prefix) + "%")
    inner = [text.strip("/") for _, text in runs]
    inner = [text for text in inner if text]
    if inner:
        likes.append("%" + escape_like(max(inner, key=len)) + "%")
    return tuple(likes)


def _literal_runs(body: str) -> list[tuple[int, str]]:
    """Return (start offset, text) of the runs of literal characters in a pattern body.

    Escaped characters end a run (kept conservative), as do wildcards and classes.
    """
    runs: list[tuple[int, str]] = []
    current: list[str] = []
    start = 0
    i = 0
    while i < len(body):
        char = body[i]
        if char in _SPECIAL:
            if current:
                runs.append((start, "".join(current)))
                current = []
            if char == "[":
                close = _class_end(body, i)
                i = (close + 1) if close is not None else i + 1
            elif char == "\\":
                i += 2
            else:
                i += 1
            start = i
            continue
        if not current:
            start = i
        current.append(char)
        i += 1
    if current:
        runs.append((start, "".join(current)))
    return runs
