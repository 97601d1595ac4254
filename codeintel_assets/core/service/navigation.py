"""Structural answers from one published catalog: symbols, definitions, references,
the call graph, file outlines and modules.

Names resolve through SCIP (``scip_symbols`` and ``v_scip_defs``): a SCIP symbol string
matches itself; a plain or qualified name (``g``, ``pkg.b.g``, ``Base.run``) matches
every defined symbol whose qualified name equals it or ends with ``.<name>``. When the
version has no SCIP data (scip-python failed, or the language has no indexer) the
syntax tree's definitions (``cst_nodes``) answer ``definition`` and ``outline``; the
graph questions then have no data and say so. Lines returned are 1-based inclusive;
SCIP's 0-based lines are converted here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from codeintel_assets.core.errors import CodeintelError
from codeintel_assets.core.scip.symbol_names import META, parse_symbol

MAX_MATCHES = 20  # an ambiguous name answers for at most this many symbols
_NOT_NAMED = ("Parameter", "TypeParameter", "UnspecifiedKind", "Meta")


class UnknownSymbolError(CodeintelError):
    """A symbol or name that the published version does not define."""


@dataclass(frozen=True)
class SymbolMatch:
    """One definition a name resolved to."""

    symbol: str | None  # the SCIP symbol (None for a syntax-tree definition)
    name: str
    qualified_name: str
    kind: str
    uri: str
    line: int  # 1-based line of the defined name
    character: int | None
    start_line: int  # 1-based inclusive span of the whole definition
    end_line: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "name": self.name,
            "qualified_name": self.qualified_name,
            "kind": self.kind,
            "uri": self.uri,
            "line": self.line,
            "character": self.character,
            "start_line": self.start_line,
            "end_line": self.end_line,
        }


def qualified_name(symbol: str) -> str | None:
    """Return the dotted name of a SCIP symbol (``pkg.b.Base.run`` for ``…`pkg.b`/Base#run().``,
    ``pkg.b.Base.run.x`` for its parameter ``x``).

    None for local and malformed symbols.
    """
    parsed = parse_symbol(symbol)
    if parsed is None:
        return None
    names = [d.name for d in parsed.descriptors if not (d.suffix == META and d.name == "__init__")]
    return ".".join(names) or None


def _normalize_name(name: str) -> str:
    """``Base#run()`` / ``Base::run`` / ``pkg/b.py:g`` style spellings -> ``Base.run``."""
    text = name.strip().removesuffix("()")
    for sep in ("#", "::", ":"):
        text = text.replace(sep, ".")
    return text.strip(".")


def has_scip(cursor: duckdb.DuckDBPyConnection) -> bool:
    """Return whether the version holds any SCIP definitions."""
    return cursor.execute("SELECT count(*) FROM v_scip_defs").fetchone()[0] > 0


def symbol_index(cursor: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[str, str, str]]]:
    """Return defined SCIP symbols by short name: name -> [(symbol, qualified name, kind)]."""
    rows = cursor.execute(
        "SELECT DISTINCT s.symbol, s.kind, s.display_name FROM scip_symbols AS s "
        "JOIN v_scip_defs AS d ON d.symbol = s.symbol WHERE s.kind NOT IN "
        f"({', '.join('?' for _ in _NOT_NAMED)})",
        list(_NOT_NAMED),
    ).fetchall()
    by_name: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for symbol, kind, display in rows:
        qualified = qualified_name(symbol)
        if qualified:
            by_name[qualified.rsplit(".", 1)[-1]].append((symbol, qualified, kind))
            if display and display != qualified.rsplit(".", 1)[-1]:
                by_name[display].append((symbol, qualified, kind))
    return dict(by_name)


def resolve(
    cursor: duckdb.DuckDBPyConnection,
    index: dict[str, list[tuple[str, str, str]]],
    symbol: str,
) -> list[SymbolMatch]:
    """Return the definitions ``symbol`` (a SCIP symbol or a plain/qualified name) names.

    Exact qualified matches come first, then suffix matches, at most ``MAX_MATCHES``.
    Raises ``UnknownSymbolError`` when nothing matches.
    """
    text = symbol.strip()
    if not text:
        raise UnknownSymbolError("the symbol is empty; give a name such as `g` or `pkg.b.g`")
    if index:
        if parse_symbol(text) is not None:
            symbols = [text]
        else:
            wanted = _normalize_name(text)
            last = wanted.rsplit(".", 1)[-1]
            candidates = index.get(last, [])
            exact = [s for s, q, _ in candidates if q == wanted]
            suffix = [s for s, q, _ in candidates if q != wanted and q.endswith("." + wanted)]
            symbols = list(dict.fromkeys(exact + suffix))[:MAX_MATCHES]
        matches = scip_definitions(cursor, symbols)
    else:
        matches = syntax_definitions(cursor, text)
    if not matches:
        raise UnknownSymbolError(
            f"no definition named {text!r} in this version; try a plain name (`g`), a qualified "
            "one (`pkg.b.g`, `Base.run`) or `search`"
        )
    return matches


