"""The service's tools: plain functions over a ``HandleCache``, each with a JSON schema and a
description written for a coding assistant. The HTTP API, the MCP server and the CLI all
call ``call_tool``.

Every answer is one published version's (the handle acquired for the call) and carries
``repo``, ``build_version`` and ``stale_files`` (indexed files of the work tree that
differ from that version). Arguments are checked against the tool's schema first
(limits on ``k``, ``depth``, ``limit``, query length, ``max_tokens``), and text is
bounded by ``max_tokens`` (estimated at ``CHARS_PER_TOKEN`` characters a token); a cut
answer says so and how to get the rest. Nothing here writes anything.
"""

from __future__ import annotations

import functools
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import jsonschema

from codeintel_assets.core import metrics
from codeintel_assets.core.errors import CodeintelError
from codeintel_assets.core.fusion import SEARCH_MODES
from codeintel_assets.core.service import navigation
from codeintel_assets.core.service.freshness import FreshnessTracker
from codeintel_assets.core.service.handles import HandleCache, VersionHandle

CHARS_PER_TOKEN = 4
MAX_K = 50
MAX_DEPTH = 3
MAX_QUERY_CHARS = 2000
MAX_TOKENS = 20_000
MAX_LIMIT = 1000
EDGE_KINDS = ("call", "reference", "import", "inherits", "implements", "type_def")


class ToolInputError(CodeintelError):
    """Arguments that do not fit a tool's schema, or a tool that does not exist."""


class PathNotIndexedError(CodeintelError):
    """A ``uri`` that is not a file of the published version (or tries to leave it)."""


class UnknownModuleError(CodeintelError):
    """A module id the published version does not have."""


@dataclass(frozen=True)
class Tool:
    """One tool: its name, what it is for (for an assistant), its input schema, its function."""

    name: str
    description: str
    schema: dict[str, Any]
    function: Callable[[HandleCache, dict[str, Any]], dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "input_schema": self.schema}


# -- arguments -----------------------------------------------------------------------------

_REPO = {
    "type": "string",
    "minLength": 1,
    "maxLength": 100,
    "description": "Repository name (optional when one is served).",
}
_SYMBOL = {
    "type": "string",
    "minLength": 1,
    "maxLength": 1000,
    "description": "A plain name (`g`), a qualified name (`pkg.b.g`, `Base.run`) or a SCIP symbol.",
}
_URI = {
    "type": "string",
    "minLength": 1,
    "maxLength": 1000,
    "description": "Repository-relative path of an indexed file, e.g. `pkg/b.py`.",
}


def _max_tokens(default: int) -> dict[str, Any]:
    return {
        "type": "integer",
        "minimum": 50,
        "maximum": MAX_TOKENS,
        "default": default,
        "description": f"Bound on the answer size in tokens (~{CHARS_PER_TOKEN} chars each).",
    }


