"""Synthetic evaluation queries: documented definitions turned into searches with known answers.

Each query targets one definition (function, method or class) and its positives are
the chunk ids whose line range contains the definition's line. Five styles:

* ``heldout``: the first sentence of the docstring, searched over a corpus where the
  targets have no docstrings and no comments (``core.heldout``): the one style whose
  text the target's searched text does not hold, so it is the headline;
* ``doc``: the first sentence of the docstring (which the target's chunk holds);
* ``name``: the identifier split into words (``parse_url`` → ``parse url``);
* ``masked``: the docstring with every word removed that shares a lexical token
  with an identifier of the target chunk, so the query names nothing in the code
  and BM25 cannot win by matching identifiers. Checked after masking; a query that
  still shares a token, or keeps fewer than ``MIN_MASKED_WORDS`` words, is dropped.
  The docstring's prose is part of the chunk too, so prose words can still match.
* ``call``: the source line of one use of the definition elsewhere (a call site,
  outside the target's chunks; import lines skipped), as a coding assistant would
  search with the code at the cursor to find what it calls. The call site's own chunk
  is not a positive, so every channel is charged for ranking it first.

Definitions come from SCIP (``scip_symbols`` with documentation, their ``def``
occurrence in ``scip_occurrences``, their call sites the ``ref`` occurrences). When a
repository has no SCIP symbols (scip-python failed or is not run), they come from the
chunks themselves instead: the Python files are rebuilt from their chunks (chunks
cover every line exactly once) and parsed with ``ast``; ``symbol`` is then
``<uri>::<qualified name>`` and call sites are resolved by name, only for names that
one definition of the repository has: ``name(...)`` for functions and classes,
``self.name(...)`` in the method's own file for methods.

Sampling is deterministic: definitions sorted by symbol, shuffled with ``seed``; all
styles use the same definitions, in the same order, so styles compare paired; a
definition's call site is picked by a hash of its symbol and ``seed``.
"""

from __future__ import annotations

import ast
import json
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from codeintel_assets.core.checksums import write_text_atomic, xxh64_text
from codeintel_assets.core.errors import BadInputError
from codeintel_assets.core.jsonl import jsonl_records
from codeintel_assets.core.tokens import identifier_parts, identifier_tokens, tokenize

STYLES = ("heldout", "doc", "name", "masked", "call")
# Whether a style's query text appears in its target's indexed text (a report column):
# a style that shares text flatters lexical search and is never the headline.
SHARES_TEXT = {"heldout": False, "doc": True, "name": True, "masked": True, "call": True}
DEFINITION_KINDS = {"function", "method", "class"}
MIN_DOC_WORDS = 3
MIN_MASKED_WORDS = 3
MIN_CALL_CHARS = 12  # a call line shorter than this (``f(x)``) says nothing
_IMPORT_LINE = re.compile(r"^(from\s+\S+\s+)?import\s")
# A line of bare names and commas (a continued import or argument list) is no context.
_BARE_NAMES = re.compile(r"^[\w\s,]*\)?$")
MAX_QUERY_CHARS = 400
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


@dataclass(frozen=True)
class SyntheticQuery:
    """One evaluation query and the chunks that answer it."""

    query_id: str  # stable: style and symbol
    text: str
    style: str  # doc | name | masked | call
    symbol: str
    positives: list[int]  # chunk ids containing the definition line
    uri: str
    line: int  # the definition's line, 1-based
    module: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Definition:
    """A documented definition: where it is and what it says."""

    symbol: str
    name: str  # short identifier
    kind: str
    documentation: str
    uri: str
    line: int  # 1-based
    call_sites: tuple[tuple[str, int], ...] = ()  # (uri, 1-based line) of its uses


def synthetic_queries(
    symbols: pa.Table | None,
    occurrences: pa.Table | Iterable[pa.RecordBatch] | None,
    chunks: pa.Table,
    *,
    count: int = 200,
    seed: int = 0,
) -> list[SyntheticQuery]:
    """Return up to ``count`` queries spread evenly over the styles, deterministically.

    ``chunks`` needs ``id, uri, start_line, end_line, content`` (plus ``start_byte`` for
    the AST fallback, used when ``symbols`` is None or has no documented definitions).
    """
    definitions = scip_definitions(symbols, occurrences) if symbols is not None else []
    if not definitions:
        definitions = ast_definitions(chunks)
    return queries_for_definitions(definitions, chunks, count=count, seed=seed)