def scip_definitions(
    cursor: duckdb.DuckDBPyConnection, symbols: Sequence[str]
) -> list[SymbolMatch]:
    """Return the definitions of SCIP ``symbols``, in the order given."""
    if not symbols:
        return []
    rows = cursor.execute(
        "SELECT d.symbol, coalesce(s.display_name, ''), coalesce(s.kind, ''), d.uri, d.start_line, "
        "d.start_char, coalesce(d.enclosing_start_line, d.start_line), "
        "coalesce(d.enclosing_end_line, d.end_line), req.ord "
        "FROM unnest(?::VARCHAR[]) WITH ORDINALITY AS req(symbol, ord) "
        "JOIN v_scip_defs AS d ON d.symbol = req.symbol "
        "LEFT JOIN scip_symbols AS s ON s.symbol = d.symbol "
        "ORDER BY req.ord, d.uri, d.start_line",
        [list(symbols)],
    ).fetchall()
    return [
        SymbolMatch(
            symbol=sym,
            name=display or (qualified_name(sym) or sym).rsplit(".", 1)[-1],
            qualified_name=qualified_name(sym) or sym,
            kind=kind.lower(),
            uri=uri,
            line=line + 1,
            character=char,
            start_line=start + 1,
            end_line=end + 1,
        )
        for sym, display, kind, uri, line, char, start, end, _ in rows
    ]


def symbol_docs(cursor: duckdb.DuckDBPyConnection, symbol: str) -> tuple[str | None, str | None]:
    """Return (signature, documentation) of a SCIP symbol (None when unknown)."""
    row = cursor.execute(
        "SELECT signature, documentation FROM scip_symbols WHERE symbol = ? LIMIT 1", [symbol]
    ).fetchone()
    return (row[0], row[1]) if row else (None, None)


# -- the syntax tree (fallback, and outlines) ------------------------------------------


def file_definitions(cursor: duckdb.DuckDBPyConnection, uri: str) -> list[dict[str, Any]]:
    """Return the named definitions of one file from ``cst_nodes``, in file order.

    Each has ``node_id``, ``name``, ``kind`` (the tree-sitter type), ``start_line``,
    ``end_line``, ``parent`` (the enclosing definition's node id or None) and
    ``qualified_name`` (the enclosing definitions' names joined by dots).
    """
    rows = cursor.execute(
        "SELECT node_id, parent_id, name, kind, start_line, end_line FROM cst_nodes "
        "WHERE uri = ? ORDER BY start_byte, end_byte DESC",
        [uri],
    ).fetchall()
    parents = {node: parent for node, parent, *_ in rows}
    named = {node: (name, kind, start, end) for node, _, name, kind, start, end in rows if name}
    definitions = []
    for node, (name, kind, start, end) in named.items():
        enclosing = parents.get(node)
        while enclosing is not None and enclosing not in named:
            enclosing = parents.get(enclosing)
        definitions.append(
            {
                "node_id": node,
                "name": name,
                "kind": kind,
                "start_line": start,
                "end_line": end,
                "parent": enclosing,
            }
        )
    by_id = {d["node_id"]: d for d in definitions}
    for definition in definitions:
        names, parent = [definition["name"]], definition["parent"]
        while parent is not None:
            names.append(by_id[parent]["name"])
            parent = by_id[parent]["parent"]
        definition["qualified_name"] = ".".join(reversed(names))
    return definitions


def friendly_kind(kind: str, inside_class: bool) -> str:
    """Map a tree-sitter definition type to ``class``, ``method``, ``function`` or itself."""
    if "class" in kind or "interface" in kind:
        return "class"
    if "function" in kind or "method" in kind:
        return "method" if inside_class else "function"
    return kind


def _module_path(uri: str) -> str:
    """``pkg/a.py`` -> ``pkg.a`` (the prefix a syntax-tree qualified name gets)."""
    stem = uri.rsplit(".", 1)[0] if "." in uri.rsplit("/", 1)[-1] else uri
    return stem.replace("/", ".").removesuffix(".__init__")