def _schema(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


def _validate(tool: Tool, arguments: dict[str, Any]) -> dict[str, Any]:
    """Return the arguments with schema defaults filled in. Raises ``ToolInputError``."""
    if not isinstance(arguments, dict):
        raise ToolInputError(f"{tool.name}: arguments must be a JSON object")
    error = jsonschema.exceptions.best_match(_validator(tool.name).iter_errors(arguments))
    if error is not None:
        raise ToolInputError(f"{tool.name}: {_describe(error)}")
    filled = {
        name: spec["default"]
        for name, spec in tool.schema["properties"].items()
        if "default" in spec
    }
    filled.update(arguments)
    return filled


@functools.cache
def _validator(name: str) -> jsonschema.Draft202012Validator:
    """The compiled validator of tool ``name``'s schema (compiled once)."""
    return jsonschema.Draft202012Validator(TOOLS[name].schema)


def _describe(error: jsonschema.ValidationError) -> str:
    """A one-line reason that never echoes a huge argument back."""
    where = ".".join(str(p) for p in error.absolute_path)
    name = f"`{where}`" if where else "arguments"
    rule, limit = error.validator, error.validator_value
    if rule == "maxLength":
        return f"{name} is longer than {limit} characters"
    if rule == "minLength":
        return f"{name} must not be empty"
    if rule == "maximum":
        return f"{name} must be at most {limit} (got {error.instance})"
    if rule == "minimum":
        return f"{name} must be at least {limit} (got {error.instance})"
    if rule == "enum":
        return f"{name} must be one of {', '.join(map(str, limit))}"
    if rule == "maxItems":
        return f"{name} has more than {limit} items"
    if rule == "type":
        return f"{name} must be of type {limit}"
    if rule == "required":
        return error.message
    if rule == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"unknown argument(s) {', '.join(unknown)}"
    return error.message[:200]


# -- output bounds ---------------------------------------------------------------------------


def estimate_tokens(value: Any) -> int:
    """Return the estimated tokens of ``value`` (its JSON text; ``CHARS_PER_TOKEN`` a token)."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return math.ceil(len(text) / CHARS_PER_TOKEN)


_TEXT_FIELDS = ("content", "excerpt", "preview", "text", "source")


def _fit(items: list[dict[str, Any]], max_tokens: int) -> tuple[list[dict[str, Any]], bool]:
    """Return the leading items that fit ``max_tokens`` (the first always, its text cut) and
    whether anything was cut."""
    kept: list[dict[str, Any]] = []
    used = 0
    for item in items:
        cost = estimate_tokens(item)
        if used + cost <= max_tokens:
            kept.append(item)
            used += cost
            continue
        if not kept:
            kept.append(_shrink(item, max_tokens))
        return kept, True
    return kept, False


def _shrink(item: dict[str, Any], max_tokens: int) -> dict[str, Any]:
    """Cut the text fields of ``item`` so that it fits ``max_tokens``."""
    item = dict(item)
    for key in _TEXT_FIELDS:
        over = estimate_tokens(item) - max_tokens
        if over <= 0:
            break
        if isinstance(item.get(key), str):
            text = item[key]
            item[key] = text[: max(0, len(text) - over * CHARS_PER_TOKEN)]
    return item


# -- common pieces ----------------------------------------------------------------------------


def _freshness(handle: VersionHandle) -> FreshnessTracker:
    def tracker() -> FreshnessTracker:
        with handle.cursor() as cursor:
            rows = cursor.execute("SELECT uri, size_bytes, xxh64 FROM repo_manifest").fetchall()
        return FreshnessTracker(handle.repo.root, {u: (int(s), x) for u, s, x in rows})

    return handle.cached("freshness", tracker)


def _envelope(handle: VersionHandle, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "repo": handle.repo.name,
        "build_version": handle.build_version,
        "stale_files": _freshness(handle).check().stale_files,
        **body,
    }


def _symbol_index(handle: VersionHandle) -> dict[str, list[tuple[str, str, str]]]:
    def build() -> dict[str, list[tuple[str, str, str]]]:
        with handle.cursor() as cursor:
            return navigation.symbol_index(cursor)

    return handle.cached("symbols", build)


def _resolve(handle: VersionHandle, cursor: Any, symbol: str) -> list[navigation.SymbolMatch]:
    return navigation.resolve(cursor, _symbol_index(handle), symbol)


def _indexed_uri(cursor: Any, uri: str) -> str:
    """Return ``uri`` when it names a file of the version; raise ``PathNotIndexedError``."""
    path = PurePosixPath(uri)
    if (
        "\\" in uri
        or "\0" in uri
        or path.is_absolute()
        or ".." in path.parts
        or uri != path.as_posix()
    ):
        raise PathNotIndexedError(
            f"uri {uri[:200]!r} is not a repository-relative path (no '..', absolute paths or "
            "backslashes); use the `uri` of a search result"
        )
    found = cursor.execute("SELECT 1 FROM repo_manifest WHERE uri = ? LIMIT 1", [uri]).fetchone()
    if found is None:
        raise PathNotIndexedError(f"{uri!r} is not an indexed file of this version")
    return uri


def _lines_text(lines: list[str], start: int, end: int) -> str:
    return "\n".join(lines[start - 1 : end])


# -- the tools ---------------------------------------------------------------------------------


def search(cache: HandleCache, args: dict[str, Any]) -> dict[str, Any]:
    from codeintel_assets.core.catalog import ChunkFilter

    filters = None
    if args["lang"] or args["include"] or args["exclude"]:
        filters = ChunkFilter(
            include_globs=args["include"], exclude_globs=args["exclude"], languages=args["lang"]
        )
    k, module = args["k"], args.get("module")
    with cache.acquire(args.get("repo")) as handle:
        # A module filter keeps the results whose longest-prefix module it is: over-fetch.
        fetch = min(MAX_K * 4, k * 4) if module else k
        # Threads search one version at once: CodeIndex keeps each thread's notes and its
        # catalog reader gives each thread a cursor.
        results = handle.index.search(
            args["query"],
            k=fetch,
            filters=filters,
            mode=args["mode"],
            kind=args["kind"],
            max_tokens=args["max_tokens"],
        )
        notes = list(handle.index.notes)
        if module:
            results = [r for r in results if getattr(r, "module_id", None) == module][:k]
        hits, cut = _fit([r.to_dict() for r in results], args["max_tokens"])
        if cut:
            notes.append(
                f"{len(results) - len(hits)} more result(s) left out to stay under max_tokens="
                f"{args['max_tokens']}; raise max_tokens or lower k to see them"
            )
        return _envelope(
            handle,
            {
                "query": args["query"],
                "mode": args["mode"],
                "results": hits,
                "truncated": cut,
                "notes": notes,
            },
        )


def read(cache: HandleCache, args: dict[str, Any]) -> dict[str, Any]:
    with cache.acquire(args.get("repo")) as handle, handle.cursor() as cursor:
        uri = _indexed_uri(cursor, args["uri"])
        lines = navigation.file_lines(cursor, uri) or []
        total = len(lines)
        start = args.get("start_line", 1)
        end = min(args.get("end_line", total), total)
        if start > max(total, 1) or end < start:
            raise ToolInputError(
                f"read: lines {start}-{args.get('end_line', total)} are outside {uri} "
                f"({total} lines)"
            )
        budget = args["max_tokens"] * CHARS_PER_TOKEN
        used, last = 0, start - 1
        for number in range(start, end + 1):
            used += len(lines[number - 1]) + 1
            if used > budget and number > start:
                break
            last = number
        text = _lines_text(lines, start, last)
        notes = []
        if len(text) > budget:  # one line longer than the whole budget
            text = text[:budget]
            notes.append(f"line {start} is cut at max_tokens; raise max_tokens to see all of it")
        truncated = last < end or bool(notes)
        body: dict[str, Any] = {
            "uri": uri,
            "start_line": start,
            "end_line": last,
            "total_lines": total,
            "text": text,
            "truncated": truncated,
            "worktree_differs": _freshness(handle).file_differs(uri),
        }
        if last < end:
            body["next_start_line"] = last + 1
            notes.append(f"cut at max_tokens; read on with start_line={last + 1}")
        if body["worktree_differs"]:
            notes.append(
                "the work tree's copy of this file differs from the indexed one shown here"
            )
        body["notes"] = notes
        return _envelope(handle, body)


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def definition(cache: HandleCache, args: dict[str, Any]) -> dict[str, Any]:
    with cache.acquire(args.get("repo")) as handle, handle.cursor() as cursor:
        notes: list[str] = []
        if "symbol" in args:
            matches = _resolve(handle, cursor, args["symbol"])
        elif {"uri", "line"} <= set(args):
            uri = _indexed_uri(cursor, args["uri"])
            character = args.get("character", 0)
            symbol = navigation.symbol_at(cursor, uri, args["line"], character)
            if symbol is None:
                name = _identifier_at(
                    navigation.file_lines(cursor, uri) or [], args["line"], character
                )
                if name is None:
                    raise navigation.UnknownSymbolError(
                        f"no symbol at {uri}:{args['line']}:{character}"
                    )
                notes.append(f"no SCIP occurrence there; resolved the name {name!r} instead")
                symbol = name
            if symbol.startswith("local "):
                # A local symbol is one file's own: its definition is in the same file.
                found = navigation.scip_definitions(cursor, [symbol])
                matches = [m for m in found if m.uri == uri] or _resolve(handle, cursor, symbol)
            else:
                matches = _resolve(handle, cursor, symbol)
        else:
            raise ToolInputError("definition: give `symbol`, or `uri` and `line` (and `character`)")
        if not matches[0].symbol:
            notes.append("this version has no SCIP data: definitions come from the syntax tree")
        answers = []
        for match in matches:
            entry = match.to_dict()
            if match.symbol:
                entry["signature"], entry["documentation"] = navigation.symbol_docs(
                    cursor, match.symbol
                )
            lines = navigation.file_lines(cursor, match.uri) or []
            entry["source"] = _lines_text(lines, match.start_line, match.end_line)
            if match.symbol and match.symbol.startswith("local "):
                # SCIP names a local by its number in the file; the source has its name.
                local = _identifier_at(lines, match.line, match.character or 0)
                entry["name"] = entry["qualified_name"] = local or match.symbol
            answers.append(entry)
        kept, cut = _fit(answers, args["max_tokens"])
        if cut:
            notes.append(
                "cut at max_tokens: read the rest with `read` (uri, start_line, end_line) or "
                "raise max_tokens"
            )
        return _envelope(
            handle,
            {"matches": kept, "ambiguous": len(matches) > 1, "truncated": cut, "notes": notes},
        )


def _identifier_at(lines: list[str], line: int, character: int) -> str | None:
    if not 1 <= line <= len(lines):
        return None
    for found in _IDENTIFIER.finditer(lines[line - 1]):
        if found.start() <= character <= found.end():
            return found.group()
    return None


def references(cache: HandleCache, args: dict[str, Any]) -> dict[str, Any]:
    with cache.acquire(args.get("repo")) as handle, handle.cursor() as cursor:
        matches = _resolve(handle, cursor, args["symbol"])
        notes = []
        answers = []
        files: dict[str, list[str]] = {}
        for match in matches:
            if not match.symbol:
                notes.append("this version has no SCIP data: references are not known")
                answers.append({**match.to_dict(), "files": [], "total": 0})
                continue
            occurrences = navigation.references(cursor, match.symbol, args["limit"])
            enclosing = {o["enclosing"] for o in occurrences if o["enclosing"]}
            names = {s: navigation.qualified_name(s) for s in enclosing}
            grouped: dict[str, list[dict[str, Any]]] = {}
            for o in occurrences:
                lines = files.setdefault(o["uri"], navigation.file_lines(cursor, o["uri"]) or [])
                grouped.setdefault(o["uri"], []).append(
                    {
                        "line": o["line"],
                        "character": o["character"],
                        "text": lines[o["line"] - 1].strip() if o["line"] <= len(lines) else "",
                        "enclosing": names.get(o["enclosing"]) if o["enclosing"] else None,
                        "enclosing_symbol": o["enclosing"],
                    }
                )
            answers.append(
                {
                    **match.to_dict(),
                    "total": len(occurrences),
                    "files": [{"uri": uri, "references": refs} for uri, refs in grouped.items()],
                }
            )
            if len(occurrences) >= args["limit"]:
                notes.append(f"{match.qualified_name}: stopped at limit={args['limit']}")
        kept, cut = _fit(answers, args["max_tokens"])
        if cut:
            notes.append(
                "cut at max_tokens: ask for one symbol at a time, lower limit or raise max_tokens"
            )
        return _envelope(
            handle,
            {"matches": kept, "ambiguous": len(matches) > 1, "truncated": cut, "notes": notes},
        )


def _graph(direction: str) -> Callable[[HandleCache, dict[str, Any]], dict[str, Any]]:
    def tool(cache: HandleCache, args: dict[str, Any]) -> dict[str, Any]:
        with cache.acquire(args.get("repo")) as handle, handle.cursor() as cursor:
            matches = _resolve(handle, cursor, args["symbol"])
            notes = []
            answers = []
            for match in matches:
                if not match.symbol:
                    notes.append("this version has no SCIP data: the symbol graph is empty")
                    answers.append({**match.to_dict(), direction: []})
                    continue
                found = navigation.neighbors(
                    cursor, [match.symbol], direction, args["depth"], args["edges"], args["limit"]
                )
                lines = navigation.definition_lines(cursor, [f["symbol"] for f in found])
                for entry in found:
                    entry["qualified_name"] = navigation.qualified_name(entry["symbol"])
                    entry["line"] = lines.get(entry["symbol"])
                    entry["via"] = navigation.qualified_name(entry["via"])
                answers.append({**match.to_dict(), direction: found})
            kept, cut = _fit(answers, args["max_tokens"])
            if cut:
                notes.append("cut at max_tokens: lower depth or limit, or raise max_tokens")
            return _envelope(
                handle,
                {"matches": kept, "ambiguous": len(matches) > 1, "truncated": cut, "notes": notes},
            )

    tool.__name__ = direction
    return tool


def outline(cache: HandleCache, args: dict[str, Any]) -> dict[str, Any]:
    with cache.acquire(args.get("repo")) as handle, handle.cursor() as cursor:
        uri = _indexed_uri(cursor, args["uri"])
        definitions = navigation.file_definitions(cursor, uri)
        nodes: dict[int, dict[str, Any]] = {}
        roots: list[dict[str, Any]] = []
        for d in definitions:
            parent = nodes.get(d["parent"]) if d["parent"] is not None else None
            node = {
                "name": d["name"],
                "qualified_name": d["qualified_name"],
                "kind": navigation.friendly_kind(
                    d["kind"], parent is not None and parent["kind"] == "class"
                ),
                "start_line": d["start_line"],
                "end_line": d["end_line"],
                "children": [],
            }
            nodes[d["node_id"]] = node
            (parent["children"] if parent is not None else roots).append(node)
        return _envelope(handle, {"uri": uri, "definitions": roots, "count": len(definitions)})


def module(cache: HandleCache, args: dict[str, Any]) -> dict[str, Any]:
    with cache.acquire(args.get("repo")) as handle, handle.cursor() as cursor:
        row = navigation.module_row(cursor, args["module_id"])
        if row is None:
            known = ", ".join(navigation.known_modules(cursor))
            raise UnknownModuleError(
                f"no module {args['module_id'][:200]!r} in this version (for example: {known})"
            )
        return _envelope(
            handle,
            {
                "module": row,
                "imports": navigation.module_links(cursor, row["module_id"], "imports"),
                "importers": navigation.module_links(cursor, row["module_id"], "importers"),
                "top_definitions": navigation.top_definitions(
                    cursor, row["module_id"], args["limit"]
                ),
            },
        )


def status(cache: HandleCache, args: dict[str, Any]) -> dict[str, Any]:
    if args.get("repo") is None and len(cache.repos) > 1:
        entries = []
        for name in sorted(cache.repos):
            try:
                entries.append(_status_of(cache, name))
            except CodeintelError as exc:
                entries.append(
                    {"repo": name, "build_version": None, "stale_files": None, "error": str(exc)}
                )
        return {
            "repo": None,
            "build_version": None,
            "stale_files": sum(e["stale_files"] or 0 for e in entries),
            "repos": entries,
        }
    return _status_of(cache, args.get("repo"))


def _status_of(cache: HandleCache, name: str | None) -> dict[str, Any]:
    from codeintel_assets.core.catalog import catalog_status

    with cache.acquire(name) as handle:
        catalog = catalog_status(handle.layout.catalog)
        counts = {view.name: view.row_count for view in catalog.views}
        freshness = _freshness(handle).check()
        return _envelope(
            handle,
            {
                "published_at": handle.manifest.get("published_at"),
                "path": str(handle.repo.root),
                "counts": {
                    key: counts.get(view)
                    for key, view in (
                        ("files", "repo_manifest"),
                        ("chunks", "v_chunks"),
                        ("symbols", "scip_symbols"),
                        ("occurrences", "scip_occurrences"),
                        ("edges", "symbol_edges"),
                        ("modules", "modules"),
                    )
                },
                "views": [
                    {"name": v.name, "kind": v.kind, "present": v.present, "rows": v.row_count}
                    for v in catalog.views
                ],
                "freshness": freshness.to_dict(),
                "served_since": handle.opened_at,
                "model_loaded": bool(getattr(handle.index.embedder, "loaded", True)),
            },
        )


# -- the registry ------------------------------------------------------------------------------


def _text(paragraph: str) -> str:
    """One paragraph from an indented triple-quoted string."""
    return " ".join(paragraph.split())


DESCRIPTIONS = {
    "search": _text(
        """Find code by meaning or by words: hybrid search (embeddings + BM25 + definition
        names, fused) over the repository's published index. Use it first when you do not know
        where something is; describe the behaviour ('where is the FAISS index built') or paste
        code or identifiers. Each result is a whole definition (function, method, class... or a
        block of module-level code): its file (`uri`), lines, `kind` and `qualified_name`, the
        lines that matched (`match_start_line`..`match_end_line`), an `excerpt` (cut to fit
        `max_tokens`, signature and matched lines kept, `truncated` says so), a score and
        per-channel ranks; follow up with `read`, `definition` or `references`. Filters:
        `lang`, `include`/`exclude` path globs, `module`, `kind` (code by default)."""
    ),
    "read": _text(
        """Read a file as it was indexed (the published version, not the live work tree),
        whole or a line range. Lines are 1-based and inclusive. Long files are cut at
        `max_tokens`; the answer then says `truncated` and gives `next_start_line` to continue.
        `worktree_differs` tells you the file has changed on disk since it was indexed. Only
        indexed files can be read."""
    ),
    "definition": _text(
        """Go to definition: where a symbol is defined, with its kind, signature, docstring
        and source. Give a name (`g`, `pkg.b.g`, `Base.run`) or a SCIP symbol as `symbol`, or
        the position of a use (`uri`, 1-based `line`, 0-based `character`). Compiler-grade
        where SCIP data exists (scip-python), else from the syntax tree. An ambiguous name
        answers for every match, each labelled with its qualified name."""
    ),
    "references": _text(
        """Find every use of a symbol (SCIP occurrences), grouped by file; each use gives its
        line, the line's text and the enclosing definition (the function or class it sits
        in). Give a plain or qualified name (`g`, `pkg.b.g`) or a SCIP symbol; an ambiguous
        name answers for every match. Use it before changing a function's signature."""
    ),
    "callers": _text(
        """Who calls (or references) a symbol: the definitions with an edge into it in the
        symbol graph, with edge kind and weight (occurrence count), up to `depth` hops
        (callers of callers, at most 3). Edge kinds default to call and reference; add import,
        inherits, implements or type_def with `edges`. Names resolve like `definition`."""
    ),
    "callees": _text(
        """What a symbol calls (or references): the definitions it has edges to in the symbol
        graph, with edge kind and weight, up to `depth` hops (at most 3). Edge kinds default to
        call and reference; add import, inherits, implements or type_def with `edges`. Names
        resolve like `definition`."""
    ),
    "outline": _text(
        """List the definitions of one file (classes, functions, methods), nested, each with
        its qualified name, kind and 1-based line span. Cheaper than reading the file to find
        your way around it."""
    ),
    "module": _text(
        """Describe one module: size, cyclomatic complexity, documentation coverage, import
        degree and PageRank centrality, the modules it imports and is imported by, and its most
        used definitions. `module_id` is dotted for Python (`pkg.a`), as in search results."""
    ),
    "status": _text(
        """What is indexed: the published build version and when it was published, row counts
        (files, chunks, symbols, edges, modules), the catalog's views, and freshness: how many
        indexed files of the work tree changed since (with the first few paths). Without
        `repo`, every served repository."""
    ),
}

