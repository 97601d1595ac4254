"""Parse SCIP symbol strings and infer what they name (kind, display name, parent).

Grammar (scip.proto)::

    <symbol>     ::= <scheme> ' ' <manager> ' ' <package> ' ' <version> ' ' <descriptor>+
                   | 'local ' <id>
    <descriptor> ::= name '/' | name '#' | name '.' | name ':' | name '!'
                   | name '(' disambiguator ').' | '[' name ']' | '(' name ')'

In the header a literal space is written as two spaces; names outside
``[A-Za-z0-9_+$-]`` are wrapped in backticks (a backtick doubled inside).

Kind inference, used when ``SymbolInformation.kind`` is unset (scip-python never sets
it), from the last descriptor and the one before it:

===================  ========================================================
descriptor           kind
===================  ========================================================
``name#``            ``Class``
``name().``          ``Method`` inside a type (``X#m().``), else ``Function``
``name.``            ``Field`` inside a type (``X#attr.``), else ``Variable``
``__init__:``        ``Module`` (scip-python names module ``a.b`` as ``\\`a.b\\`/__init__:``)
``name:``            ``Meta`` (a descriptor label, not a SCIP Kind)
``name/``            ``Namespace``
``(name)``           ``Parameter``
``[name]``           ``TypeParameter``
``name!``            ``Macro``
``local N``          ``UnspecifiedKind`` (file-local; names nothing outside its file)
===================  ========================================================
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from codeintel_assets.core.scip.proto.scip_pb2 import SymbolInformation

NAMESPACE = "/"
TYPE = "#"
TERM = "."
META = ":"
MACRO = "!"
METHOD = "()."
PARAMETER = "(x)"
TYPE_PARAMETER = "[x]"

_SIMPLE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+$-")
_MODULE_META = "__init__"


@dataclass(frozen=True, slots=True)
class Descriptor:
    """One step of a symbol's path: a name and its suffix (one of the constants above)."""

    name: str
    suffix: str
    disambiguator: str = ""


@dataclass(frozen=True, slots=True)
class ParsedSymbol:
    """A global SCIP symbol split into its header and descriptors."""

    scheme: str
    manager: str
    package: str
    version: str
    descriptors: tuple[Descriptor, ...]


def is_local_symbol(symbol: str) -> bool:
    """Return whether ``symbol`` is document-local (``local N``)."""
    return symbol.startswith("local ")


def parse_symbol(symbol: str) -> ParsedSymbol | None:
    """Parse a global symbol; return ``None`` for local symbols and malformed strings."""
    parsed = _parse(symbol)
    return parsed[0] if parsed else None


@functools.lru_cache(maxsize=1 << 16)
def _parse(symbol: str) -> tuple[ParsedSymbol, int] | None:
    """Return the parsed symbol and the offset where its last descriptor starts."""
    if is_local_symbol(symbol):
        return None
    try:
        header, pos = _header(symbol)
        descriptors = []
        last_start = pos
        while pos < len(symbol):
            last_start = pos
            descriptor, pos = _descriptor(symbol, pos)
            descriptors.append(descriptor)
    except (IndexError, ValueError):
        return None
    if not descriptors:
        return None
    return ParsedSymbol(*header, descriptors=tuple(descriptors)), last_start


def infer_kind(symbol: str, kind: int = 0) -> str:
    """Return the kind name: ``kind`` when set (SCIP Kind enum), else inferred (see module doc)."""
    if kind:
        try:
            return SymbolInformation.Kind.Name(kind)
        except ValueError:  # a value newer than the vendored scip.proto
            return f"Kind{kind}"
    parsed = parse_symbol(symbol)
    if parsed is None:
        return "UnspecifiedKind"
    last = parsed.descriptors[-1]
    inside_type = len(parsed.descriptors) > 1 and parsed.descriptors[-2].suffix == TYPE
    if last.suffix == TYPE:
        return "Class"
    if last.suffix == METHOD:
        return "Method" if inside_type else "Function"
    if last.suffix == TERM:
        return "Field" if inside_type else "Variable"
    if last.suffix == META:
        return "Module" if last.name == _MODULE_META else "Meta"
    return {
        NAMESPACE: "Namespace",
        PARAMETER: "Parameter",
        TYPE_PARAMETER: "TypeParameter",
        MACRO: "Macro",
    }[last.suffix]