def syntax_definitions(cursor: duckdb.DuckDBPyConnection, name: str) -> list[SymbolMatch]:
    """Resolve ``name`` against the syntax tree's definitions (no SCIP in this version)."""
    wanted = _normalize_name(name)
    last = wanted.rsplit(".", 1)[-1]
    uris = [
        row[0]
        for row in cursor.execute(
            "SELECT DISTINCT uri FROM cst_nodes WHERE name = ? ORDER BY uri", [last]
        ).fetchall()
    ]
    matches: list[SymbolMatch] = []
    for uri in uris:
        definitions = file_definitions(cursor, uri)
        by_id = {d["node_id"]: d for d in definitions}
        for d in definitions:
            full = f"{_module_path(uri)}.{d['qualified_name']}"
            if d["name"] != last or not (
                full == wanted or full.endswith("." + wanted) or d["qualified_name"] == wanted
            ):
                continue
            parent = by_id.get(d["parent"]) if d["parent"] is not None else None
            matches.append(
                SymbolMatch(
                    symbol=None,
                    name=d["name"],
                    qualified_name=full,
                    kind=friendly_kind(d["kind"], parent is not None and "class" in parent["kind"]),
                    uri=uri,
                    line=d["start_line"],
                    character=None,
                    start_line=d["start_line"],
                    end_line=d["end_line"],
                )
            )
    return matches[:MAX_MATCHES]


def symbol_at(cursor: duckdb.DuckDBPyConnection, uri: str, line: int, character: int) -> str | None:
    """Return the SCIP symbol of the occurrence at 1-based ``line`` and 0-based ``character``."""
    row = cursor.execute(
        "SELECT symbol FROM scip_occurrences WHERE uri = ? AND start_line = ? "
        "AND start_char <= ? AND (end_line > start_line OR end_char >= ?) "
        "ORDER BY start_char DESC LIMIT 1",
        [uri, line - 1, character, character],
    ).fetchone()
    return row[0] if row else None


# -- references and the graph ------------------------------------------------------------


def references(cursor: duckdb.DuckDBPyConnection, symbol: str, limit: int) -> list[dict[str, Any]]:
    """Return up to ``limit`` reference occurrences of ``symbol`` with their enclosing definition.

    Each dict: ``uri``, ``line`` (1-based), ``character``, ``enclosing`` (SCIP symbol of
    the innermost definition whose range holds the occurrence; None at module level).
    """
    rows = cursor.execute(
        """
        WITH refs AS (
            SELECT uri, start_line, start_char FROM scip_occurrences
            WHERE symbol = ? AND role = 'ref'
            ORDER BY uri, start_line, start_char LIMIT ?
        )
        SELECT r.uri, r.start_line, r.start_char, e.symbol
        FROM refs AS r
        LEFT JOIN v_scip_defs AS e
            ON e.uri = r.uri AND e.enclosing_start_line IS NOT NULL
            AND r.start_line BETWEEN e.enclosing_start_line AND e.enclosing_end_line
        QUALIFY row_number() OVER (
            PARTITION BY r.uri, r.start_line, r.start_char
            ORDER BY e.enclosing_start_line DESC NULLS LAST, e.enclosing_end_line
        ) = 1
        ORDER BY r.uri, r.start_line, r.start_char
        """,
        [symbol, int(limit)],
    ).fetchall()
    return [
        {"uri": uri, "line": line + 1, "character": char, "enclosing": enclosing}
        for uri, line, char, enclosing in rows
    ]


def neighbors(
    cursor: duckdb.DuckDBPyConnection,
    symbols: Sequence[str],
    direction: str,
    depth: int,
    edges: Sequence[str],
    limit: int,
) -> list[dict[str, Any]]:
    """Walk ``symbol_edges`` from ``symbols``: ``callers`` (edges into) or ``callees`` (out of).

    Breadth first up to ``depth`` hops over the edge kinds ``edges``; each symbol is
    reported once, at its first depth. Each dict: ``symbol``, ``uri``, ``edge``,
    ``weight``, ``depth``, ``via`` (the symbol it was reached from). At most ``limit``.
    """
    near, far = (
        ("dst_symbol", "src_symbol") if direction == "callers" else ("src_symbol", "dst_symbol")
    )
    far_uri = "src_uri" if direction == "callers" else "dst_uri"
    seen = set(symbols)
    frontier = list(symbols)
    found: list[dict[str, Any]] = []
    for level in range(1, depth + 1):
        if not frontier or len(found) >= limit:
            break
        rows = cursor.execute(
            f"SELECT {near}, {far}, {far_uri}, edge, weight FROM symbol_edges "
            f"WHERE list_contains(?::VARCHAR[], {near}) AND list_contains(?::VARCHAR[], edge) "
            f"ORDER BY weight DESC, {far}, edge",
            [frontier, list(edges)],
        ).fetchall()
        frontier = []
        for via, other, uri, edge, weight in rows:
            if other in seen or other is None:
                continue
            seen.add(other)
            frontier.append(other)
            found.append(
                {
                    "symbol": other,
                    "uri": uri,
                    "edge": edge,
                    "weight": int(weight),
                    "depth": level,
                    "via": via,
                }
            )
            if len(found) >= limit:
                break
    return found


