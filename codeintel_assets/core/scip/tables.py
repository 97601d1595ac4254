"""Turn a decoded SCIP index into the ``scip_occurrences`` and ``scip_symbols`` tables.

Positions: lines stay SCIP's 0-based, end-exclusive values; character offsets are
converted to **Unicode code points of the line**, so ``line_text[start_char:end_char]``
is the occurrence's text in Python. The unit read from the index is the document's
``position_encoding``; when it is unset (scip-python leaves it unset) offsets are read
as UTF-16 code units, which is what scip-python (pyright, JavaScript strings) emits.
Conversion needs the file text: ``Document.text`` when the index carries it, else the
``read_text(uri)`` callable; a document whose text is unavailable keeps its raw
offsets (identical to code points for ASCII lines).

Lines are split on ``\\r\\n``, ``\\r`` and ``\\n`` only, as pyright and Python's
tokenizer do (``str.splitlines`` would also split on form feeds and U+2028).

Local symbols (``local N``) stay in ``scip_occurrences`` (they let a reader follow a
variable inside one file) but are left out of ``scip_symbols``: their names are only
unique within one document.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path

import pyarrow as pa

from codeintel_assets.core import schemas
from codeintel_assets.core.scip.proto.scip_pb2 import (
    Document,
    Index,
    PositionEncoding,
    Relationship,
    SymbolInformation,
    SymbolRole,
)
from codeintel_assets.core.scip.symbol_names import (
    display_name,
    infer_kind,
    is_local_symbol,
    parent_symbol,
)

TextReader = Callable[[str], str | None]
# A SCIP range as (start_line, start_char, end_line, end_char): 0-based, end exclusive.
Range = tuple[int, int, int, int]

# Generated enum values, looked up once: each ``SymbolRole.Definition`` goes through a
# Python-level ``__getattr__`` of protobuf's enum wrapper.
_DEFINITION = SymbolRole.Definition
_UTF8 = PositionEncoding.UTF8CodeUnitOffsetFromLineStart
_UTF32 = PositionEncoding.UTF32CodeUnitOffsetFromLineStart
# What a definition without SymbolInformation is read with: every field empty.
_NO_INFORMATION = SymbolInformation()

LINE_BREAK = re.compile(r"\r\n|\r|\n")
_FENCED = re.compile(r"\A```[^\n]*\n(?P<body>.*?)\n?```\s*\Z", re.DOTALL)
_MODULE_HOVER = re.compile(r"\A\(module\) \S+\Z")


def repo_text_reader(repo_root: Path) -> TextReader:
    """Return ``read_text(uri)`` for files under ``repo_root``.

    The reader returns ``None`` for missing files and for uris that leave the
    repository; undecodable bytes are replaced (U+FFFD), one code point per bad byte
    sequence, as pyright reads them.
    """
    root = repo_root.resolve()

    def read_text(uri: str) -> str | None:
        path = (root / uri).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            return None
        return path.read_bytes().decode("utf-8", errors="replace")

    return read_text


class _LineColumns:
    """Converts character offsets of one file's lines from a code-unit encoding to code points."""

    __slots__ = ("lines", "unit_lengths", "cache")

    def __init__(self, text: str, encoding: int) -> None:
        self.lines = LINE_BREAK.split(text)
        self.unit_lengths: Callable[[str], int] = (
            (lambda c: len(c.encode("utf-8")))
            if encoding == _UTF8
            else (lambda c: 2 if ord(c) > 0xFFFF else 1)
        )
        self.cache: dict[int, list[int] | None] = {}

    def column(self, line: int, offset: int) -> int:
        if line not in self.cache:
            self.cache[line] = self._bounds(line)
        bounds = self.cache[line]
        if bounds is None:
            return offset
        if offset >= bounds[-1]:
            # Past the end of the line (pyright may point just after it): keep the overshoot.
            return len(bounds) - 1 + (offset - bounds[-1])
        return bisect.bisect_left(bounds, offset)

    def _bounds(self, line: int) -> list[int] | None:
        """Return the code-unit offset of every code point of ``line`` (None for ASCII lines)."""
        if line >= len(self.lines) or self.lines[line].isascii():
            return None
        bounds = [0]
        total = 0
        unit_lengths = self.unit_lengths
        for char in self.lines[line]:
            total += unit_lengths(char)
            bounds.append(total)
        return bounds