def display_name(symbol: str) -> str | None:
    """Return the short name a user would recognise (``g`` for ``…/g().``; ``pkg.a`` for a module).

    Returns ``None`` for local and malformed symbols.
    """
    parsed = parse_symbol(symbol)
    if parsed is None:
        return None
    last = parsed.descriptors[-1]
    if last.suffix == META and last.name == _MODULE_META and len(parsed.descriptors) > 1:
        return parsed.descriptors[-2].name
    return last.name


def parent_symbol(symbol: str) -> str | None:
    """Return the symbol that encloses ``symbol`` (method → class, parameter → function).

    A top-level definition of a module is enclosed by the module symbol
    (``…/`pkg.a`/__init__:``). Returns ``None`` for modules, namespaces, locals and
    malformed symbols.
    """
    result = _parse(symbol)
    if result is None or len(result[0].descriptors) < 2:
        return None
    parsed, last_start = result
    if parsed.descriptors[-1].suffix in (META, NAMESPACE):
        return None
    prefix = symbol[:last_start]
    if all(d.suffix == NAMESPACE for d in parsed.descriptors[:-1]):
        return prefix + _MODULE_META + META
    return prefix


def _header(symbol: str) -> tuple[tuple[str, str, str, str], int]:
    head = symbol.split(" ", 4)
    if len(head) == 5 and "  " not in symbol:
        # The common case: no escaped spaces, so a plain split finds the header.
        return (head[0], head[1], head[2], head[3]), len(symbol) - len(head[4])
    parts = []
    pos = 0
    for _ in range(4):
        chars = []
        while True:
            char = symbol[pos]
            if char == " ":
                if symbol[pos + 1] == " ":
                    chars.append(" ")
                    pos += 2
                    continue
                pos += 1
                break
            chars.append(char)
            pos += 1
        parts.append("".join(chars))
    return (parts[0], parts[1], parts[2], parts[3]), pos


def _name(symbol: str, pos: int) -> tuple[str, int]:
    if symbol[pos] == "`":
        chars = []
        pos += 1
        while True:
            char = symbol[pos]
            if char == "`":
                if pos + 1 < len(symbol) and symbol[pos + 1] == "`":
                    chars.append("`")
                    pos += 2
                    continue
                return "".join(chars), pos + 1
            chars.append(char)
            pos += 1
    start = pos
    while pos < len(symbol) and symbol[pos] in _SIMPLE_CHARS:
        pos += 1
    if pos == start:
        raise ValueError(f"empty name at {pos}")
    return symbol[start:pos], pos


def _descriptor(symbol: str, pos: int) -> tuple[Descriptor, int]:
    char = symbol[pos]
    if char == "(":
        name, pos = _name(symbol, pos + 1)
        if symbol[pos] != ")":
            raise ValueError("unclosed parameter")
        return Descriptor(name, PARAMETER), pos + 1
    if char == "[":
        name, pos = _name(symbol, pos + 1)
        if symbol[pos] != "]":
            raise ValueError("unclosed type parameter")
        return Descriptor(name, TYPE_PARAMETER), pos + 1
    name, pos = _name(symbol, pos)
    suffix = symbol[pos]
    if suffix == "(":
        close = symbol.index(").", pos)
        return Descriptor(name, METHOD, symbol[pos + 1 : close]), close + 2
    if suffix in (NAMESPACE, TYPE, TERM, META, MACRO):
        return Descriptor(name, suffix), pos + 1
    raise ValueError(f"unknown suffix {suffix!r}")
