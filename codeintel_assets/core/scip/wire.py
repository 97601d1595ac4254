"""Decode SCIP's protobuf wire format (``index.scip``) into ``model`` dataclasses.

Our own decoder, no generated code: SCIP needs only varints, length-delimited fields
and packed ``repeated int32``. scip-python writes several ``Index`` messages back to
back (metadata, one per document, then the external symbols); protobuf merges
concatenated messages by appending repeated fields and merging the metadata, which
is what ``decode_scip_bytes`` does.

Strictness: the top level of the stream may only hold the three ``Index`` fields
(1 metadata, 2 documents, 3 external_symbols) as length-delimited records and must
hold the metadata, so a file that is not SCIP fails at its first bytes. Inside
messages unknown fields are skipped (newer SCIP versions add fields). Any truncated
record, bad varint, invalid UTF-8 or malformed range raises ``BadInputError`` naming
the file, the byte offset and the record (e.g. ``documents[3].occurrences[7]``).
"""

from __future__ import annotations

from pathlib import Path

from codeintel_assets.core.errors import BadInputError
from codeintel_assets.core.scip.model import (
    Diagnostic,
    Document,
    Metadata,
    Occurrence,
    Range,
    Relationship,
    ScipIndex,
    Signature,
    SymbolInformation,
    ToolInfo,
)

_WIRE_VARINT = 0
_WIRE_I64 = 1
_WIRE_LEN = 2
_WIRE_I32 = 5
_MAX_VARINT_BYTES = 10