def scip_definitions(
    symbols: pa.Table, occurrences: pa.Table | Iterable[pa.RecordBatch] | None
) -> list[Definition]:
    """Return the documented functions, methods and classes of a SCIP index, by symbol.

    ``occurrences`` (``symbol, uri, role, start_line``) may come as record batches; only
    the rows of documented definitions' symbols become Python values.
    """
    if occurrences is None or symbols.num_rows == 0:
        return []
    columns = ["symbol", "kind", "display_name", "documentation", "uri"]
    candidates = [
        row
        for row in symbols.select(columns).to_pylist()
        if (row["kind"] or "").lower() in DEFINITION_KINDS
        and (row["documentation"] or "").strip()
        and row["uri"]
        and row["display_name"]
    ]
    wanted = pa.array(sorted({row["symbol"] for row in candidates}), pa.string())
    def_lines: dict[tuple[str, str], int] = {}
    uses: dict[str, set[tuple[str, int]]] = {}
    batches = [occurrences] if isinstance(occurrences, pa.Table) else occurrences
    for batch in batches:
        kept = batch.filter(pc.is_in(batch["symbol"], value_set=wanted))
        for row in kept.select(["symbol", "uri", "role", "start_line"]).to_pylist():
            # SCIP lines are 0-based; definitions are kept 1-based like chunks.
            line = row["start_line"] + 1
            if row["role"] == "def":
                key = (row["symbol"], row["uri"])
                def_lines[key] = min(def_lines.get(key, line), line)
            else:
                uses.setdefault(row["symbol"], set()).add((row["uri"], line))
    out = []
    for row in candidates:
        kind = row["kind"].lower()
        doc = row["documentation"].strip()
        line = def_lines.get((row["symbol"], row["uri"]))
        if line is not None:
            sites = tuple(sorted(uses.get(row["symbol"], ())))
            out.append(
                Definition(row["symbol"], row["display_name"], kind, doc, row["uri"], line, sites)
            )
    return sorted(out, key=lambda d: d.symbol)


def ast_definitions(chunks: pa.Table) -> list[Definition]:
    """Return the documented definitions of the Python files rebuilt from ``chunks``.

    Files that do not parse are skipped. The symbol is ``<uri>::<qualified name>``. Call
    sites are found only for names that one definition of these files has: a method's
    are ``self.name(...)`` / ``cls.name(...)`` in its own file; a function's or class's
    are ``name(...)`` in its own file or in a file that imports it by ``from ... import
    name`` — a call of a builtin or of anything else that only shares the name is not
    one.
    """
    documented: list[Definition] = []
    defined: dict[str, int] = {}  # short name -> how many definitions have it
    calls: dict[tuple[str, str], set[tuple[str, int]]] = {}  # (name, scope) -> sites
    for uri, text in sorted(_python_files(chunks).items()):
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError):
            continue
        documented.extend(_walk_definitions(tree, uri, ""))
        local = set()
        imported: dict[str, str] = {}  # bound name -> the imported name
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                defined[node.name] = defined.get(node.name, 0) + 1
                local.add(node.name)
            elif isinstance(node, ast.ImportFrom):
                imported.update({a.asname or a.name: a.name for a in node.names})
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                key = _call_key(node.func, uri, local, imported)
                if key:
                    calls.setdefault(key, set()).add((uri, node.lineno))
    out = []
    for d in documented:
        if defined.get(d.name) != 1:
            sites: set[tuple[str, int]] = set()
        elif d.kind == "method":
            sites = calls.get((d.name, f"self:{d.uri}"), set())
        else:
            sites = calls.get((d.name, f"local:{d.uri}"), set()) | calls.get(
                (d.name, "imported"), set()
            )
        out.append(Definition(**{**asdict(d), "call_sites": tuple(sorted(sites))}))
    return sorted(out, key=lambda d: d.symbol)


def _call_key(
    func: ast.expr, uri: str, local: set[str], imported: dict[str, str]
) -> tuple[str, str] | None:
    """Return (name, scope) of a call the fallback can attribute, else None.

    Scopes: ``self:<uri>`` for ``self.name(...)`` / ``cls.name(...)``, ``local:<uri>`` for
    ``name(...)`` of a name defined in the file, ``imported`` for ``name(...)`` of a name
    the file imports with ``from ... import`` (keyed by the imported name, not an alias).
    """
    if isinstance(func, ast.Name):
        if func.id in local:
            return func.id, f"local:{uri}"
        if func.id in imported:
            return imported[func.id], "imported"
        return None
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        if func.value.id in ("self", "cls"):
            return func.attr, f"self:{uri}"
    return None


def _python_files(chunks: pa.Table) -> dict[str, str]:
    """Return uri -> text of the Python files, rebuilt from their chunks in byte order."""
    by_uri: dict[str, list[tuple[int, str]]] = {}
    columns = ["uri", "start_byte", "content", "lang"]
    for row in chunks.select(columns).to_pylist():
        if row["lang"] == "python":
            by_uri.setdefault(row["uri"], []).append((row["start_byte"], row["content"]))
    return {uri: "".join(c for _, c in sorted(pieces)) for uri, pieces in by_uri.items()}