_LIST = {"type": "array", "maxItems": 20, "default": []}
_GRAPH = _schema(
    {
        "symbol": _SYMBOL,
        "repo": _REPO,
        "depth": {"type": "integer", "minimum": 1, "maximum": MAX_DEPTH, "default": 1},
        "edges": {
            "type": "array",
            "items": {"type": "string", "enum": list(EDGE_KINDS)},
            "minItems": 1,
            "default": ["call", "reference"],
        },
        "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 100},
        "max_tokens": _max_tokens(4000),
    },
    ("symbol",),
)
SCHEMAS = {
    "search": _schema(
        {
            "query": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_QUERY_CHARS,
                "description": "Words, a question or code to look for.",
            },
            "repo": _REPO,
            "k": {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": 10},
            "mode": {
                "type": "string",
                "enum": list(SEARCH_MODES),
                "default": "hybrid",
                "description": "hybrid (default); dense: embeddings only; bm25: words only.",
            },
            "lang": {
                **_LIST,
                "items": {"type": "string", "maxLength": 50},
                "description": "e.g. python",
            },
            "include": {
                **_LIST,
                "items": {"type": "string", "maxLength": 500},
                "description": "Path globs to keep, e.g. src/**",
            },
            "exclude": {
                **_LIST,
                "items": {"type": "string", "maxLength": 500},
                "description": "Path globs to drop, e.g. **/tests/**",
            },
            "module": {
                "type": "string",
                "minLength": 1,
                "maxLength": 500,
                "description": "Keep results of this module (a module_id such as pkg.a).",
            },
            "kind": {
                "type": "string",
                "enum": ["code", "docs", "all"],
                "default": "code",
                "description": "code (default): source files only; docs: Markdown, reST and "
                "text; all: every file.",
            },
            "max_tokens": _max_tokens(2000),
        },
        ("query",),
    ),
    "read": _schema(
        {
            "uri": _URI,
            "repo": _REPO,
            "start_line": {"type": "integer", "minimum": 1},
            "end_line": {"type": "integer", "minimum": 1},
            "max_tokens": _max_tokens(4000),
        },
        ("uri",),
    ),
    "definition": _schema(
        {
            "symbol": _SYMBOL,
            "uri": _URI,
            "line": {"type": "integer", "minimum": 1},
            "character": {"type": "integer", "minimum": 0, "default": 0},
            "repo": _REPO,
            "max_tokens": _max_tokens(2000),
        }
    ),
    "references": _schema(
        {
            "symbol": _SYMBOL,
            "repo": _REPO,
            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 100},
            "max_tokens": _max_tokens(4000),
        },
        ("symbol",),
    ),
    "callers": _GRAPH,
    "callees": _GRAPH,
    "outline": _schema({"uri": _URI, "repo": _REPO}, ("uri",)),
    "module": _schema(
        {
            "module_id": {"type": "string", "minLength": 1, "maxLength": 500},
            "repo": _REPO,
            "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
        },
        ("module_id",),
    ),
    "status": _schema({"repo": _REPO}),
}
_FUNCTIONS = {
    "search": search,
    "read": read,
    "definition": definition,
    "references": references,
    "callers": _graph("callers"),
    "callees": _graph("callees"),
    "outline": outline,
    "module": module,
    "status": status,
}
TOOLS: dict[str, Tool] = {
    name: Tool(name, DESCRIPTIONS[name], SCHEMAS[name], function)
    for name, function in _FUNCTIONS.items()
}


def list_tools() -> list[Tool]:
    """Return the tools in a stable order."""
    return list(TOOLS.values())


def call_tool(cache: HandleCache, name: str, arguments: dict[str, Any] | None) -> dict[str, Any]:
    """Run tool ``name`` with ``arguments``; return its JSON-ready answer.

    Raises ``ToolInputError`` for an unknown tool or arguments outside the schema, and the
    tool's ``CodeintelError`` (unknown repository or symbol, nothing published, ...).
    """
    tool = TOOLS.get(name)
    if tool is None:
        raise ToolInputError(f"unknown tool {name[:100]!r}; tools: {', '.join(TOOLS)}")
    started = time.perf_counter()
    outcome = "error"
    try:
        answer = tool.function(cache, _validate(tool, arguments if arguments is not None else {}))
        outcome = "ok"
        return answer
    finally:
        metrics.observe_tool_call(name, outcome, time.perf_counter() - started)