class _WireError(Exception):
    """A decoding problem at ``offset``; ``record`` grows as the error climbs out of messages."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(reason)
        self.offset = offset
        self.reason = reason
        self.record: list[str] = []


def decode_scip_bytes(data: bytes, source: str = "<bytes>") -> ScipIndex:
    """Decode a SCIP protobuf stream (one or several concatenated ``Index`` messages).

    ``source`` names the file in error messages. Returns the merged ``ScipIndex``.
    Raises ``BadInputError`` (file, byte offset, record, reason) when the bytes are
    empty, truncated, or not a SCIP index.
    """
    if not data:
        raise BadInputError(f"{source}: empty file, not a SCIP index")
    index = ScipIndex()
    saw_metadata = False
    pos = 0
    end = len(data)
    try:
        while pos < end:
            field_start = pos
            tag, pos = _varint(data, pos, end)
            if tag & 7 != _WIRE_LEN or tag >> 3 not in (1, 2, 3):
                raise _WireError(
                    field_start,
                    f"not a SCIP index: unexpected top-level field {tag >> 3} "
                    f"(wire type {tag & 7})",
                )
            start, stop = _length(data, pos, end)
            pos = stop
            number = tag >> 3
            try:
                if number == 1:
                    _metadata(data, start, stop, index.metadata)
                    saw_metadata = True
                elif number == 2:
                    index.documents.append(_document(data, start, stop))
                else:
                    index.external_symbols.append(_symbol_information(data, start, stop))
            except _WireError as err:
                err.record.append(
                    "metadata"
                    if number == 1
                    else f"documents[{len(index.documents)}]"
                    if number == 2
                    else f"external_symbols[{len(index.external_symbols)}]"
                )
                raise
    except _WireError as err:
        where = ".".join(reversed(err.record))
        place = f" in {where}" if where else ""
        raise BadInputError(f"{source}: byte {err.offset}{place}: {err.reason}") from None
    if not saw_metadata:
        raise BadInputError(f"{source}: byte 0: not a SCIP index: no metadata record")
    return index


def decode_scip_protobuf(path: Path) -> ScipIndex:
    """Read and decode ``path`` (an ``index.scip`` file). Raises ``BadInputError`` as above."""
    return decode_scip_bytes(path.read_bytes(), str(path))


# -- primitives --------------------------------------------------------------------


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    start = pos
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise _WireError(start, "truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if pos - start >= _MAX_VARINT_BYTES:
            raise _WireError(start, "varint longer than 10 bytes")


def _length(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """Read a length prefix; return the (start, stop) of the payload, bounds-checked."""
    length, start = _varint(buf, pos, end)
    stop = start + length
    if stop > end:
        raise _WireError(
            pos, f"truncated record: length {length} runs past the end ({end - start} bytes left)"
        )
    return start, stop


def _string(buf: bytes, pos: int, end: int) -> tuple[str, int]:
    start, stop = _length(buf, pos, end)
    try:
        return buf[start:stop].decode("utf-8"), stop
    except UnicodeDecodeError as err:
        raise _WireError(start + err.start, "string is not valid UTF-8") from None


def _int32(value: int) -> int:
    # int32 negatives travel as 64-bit two's complement varints.
    return value - (1 << 64) if value >= 1 << 63 else value


def _packed_int32(buf: bytes, start: int, stop: int) -> list[int]:
    """Decode packed non-negative int32 values (SCIP's ranges and tags are never negative)."""
    chunk = buf[start:stop]
    if chunk.isascii():
        # Every value fits one byte (all bytes < 0x80): the bytes are the values.
        return list(chunk)
    values = []
    pos = start
    while pos < stop:
        byte = buf[pos]
        if byte < 0x80:
            values.append(byte)
            pos += 1
        elif pos + 1 < stop and buf[pos + 1] < 0x80:
            # Two-byte varints (values up to 16383) cover nearly every line and column.
            values.append((byte & 0x7F) | buf[pos + 1] << 7)
            pos += 2
        else:
            value_start = pos
            value, pos = _varint(buf, pos, stop)
            if value > 0x7FFFFFFF:
                raise _WireError(value_start, f"negative or oversized int32 {_int32(value)}")
            values.append(value)
    return values


def _skip(buf: bytes, pos: int, end: int, tag: int, field_start: int) -> int:
    """Skip the payload of an unknown field; return the position after it."""
    wire = tag & 7
    if tag >> 3 == 0:
        raise _WireError(field_start, "field number 0 is invalid")
    if wire == _WIRE_VARINT:
        return _varint(buf, pos, end)[1]
    if wire == _WIRE_LEN:
        return _length(buf, pos, end)[1]
    if wire == _WIRE_I64 or wire == _WIRE_I32:
        stop = pos + (8 if wire == _WIRE_I64 else 4)
        if stop > end:
            raise _WireError(field_start, "truncated fixed-width field")
        return stop
    raise _WireError(field_start, f"wire type {wire} is not used by SCIP")


def _wrong_type(tag: int, field_start: int, message: str) -> _WireError:
    return _WireError(
        field_start, f"{message} field {tag >> 3} has wire type {tag & 7}, not the SCIP type"
    )


def _range(values: list[int], offset: int, what: str) -> Range:
    if len(values) == 4:
        return (values[0], values[1], values[2], values[3])
    if len(values) == 3:
        return (values[0], values[1], values[0], values[2])
    raise _WireError(offset, f"{what} has {len(values)} values, expected 3 or 4")


def _typed_range(buf: bytes, start: int, stop: int, multi: bool) -> list[int]:
    """Decode SingleLineRange (line, start, end) or MultiLineRange into range values."""
    values = [0, 0, 0, 0] if multi else [0, 0, 0]
    pos = start
    while pos < stop:
        field_start = pos
        tag, pos = _varint(buf, pos, stop)
        number = tag >> 3
        if tag & 7 == _WIRE_VARINT and 1 <= number <= len(values):
            value_start = pos
            value, pos = _varint(buf, pos, stop)
            if value > 0x7FFFFFFF:
                raise _WireError(value_start, f"negative or oversized int32 {_int32(value)}")
            values[number - 1] = value
        else:
            pos = _skip(buf, pos, stop, tag, field_start)
    return values


# -- messages ----------------------------------------------------------------------


def _metadata(buf: bytes, pos: int, end: int, into: Metadata) -> None:
    """Merge a Metadata record into ``into`` (a repeated metadata merges, as in protobuf)."""
    while pos < end:
        field_start = pos
        tag, pos = _varint(buf, pos, end)
        if tag == 0x08:
            into.version, pos = _varint(buf, pos, end)
        elif tag == 0x12:
            start, pos = _length(buf, pos, end)
            _tool_info(buf, start, pos, into.tool_info)
        elif tag == 0x1A:
            into.project_root, pos = _string(buf, pos, end)
        elif tag == 0x20:
            into.text_document_encoding, pos = _varint(buf, pos, end)
        elif tag >> 3 <= 4:
            raise _wrong_type(tag, field_start, "Metadata")
        else:
            pos = _skip(buf, pos, end, tag, field_start)


def _tool_info(buf: bytes, pos: int, end: int, into: ToolInfo) -> None:
    while pos < end:
        field_start = pos
        tag, pos = _varint(buf, pos, end)
        if tag == 0x0A:
            into.name, pos = _string(buf, pos, end)
        elif tag == 0x12:
            into.version, pos = _string(buf, pos, end)
        elif tag == 0x1A:
            argument, pos = _string(buf, pos, end)
            into.arguments.append(argument)
        elif tag >> 3 <= 3:
            raise _wrong_type(tag, field_start, "ToolInfo")
        else:
            pos = _skip(buf, pos, end, tag, field_start)


def _document(buf: bytes, pos: int, end: int) -> Document:
    doc_start = pos
    doc = Document(relative_path="")
    occurrences = doc.occurrences
    symbols = doc.symbols
    while pos < end:
        field_start = pos
        tag = buf[pos]
        if tag < 0x80:
            pos += 1
        else:
            tag, pos = _varint(buf, pos, end)
        if tag == 0x12:
            start, pos = _length(buf, pos, end)
            try:
                occurrences.append(_occurrence(buf, start, pos))
            except _WireError as err:
                err.record.append(f"occurrences[{len(occurrences)}]")
                raise
        elif tag == 0x1A:
            start, pos = _length(buf, pos, end)
            try:
                symbols.append(_symbol_information(buf, start, pos))
            except _WireError as err:
                err.record.append(f"symbols[{len(symbols)}]")
                raise
        elif tag == 0x0A:
            doc.relative_path, pos = _string(buf, pos, end)
        elif tag == 0x22:
            doc.language, pos = _string(buf, pos, end)
        elif tag == 0x2A:
            doc.text, pos = _string(buf, pos, end)
        elif tag == 0x30:
            doc.position_encoding, pos = _varint(buf, pos, end)
        elif tag >> 3 <= 6:
            raise _wrong_type(tag, field_start, "Document")
        else:
            pos = _skip(buf, pos, end, tag, field_start)
    if not doc.relative_path:
        raise _WireError(doc_start, "document has no relative_path")
    return doc


def _occurrence(buf: bytes, pos: int, end: int) -> Occurrence:
    # The hot loop of the decoder: single-byte tags and ranges are read inline.
    occ_start = pos
    range_values: list[int] | None = None
    enclosing_values: list[int] | None = None
    symbol = ""
    roles = 0
    syntax_kind = 0
    overrides: list[str] = []
    diagnostics: list[Diagnostic] = []
    while pos < end:
        field_start = pos
        tag = buf[pos]
        if tag < 0x80:
            pos += 1
        else:
            tag, pos = _varint(buf, pos, end)
        if tag == 0x0A or tag == 0x12 or tag == 0x3A:
            if pos < end and buf[pos] < 0x80:
                start = pos + 1
                pos = start + buf[pos]
                if pos > end:
                    raise _WireError(start - 1, "truncated record: length runs past the end")
            else:
                start, pos = _length(buf, pos, end)
            if tag == 0x12:
                try:
                    symbol = buf[start:pos].decode("utf-8")
                except UnicodeDecodeError as err:
                    raise _WireError(start + err.start, "symbol is not valid UTF-8") from None
            elif tag == 0x0A:
                range_values = _packed_int32(buf, start, pos)
            else:
                enclosing_values = _packed_int32(buf, start, pos)
        elif tag == 0x18:
            if pos < end and buf[pos] < 0x80:
                roles = buf[pos]
                pos += 1
            else:
                roles, pos = _varint(buf, pos, end)
                roles = _int32(roles)
        elif tag == 0x08 or tag == 0x38:
            # Unpacked repeated int32: legal protobuf, so accepted.
            value, pos = _varint(buf, pos, end)
            if value > 0x7FFFFFFF:
                raise _WireError(field_start, f"negative or oversized int32 {_int32(value)}")
            if tag == 0x08:
                range_values = (range_values or []) + [value]
            else:
                enclosing_values = (enclosing_values or []) + [value]
        elif tag == 0x22:
            text, pos = _string(buf, pos, end)
            overrides.append(text)
        elif tag == 0x28:
            syntax_kind, pos = _varint(buf, pos, end)
        elif tag == 0x32:
            start, pos = _length(buf, pos, end)
            diagnostics.append(_diagnostic(buf, start, pos))
        elif tag in (0x42, 0x4A, 0x52, 0x5A):
            start, pos = _length(buf, pos, end)
            values = _typed_range(buf, start, pos, multi=tag in (0x4A, 0x5A))
            if tag in (0x42, 0x4A):
                range_values = values
            else:
                enclosing_values = values
        elif tag >> 3 <= 11:
            raise _wrong_type(tag, field_start, "Occurrence")
        else:
            pos = _skip(buf, pos, end, tag, field_start)
    if range_values is None:
        raise _WireError(occ_start, "occurrence has no range")
    if not symbol:
        raise _WireError(occ_start, "occurrence has no symbol")
    return Occurrence(
        range=_range(range_values, occ_start, "range"),
        symbol=symbol,
        symbol_roles=roles,
        override_documentation=overrides,
        syntax_kind=syntax_kind,
        diagnostics=diagnostics,
        enclosing_range=(
            _range(enclosing_values, occ_start, "enclosing_range") if enclosing_values else None
        ),
    )


def _diagnostic(buf: bytes, pos: int, end: int) -> Diagnostic:
    diagnostic = Diagnostic()
    while pos < end:
        field_start = pos
        tag, pos = _varint(buf, pos, end)
        if tag == 0x08:
            diagnostic.severity, pos = _varint(buf, pos, end)
        elif tag == 0x12:
            diagnostic.code, pos = _string(buf, pos, end)
        elif tag == 0x1A:
            diagnostic.message, pos = _string(buf, pos, end)
        elif tag == 0x22:
            diagnostic.source, pos = _string(buf, pos, end)
        elif tag == 0x2A:
            start, pos = _length(buf, pos, end)
            diagnostic.tags.extend(_packed_int32(buf, start, pos))
        elif tag == 0x28:
            value, pos = _varint(buf, pos, end)
            diagnostic.tags.append(value)
        elif tag >> 3 <= 5:
            raise _wrong_type(tag, field_start, "Diagnostic")
        else:
            pos = _skip(buf, pos, end, tag, field_start)
    return diagnostic


def _symbol_information(buf: bytes, pos: int, end: int) -> SymbolInformation:
    info_start = pos
    info = SymbolInformation(symbol="")
    while pos < end:
        field_start = pos
        tag, pos = _varint(buf, pos, end)
        if tag == 0x0A:
            info.symbol, pos = _string(buf, pos, end)
        elif tag == 0x1A:
            text, pos = _string(buf, pos, end)
            info.documentation.append(text)
        elif tag == 0x22:
            start, pos = _length(buf, pos, end)
            try:
                info.relationships.append(_relationship(buf, start, pos))
            except _WireError as err:
                err.record.append(f"relationships[{len(info.relationships)}]")
                raise
        elif tag == 0x28:
            info.kind, pos = _varint(buf, pos, end)
        elif tag == 0x32:
            info.display_name, pos = _string(buf, pos, end)
        elif tag == 0x3A:
            start, pos = _length(buf, pos, end)
            info.signature_documentation = _signature(buf, start, pos)
        elif tag == 0x42:
            info.enclosing_symbol, pos = _string(buf, pos, end)
        elif tag >> 3 <= 8 and tag >> 3 != 2:
            raise _wrong_type(tag, field_start, "SymbolInformation")
        else:
            pos = _skip(buf, pos, end, tag, field_start)
    if not info.symbol:
        raise _WireError(info_start, "symbol information has no symbol")
    return info


def _relationship(buf: bytes, pos: int, end: int) -> Relationship:
    rel_start = pos
    symbol = ""
    flags = [False, False, False, False]
    while pos < end:
        field_start = pos
        tag, pos = _varint(buf, pos, end)
        number = tag >> 3
        if tag == 0x0A:
            symbol, pos = _string(buf, pos, end)
        elif tag & 7 == _WIRE_VARINT and 2 <= number <= 5:
            value, pos = _varint(buf, pos, end)
            flags[number - 2] = value != 0
        elif number <= 5:
            raise _wrong_type(tag, field_start, "Relationship")
        else:
            pos = _skip(buf, pos, end, tag, field_start)
    if not symbol:
        raise _WireError(rel_start, "relationship has no symbol")
    return Relationship(symbol, *flags)


def _signature(buf: bytes, pos: int, end: int) -> Signature:
    """Decode a Signature (wire-compatible with the Document it replaced: 2, 4, 5)."""
    signature = Signature()
    while pos < end:
        field_start = pos
        tag, pos = _varint(buf, pos, end)
        if tag == 0x12:
            start, pos = _length(buf, pos, end)
            signature.occurrences.append(_occurrence(buf, start, pos))
        elif tag == 0x22:
            signature.language, pos = _string(buf, pos, end)
        elif tag == 0x2A:
            signature.text, pos = _string(buf, pos, end)
        else:
            pos = _skip(buf, pos, end, tag, field_start)
    return signature