def _walk_definitions(node: ast.AST, uri: str, prefix: str) -> Iterable[Definition]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            qualified = f"{prefix}{child.name}"
            doc = ast.get_docstring(child)
            if isinstance(child, ast.ClassDef):
                kind = "class"
            else:
                kind = "method" if isinstance(node, ast.ClassDef) else "function"
            if doc:
                yield Definition(f"{uri}::{qualified}", child.name, kind, doc, uri, child.lineno)
            yield from _walk_definitions(child, uri, f"{qualified}.")


def queries_for_definitions(
    definitions: list[Definition], chunks: pa.Table, *, count: int = 200, seed: int = 0
) -> list[SyntheticQuery]:
    """Return up to ``count`` queries over ``definitions`` with positives in ``chunks``.

    Definitions whose line no chunk contains are skipped. Each style gets an equal
    share of ``count`` (the remainder to the first styles).
    """
    spans = _chunk_spans(chunks)
    contents = dict(
        zip(chunks.column("id").to_pylist(), chunks.column("content").to_pylist(), strict=True)
    )
    line_of = _line_reader(chunks, spans)
    order = sorted(definitions, key=lambda d: d.symbol)
    random.Random(seed).shuffle(order)
    quotas = {
        s: count // len(STYLES) + (1 if i < count % len(STYLES) else 0)
        for i, s in enumerate(STYLES)
    }
    made: dict[str, list[SyntheticQuery]] = {s: [] for s in STYLES}
    seen: set[str] = set()
    for definition in order:
        if all(len(made[s]) >= quotas[s] for s in STYLES):
            break
        positives = positives_for(spans, definition.uri, definition.line)
        if not positives:
            continue
        target_text = "".join(contents[p] for p in positives)
        texts = {
            "heldout": doc_query(definition.documentation),
            "doc": doc_query(definition.documentation),
            "name": name_query(definition.name),
            "masked": masked_query(definition.documentation, target_text),
            "call": call_query(definition, spans, positives, line_of, seed),
        }
        for style in STYLES:
            text = texts[style]
            query_id = f"{style}-{xxh64_text(definition.symbol)}"
            if text is None or len(made[style]) >= quotas[style] or query_id in seen:
                continue
            seen.add(query_id)
            made[style].append(
                SyntheticQuery(
                    query_id=query_id,
                    text=text,
                    style=style,
                    symbol=definition.symbol,
                    positives=positives,
                    uri=definition.uri,
                    line=definition.line,
                    extra={"kind": definition.kind},
                )
            )
    return [q for s in STYLES for q in made[s]]


def call_query(
    definition: Definition,
    spans: dict[str, list[tuple[int, int, int]]],
    positives: list[int],
    line_of: Callable[[str, int], str | None],
    seed: int = 0,
) -> str | None:
    """Return the stripped source line of one use of ``definition`` outside its chunks.

    Uses whose line is in a positive chunk, is an import or a continued list of bare
    names, is shorter than ``MIN_CALL_CHARS`` or does not contain the name are skipped;
    of the rest one is picked by a hash of the symbol and ``seed``. None when no use
    qualifies.
    """
    candidates = []
    for uri, line in definition.call_sites:
        text = (line_of(uri, line) or "").strip()
        if (
            len(text) >= MIN_CALL_CHARS
            and definition.name in text
            and not _IMPORT_LINE.match(text)
            and not _BARE_NAMES.match(text)
            and not set(positives_for(spans, uri, line)) & set(positives)
        ):
            candidates.append(text[:MAX_QUERY_CHARS])
    if not candidates:
        return None
    return candidates[int(xxh64_text(f"{seed}:{definition.symbol}"), 16) % len(candidates)]


def _line_reader(
    chunks: pa.Table, spans: dict[str, list[tuple[int, int, int]]]
) -> Callable[[str, int], str | None]:
    """Return (uri, 1-based line) -> that line's text, read from the chunk holding it."""
    contents = dict(
        zip(chunks.column("id").to_pylist(), chunks.column("content").to_pylist(), strict=True)
    )
    starts = dict(
        zip(chunks.column("id").to_pylist(), chunks.column("start_line").to_pylist(), strict=True)
    )

    def line_of(uri: str, line: int) -> str | None:
        for chunk in positives_for(spans, uri, line):
            lines = contents[chunk].split("\n")
            offset = line - starts[chunk]
            if 0 <= offset < len(lines):
                return lines[offset]
        return None

    return line_of