def definition_lines(cursor: duckdb.DuckDBPyConnection, symbols: Sequence[str]) -> dict[str, int]:
    """Return the 1-based definition line of each SCIP symbol that has one."""
    if not symbols:
        return {}
    rows = cursor.execute(
        "SELECT symbol, min(line) FROM v_scip_defs WHERE list_contains(?::VARCHAR[], symbol) "
        "GROUP BY symbol",
        [list(symbols)],
    ).fetchall()
    return {symbol: int(line) for symbol, line in rows}


# -- files and modules ---------------------------------------------------------------------


def file_lines(cursor: duckdb.DuckDBPyConnection, uri: str) -> list[str] | None:
    """Return the lines of ``uri`` as indexed (from its chunks, which cover every line once).

    None when the version has no chunks for ``uri``. A line no chunk covers is ''.
    """
    rows = cursor.execute(
        "SELECT start_line, end_line, content FROM v_chunks WHERE uri = ? ORDER BY start_byte",
        [uri],
    ).fetchall()
    if not rows:
        return None
    lines: dict[int, str] = {}
    for start, end, content in rows:
        # A chunk ending in a newline splits into one more (empty) piece than it has lines.
        for offset, text in enumerate(content.split("\n")[: end - start + 1]):
            lines.setdefault(start + offset, text)
    last = max(lines)
    return [lines.get(n, "") for n in range(1, last + 1)]


def module_row(cursor: duckdb.DuckDBPyConnection, module_id: str) -> dict[str, Any] | None:
    """Return the ``modules`` row of ``module_id`` as a dict, or None."""
    result = cursor.execute("SELECT * FROM modules WHERE module_id = ?", [module_id])
    names = [d[0] for d in result.description]
    row = result.fetchone()
    return dict(zip(names, row, strict=True)) if row else None


def module_links(
    cursor: duckdb.DuckDBPyConnection, module_id: str, direction: str
) -> list[dict[str, Any]]:
    """Return the modules ``module_id`` imports (``imports``) or is imported by (``importers``)."""
    here, there = (
        ("src_module_id", "dst_module_id")
        if direction == "imports"
        else ("dst_module_id", "src_module_id")
    )
    rows = cursor.execute(
        f"SELECT {there}, sum(weight) FROM v_symbol_neighbors WHERE {here} = ? AND edge = 'import' "
        f"AND {there} IS NOT NULL AND {there} <> ? GROUP BY 1 ORDER BY 2 DESC, 1",
        [module_id, module_id],
    ).fetchall()
    return [{"module_id": other, "weight": int(weight)} for other, weight in rows]


def top_definitions(
    cursor: duckdb.DuckDBPyConnection, module_id: str, limit: int
) -> list[dict[str, Any]]:
    """Return the module's definitions most used elsewhere (incoming call/reference weight)."""
    rows = cursor.execute(
        """
        WITH files AS (SELECT DISTINCT uri FROM v_chunk_modules WHERE module_id = ?)
        SELECT d.symbol, d.uri, min(d.line) AS line, coalesce(sum(e.weight), 0) AS incoming
        FROM v_scip_defs AS d
        JOIN files USING (uri)
        LEFT JOIN symbol_edges AS e
            ON e.dst_symbol = d.symbol AND e.edge IN ('call', 'reference', 'inherits', 'implements')
        WHERE d.enclosing_start_line IS NOT NULL
        GROUP BY d.symbol, d.uri
        ORDER BY incoming DESC, d.uri, line
        LIMIT ?
        """,
        [module_id, int(limit)],
    ).fetchall()
    return [
        {
            "symbol": s,
            "qualified_name": qualified_name(s),
            "uri": uri,
            "line": int(line),
            "incoming_weight": int(incoming),
        }
        for s, uri, line, incoming in rows
    ]


def known_modules(cursor: duckdb.DuckDBPyConnection, limit: int = 10) -> list[str]:
    """Return some module ids (largest first), for error messages."""
    rows = cursor.execute(
        "SELECT module_id FROM modules ORDER BY size_loc DESC, module_id LIMIT ?", [limit]
    ).fetchall()
    return [row[0] for row in rows]