def _columns_for(doc: Document, read_text: TextReader | None) -> _LineColumns | None:
    if doc.position_encoding == _UTF32:
        return None
    text = doc.text or (read_text(doc.relative_path) if read_text is not None else None)
    if text is None or text.isascii():
        return None
    return _LineColumns(text, doc.position_encoding)


def full_range(values: Sequence[int]) -> Range:
    """Return a SCIP range of 4 values, or of 3 (``[line, start, end]``), as a 4-tuple.

    Raises ``ValueError`` for another number of values (both readers reject those).
    """
    if len(values) == 3:
        return (values[0], values[1], values[0], values[2])
    start_line, start_char, end_line, end_char = values
    return (start_line, start_char, end_line, end_char)


def occurrences_table(index: Index, read_text: TextReader | None = None) -> pa.Table:
    """Return one row per occurrence, schema ``schemas.SCIP_OCCURRENCES``.

    ``role`` is ``'def'`` when the ``SymbolRole.Definition`` bit of ``roles`` is set, else
    ``'ref'``.
    Characters are code points of the line (see module doc); ``read_text`` supplies file
    text for documents that do not carry it.
    """
    batches = list(occurrence_batches(index, read_text, rows=None))
    return pa.Table.from_batches(batches, schema=schemas.SCIP_OCCURRENCES)


def occurrence_batches(
    index: Index, read_text: TextReader | None = None, rows: int | None = 65_536
) -> Iterator[pa.RecordBatch]:
    """Yield the rows of ``occurrences_table`` in its order, a batch each time ``rows``
    rows or more were collected (after a whole document), so that no more than one
    batch's rows are Python values at a time; ``rows=None``: one batch in all."""
    columns: list[list] = [[] for _ in schemas.SCIP_OCCURRENCES.names]
    (symbol, uri, role, roles, start_line, start_char, end_line, end_char) = columns[:8]
    enclosing_start, enclosing_end = columns[8:]
    for doc in index.documents:
        text_columns = _columns_for(doc, read_text)
        path = doc.relative_path
        for occ in doc.occurrences:
            line0, char0, line1, char1 = full_range(occ.range)
            if text_columns is not None:
                char0 = text_columns.column(line0, char0)
                char1 = text_columns.column(line1, char1)
            # Each field is read once: every read of a message field builds a Python value.
            flags = occ.symbol_roles
            symbol.append(occ.symbol)
            uri.append(path)
            role.append("def" if flags & _DEFINITION else "ref")
            roles.append(flags)
            start_line.append(line0)
            start_char.append(char0)
            end_line.append(line1)
            end_char.append(char1)
            enclosing = occ.enclosing_range
            if enclosing:
                enclosing_start.append(enclosing[0])
                enclosing_end.append(full_range(enclosing)[2])
            else:
                enclosing_start.append(None)
                enclosing_end.append(None)
        if rows is not None and len(symbol) >= rows:
            yield pa.record_batch(columns, schema=schemas.SCIP_OCCURRENCES)
            for column in columns:
                column.clear()
    if symbol or rows is None:
        yield pa.record_batch(columns, schema=schemas.SCIP_OCCURRENCES)


def split_documentation(info: SymbolInformation) -> tuple[str | None, str | None]:
    """Return ``(signature, documentation)`` of a symbol.

    The signature is ``signature_documentation.text`` when set; scip-python instead puts
    it in the documentation as a fenced ```` ```python ```` block (or ``(module) name``
    for modules), which is taken out. The remaining entries (the docstring) are joined by
    blank lines. Either part is ``None`` when empty.
    """
    signature = info.signature_documentation.text
    rest = []
    for entry in info.documentation:
        fenced = _FENCED.match(entry)
        if not signature and (fenced or _MODULE_HOVER.match(entry)):
            signature = fenced.group("body") if fenced else entry
        else:
            rest.append(entry)
    documentation = "\n\n".join(part for part in rest if part.strip())
    return signature or None, documentation or None