def remap_positives(queries: list[SyntheticQuery], chunks: pa.Table) -> list[SyntheticQuery]:
    """Return the queries with positives recomputed over another chunking of the same files.

    Queries whose definition line no chunk of ``chunks`` contains are dropped.
    """
    spans = _chunk_spans(chunks)
    out = []
    for q in queries:
        positives = positives_for(spans, q.uri, q.line)
        if positives:
            out.append(SyntheticQuery(**{**q.to_dict(), "positives": positives}))
    return out


def _chunk_spans(chunks: pa.Table) -> dict[str, list[tuple[int, int, int]]]:
    spans: dict[str, list[tuple[int, int, int]]] = {}
    for row in chunks.select(["id", "uri", "start_line", "end_line"]).to_pylist():
        spans.setdefault(row["uri"], []).append((row["start_line"], row["end_line"], row["id"]))
    return spans


def positives_for(spans: dict[str, list[tuple[int, int, int]]], uri: str, line: int) -> list[int]:
    """Return the ids of the chunks of ``uri`` whose 1-based inclusive range contains ``line``."""
    return sorted(cid for start, end, cid in spans.get(uri, []) if start <= line <= end)


def doc_query(documentation: str) -> str | None:
    """Return the first sentence of a docstring, or None when it has under three words."""
    paragraph = " ".join(documentation.strip().split("\n\n")[0].split())
    sentence = _SENTENCE_END.split(paragraph, maxsplit=1)[0].strip()
    if len(sentence.split()) < MIN_DOC_WORDS:
        return None
    return sentence[:MAX_QUERY_CHARS]


def name_query(name: str) -> str | None:
    """Return the identifier as words (``HTTPServer.get_URL`` → ``http server get url``).

    None when that gives fewer than two words: a one-word name is not a search.
    """
    words = identifier_parts(name.replace(".", "_"))
    return " ".join(words) if len(words) >= 2 else None


def masked_query(documentation: str, target_code: str) -> str | None:
    """Return the docstring's first paragraph without any word sharing a token with
    an identifier of ``target_code``; None when under ``MIN_MASKED_WORDS`` words remain
    or a shared token survives.
    """
    banned = identifier_tokens(target_code)
    paragraph = " ".join(documentation.strip().split("\n\n")[0].split())
    kept = []
    for word in paragraph.split():
        if not set(tokenize(word)) & banned:
            kept.append(word)
    text = " ".join(kept)[:MAX_QUERY_CHARS]
    content_words = [w for w in kept if tokenize(w)]
    if len(content_words) < MIN_MASKED_WORDS or set(tokenize(text)) & banned:
        return None
    return text


# -- queries.jsonl ----------------------------------------------------------------------

_FIELDS: dict[str, type | tuple[type, ...]] = {
    "query_id": str,
    "text": str,
    "style": str,
    "symbol": str,
    "positives": list,
    "uri": str,
    "line": int,
}


def write_queries_jsonl(queries: list[SyntheticQuery], path: Path) -> None:
    """Write one JSON object per query to ``path`` atomically."""
    lines = [json.dumps(q.to_dict(), sort_keys=True, ensure_ascii=False) for q in queries]
    write_text_atomic(path, "".join(line + "\n" for line in lines))


def read_queries_jsonl(path: Path) -> list[SyntheticQuery]:
    """Return the queries of a ``queries.jsonl`` file (blank lines ignored).

    Raises ``BadInputError`` naming the file, line and field of the first bad record.
    """
    queries = []
    for number, record in jsonl_records(path):
        for name, kind in _FIELDS.items():
            value = record.get(name)
            if name not in record:
                raise BadInputError(f"{path}: line {number}: field '{name}' is missing")
            if not isinstance(value, kind) or isinstance(value, bool):
                raise BadInputError(
                    f"{path}: line {number}: field '{name}' should be {kind.__name__}, "
                    f"got {type(value).__name__}"
                )
        if record["style"] not in STYLES:
            raise BadInputError(
                f"{path}: line {number}: field 'style' is {record['style']!r}, "
                f"expected one of {STYLES}"
            )
        if not all(isinstance(p, int) and not isinstance(p, bool) for p in record["positives"]):
            raise BadInputError(
                f"{path}: line {number}: field 'positives' should list integer chunk ids"
            )
        module = record.get("module")
        if module is not None and not isinstance(module, str):
            raise BadInputError(f"{path}: line {number}: field 'module' should be a string or null")
        extra = record.get("extra") or {}
        if not isinstance(extra, dict):
            raise BadInputError(f"{path}: line {number}: field 'extra' should be an object")
        queries.append(
            SyntheticQuery(**{name: record[name] for name in _FIELDS}, module=module, extra=extra)
        )
    return queries
