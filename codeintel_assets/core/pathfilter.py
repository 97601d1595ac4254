"""The one path filter: which repository paths include/exclude globs select.

The manifest (which files are indexed), the watcher (which files the sensor's
fingerprint looks at) and search filters (which chunks a query keeps) all use this
module, so ``--include 'src/{a,b}/**'`` means the same in ``repo add`` and ``search``.

Semantics
---------
Paths are normalized repository-relative POSIX paths (``pkg/mod.py``: no leading
``/`` or ``./``). Each list of globs (the includes, the excludes) is read like the
lines of a ``.gitignore`` file, with **pathspec's gitignore rules**
(``pathspec.GitIgnoreSpec``, which follows what git does where git's documentation
is vague), after **brace expansion**:

* ``{a,b}`` and ``{1..3}`` expand first, bash-style (``bracex``), each alternative
  becoming a line of its own (at most 64 lines per glob); ``\\{`` keeps a brace
  literal.
* ``*`` matches within one path segment, ``?`` one character, ``[a-z]`` / ``[!a]``
  a class, ``\\x`` the character ``x``; ``**`` spans directories (``**/x``, ``a/**``,
  ``a/**/b``).
* A glob without a ``/`` except a trailing one matches at any depth (``*.py``,
  ``tests``); one with a ``/`` elsewhere is anchored at the repository root. A glob
  that matches a directory selects everything under it; a trailing ``/`` matches
  directories only.
* ``!glob`` re-includes what an earlier line of the same list matched (the last
  matching line decides; a line naming the file itself outranks one naming a parent
  directory). ``#`` starts a comment, so a glob that is blank, a comment or invalid
  (``[``) is refused with ``BadInputError`` instead of silently matching nothing.

A path passes the filter when it matches the include list (or there is none) and
does not match the exclude list.

Two evaluators, one compilation
-------------------------------
``PathFilter.matches`` asks pathspec. ``PathFilter.sql`` returns a DuckDB condition
that binds the regular expressions pathspec compiled for the same lines
(``regexp_matches(uri, ?)``: RE2 reads pathspec's Python patterns the same way, bar
one ``$`` rewritten), with
the rule above (last line naming the file, else last line naming a parent) as a
``CASE``; property tests check that both agree on random globs and paths.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import bracex
import pathspec
from pathspec.patterns.gitignore.spec import GitIgnoreSpecPattern

from codeintel_assets.core.errors import BadInputError

MAX_ALTERNATIVES = 64
# pathspec marks "this line matched a parent directory of the path" with this group.
_DIR_MARK = "ps_d"
_END_OR_DIR_MARK = f"(?:(?P<{_DIR_MARK}>/)|$)"


@dataclass(frozen=True)
class _Line:
    """One gitignore line: include (False for ``!``), its regex, whether it can mark a dir."""

    include: bool
    regex: str
    has_dir_mark: bool


@dataclass(frozen=True)
class GlobList:
    """Globs read as one gitignore file (see the module docstring)."""

    globs: tuple[str, ...]
    lines: tuple[_Line, ...]

    @classmethod
    def compile(cls, globs: Iterable[str]) -> GlobList:
        """Compile ``globs``. Raises ``BadInputError`` naming a glob that selects nothing."""
        globs = tuple(globs)
        return cls(globs, tuple(line for glob in globs for line in _compile_glob(glob)))

    @cached_property
    def _spec(self) -> pathspec.GitIgnoreSpec:
        return pathspec.GitIgnoreSpec.from_lines(
            [alternative for glob in self.globs for alternative in expand_braces(glob)]
        )

    def matches(self, path: str) -> bool:
        """Return True when the lines select ``path`` (pathspec's answer)."""
        return self._spec.match_file(path)

    def sql(self, column: str) -> tuple[str, list[str]]:
        """Return a DuckDB boolean expression over ``column`` and its bound regexes."""
        if all(line.include for line in self.lines):
            # No '!': any line matching decides, so one alternation answers.
            return f"regexp_matches({column}, ?)", [_alternation(self.lines)]
        direct, parent, params_direct, params_parent = [], [], [], []
        for line in reversed(self.lines):
            verdict = "TRUE" if line.include else "FALSE"
            if line.has_dir_mark:
                # Group 1 (the dir mark) took part: the line named a parent directory.
                direct.append(
                    f"WHEN regexp_matches({column}, ?) AND regexp_extract({column}, ?, 1) = '' "
                    f"THEN {verdict}"
                )
                params_direct += [_re2(line.regex)] * 2
                parent.append(f"WHEN regexp_extract({column}, ?, 1) <> '' THEN {verdict}")
                params_parent.append(_re2(line.regex))
            else:
                direct.append(f"WHEN regexp_matches({column}, ?) THEN {verdict}")
                params_direct.append(_re2(line.regex))
        return (
            "(CASE " + " ".join(direct + parent) + " ELSE FALSE END)",
            params_direct + params_parent,
        )


@dataclass(frozen=True)
class PathFilter:
    """Include and exclude globs compiled once; see the module docstring."""

    include: GlobList
    exclude: GlobList

    @classmethod
    def from_globs(cls, include: Iterable[str] = (), exclude: Iterable[str] = ()) -> PathFilter:
        """Compile include and exclude globs. Raises ``BadInputError`` on a bad glob."""
        return cls(GlobList.compile(include), GlobList.compile(exclude))

    @property
    def is_empty(self) -> bool:
        """True when the filter keeps every path."""
        return not self.include.globs and not self.exclude.globs

    def matches(self, path: str) -> bool:
        """Return True when ``path`` passes the filter."""
        if self.include.globs and not self.include.matches(path):
            return False
        return not (self.exclude.globs and self.exclude.matches(path))

    def sql(self, column: str) -> tuple[str, list[str]]:
        """Return the SQL condition equivalent to ``matches`` over ``column``, and its params.

        ``column`` is an SQL expression the caller controls (never user input).
        """
        clauses: list[str] = []
        params: list[str] = []
        if self.include.globs:
            condition, values = self.include.sql(column)
            clauses.append(condition)
            params += values
        if self.exclude.globs:
            condition, values = self.exclude.sql(column)
            clauses.append(f"NOT {condition}")
            params += values
        return (" AND ".join(clauses) if clauses else "TRUE"), params


def expand_braces(glob: str) -> list[str]:
    """Return the alternatives of ``glob`` after bash-style brace expansion (``bracex``).

    Escapes are kept (``\\*`` stays a literal star for gitignore); duplicates are
    dropped. Raises ``BadInputError`` beyond 64 alternatives.
    """
    try:
        alternatives = bracex.expand(glob, keep_escapes=True, limit=MAX_ALTERNATIVES)
    except bracex.ExpansionLimitException as error:
        raise BadInputError(
            f"glob {glob!r}: braces expand to more than {MAX_ALTERNATIVES} alternatives"
        ) from error
    return list(dict.fromkeys(alternatives))


def _compile_glob(glob: str) -> list[_Line]:
    if not glob.strip():
        raise BadInputError(f"glob {glob!r}: empty glob")
    lines = []
    for alternative in expand_braces(glob):
        try:
            pattern = GitIgnoreSpecPattern(alternative)
        except ValueError as error:
            raise BadInputError(f"glob {glob!r}: not a valid pattern ({error})") from error
        if pattern.include is None or pattern.regex is None:
            raise BadInputError(
                f"glob {glob!r}: not a valid pattern (gitignore reads {alternative!r} as a "
                "blank line, a comment or an invalid pattern; escape a leading # as \\#)"
            )
        compiled = pattern.regex
        if compiled.groups > 1 or (compiled.groups == 1 and _DIR_MARK not in compiled.groupindex):
            raise BadInputError(f"glob {glob!r}: unexpected pattern {compiled.pattern!r}")
        lines.append(_Line(bool(pattern.include), compiled.pattern, compiled.groups == 1))
    return lines


def _re2(regex: str) -> str:
    """Return pathspec's Python ``regex`` with the same meaning for RE2 (``regexp_matches``).

    Both search (pathspec calls ``re.search``). The one difference pathspec's patterns
    meet: Python's ``$`` also matches before a final newline, RE2's only at the end;
    pathspec writes ``$`` only in its "end of path or directory mark" tail.
    """
    return regex.replace(_END_OR_DIR_MARK, _END_OR_DIR_MARK.replace("|$)", "|\\n?$)"))


def _alternation(lines: tuple[_Line, ...]) -> str:
    # Named groups cannot repeat in one RE2 pattern: the dir mark becomes non-capturing.
    bodies = [_re2(line.regex).replace(f"(?P<{_DIR_MARK}>", "(?:") for line in lines]
    return "|".join(f"(?:{body})" for body in bodies)