def _symbol_row(symbol: str, info: SymbolInformation, uri: str | None) -> dict[str, object]:
    signature, documentation = split_documentation(info)
    return {
        "symbol": symbol,
        "kind": infer_kind(symbol, info.kind),
        "display_name": info.display_name or display_name(symbol),
        "documentation": documentation,
        "signature": signature,
        "enclosing_symbol": info.enclosing_symbol or parent_symbol(symbol),
        "relationships": [relationship_record(rel) for rel in info.relationships],
        "uri": uri,
    }


def relationship_record(rel: Relationship) -> dict[str, object]:
    """Return every field of ``rel`` by its proto name (a row of ``relationships``)."""
    return {field.name: getattr(rel, field.name) for field in rel.DESCRIPTOR.fields}


def _winners(index: Index) -> dict[str, tuple[SymbolInformation | None, str | None]]:
    """Return each global symbol's first source, (its information or None, uri), taking
    sources in the order rows are: documents' symbols, external symbols, definitions.

    Loops written out (no generator of tuples) and local symbols dropped at the end:
    they never share a name with a global one, so the others' order is the same.
    """
    winners: dict[str, tuple[SymbolInformation | None, str | None]] = {}
    for doc in index.documents:
        path = doc.relative_path
        for info in doc.symbols:
            symbol = info.symbol
            if symbol not in winners:
                winners[symbol] = (info, path)
    for info in index.external_symbols:
        symbol = info.symbol
        if symbol not in winners:
            winners[symbol] = (info, None)
    # Definitions an indexer left without SymbolInformation still name a symbol.
    for doc in index.documents:
        path = doc.relative_path
        for occ in doc.occurrences:
            if occ.symbol_roles & _DEFINITION:
                symbol = occ.symbol
                if symbol not in winners:
                    winners[symbol] = (None, path)
    return {symbol: source for symbol, source in winners.items() if not is_local_symbol(symbol)}


def symbols_table(
    index: Index, previous: pa.Table | None = None, unchanged: Collection[str] = ()
) -> pa.Table:
    """Return one row per global symbol, schema ``schemas.SCIP_SYMBOLS``.

    Rows come from each document's symbols (``uri`` = that document), then the external
    symbols (``uri`` null), then definitions without symbol information; the first row
    of a symbol wins. ``kind`` is the SCIP Kind name, inferred from the descriptor when
    unset (rules in ``symbol_names``); ``enclosing_symbol`` falls back to the parent
    parsed from the symbol string. Local symbols are left out.

    ``previous`` is the table of an earlier index and ``unchanged`` the documents that
    index held byte for byte: a symbol whose row comes from one of them, as it did then,
    keeps its previous row (an unchanged document gives a symbol the same row), so only
    the rows of changed documents and external symbols are made again.
    """
    winners = _winners(index)
    before: dict[str, tuple[int, str | None]] = {}
    if previous is not None and unchanged:
        before = {
            symbol: (row, uri)
            for row, (symbol, uri) in enumerate(
                zip(previous["symbol"].to_pylist(), previous["uri"].to_pylist(), strict=True)
            )
        }
    kept: list[int] = []  # rows of ``previous`` kept, and the positions they take
    kept_at: list[int] = []
    fresh: list[dict[str, object]] = []
    fresh_at: list[int] = []
    for position, (symbol, (info, uri)) in enumerate(winners.items()):
        hit = before.get(symbol)
        if hit is not None and uri is not None and hit[1] == uri and uri in unchanged:
            kept.append(hit[0])
            kept_at.append(position)
        else:
            fresh.append(_symbol_row(symbol, info or _NO_INFORMATION, uri))
            fresh_at.append(position)
    made = pa.Table.from_pylist(fresh, schema=schemas.SCIP_SYMBOLS)
    if not kept:
        return made
    # Rows read back from Parquet name list children "element": cast to the schema's.
    reused = previous.take(kept).select(schemas.SCIP_SYMBOLS.names).cast(schemas.SCIP_SYMBOLS)
    order = [0] * len(winners)
    for row, position in enumerate(kept_at + fresh_at):
        order[position] = row
    return pa.concat_tables([reused, made]).take(order).combine_chunks()
