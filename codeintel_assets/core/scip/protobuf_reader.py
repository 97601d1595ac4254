"""Read ``index.scip`` with the bindings generated from ``scip.proto``, one record at a time.

scip-python writes several ``Index`` messages back to back (the metadata, one per
document, then the external symbols); protobuf reads such a stream as one ``Index``. The
only hand-written part is the top-level split, as in sourcegraph/scip's
``bindings/go/scip/parse.go``: the stream is a sequence of length-delimited ``Index``
fields (1 metadata, 2 documents, 3 external_symbols), and each record's payload is parsed
on its own by the generated class (``proto/scip_pb2``, protobuf's upb backend). So a huge
index can be read document by document (``stream_scip_records``), and every error names
the file, a byte offset and the record (``documents[3]``, ``documents[3].occurrences[7]``).

Strictness: the top level may only hold those three fields and must hold the metadata,
so a file that is not SCIP fails at its first bytes. A truncated record, or one the
generated class cannot parse (a bad varint, a string that is not UTF-8...), is an error
at that record's offset. Every document needs a ``relative_path``; every occurrence a
``symbol`` and a ``range`` (and any ``enclosing_range``) of 3 or 4 non-negative values;
every symbol information and relationship a ``symbol`` — those checks report the offset
of the top-level record that holds the bad value. Unknown fields inside a record are kept
by protobuf and otherwise ignored (newer SCIP versions add fields).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from google.protobuf.message import DecodeError, Message

from codeintel_assets.core.errors import BadInputError
from codeintel_assets.core.scip.proto import scip_pb2

IndexRecord = scip_pb2.Metadata | scip_pb2.Document | scip_pb2.SymbolInformation

_LENGTH_DELIMITED = 2
_MAX_VARINT_BYTES = 10
_MAX_MESSAGE_BYTES = 2**31 - 1
# The Index fields: number -> (name, generated class).
_INDEX_FIELDS: dict[int, tuple[str, type[Message]]] = {
    1: ("metadata", scip_pb2.Metadata),
    2: ("documents", scip_pb2.Document),
    3: ("external_symbols", scip_pb2.SymbolInformation),
}


class _Invalid(Exception):
    """A record that parsed but breaks a rule; ``where`` is the path inside the record."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(reason)
        self.where = where
        self.reason = reason


def decode_scip_bytes(data: bytes, source: str = "<bytes>") -> scip_pb2.Index:
    """Decode a SCIP protobuf stream held in memory; ``source`` names it in errors.

    Returns the merged ``scip_pb2.Index``. Raises ``BadInputError`` (file, byte offset,
    record, reason) when the bytes are empty, truncated, or not a SCIP index.
    """
    return _read_index(io.BytesIO(data), source)


def read_scip_protobuf(
    path: Path, *, check: bool = True, document_bytes: list[bytes] | None = None
) -> scip_pb2.Index:
    """Read and decode ``path`` (an ``index.scip`` file). Raises ``BadInputError`` as above.

    ``check=False`` skips the record checks (not the parse): only for a file whose bytes
    are known to be ones this code wrote from checked records (its checksum is the one
    recorded when it was written). ``document_bytes``, when given, receives each
    document's payload, in order.
    """
    with path.open("rb") as stream:
        return _read_index(stream, str(path), check, document_bytes)


def stream_scip_records(stream: BinaryIO, source: str = "<stream>") -> Iterator[IndexRecord]:
    """Yield the top-level records of a SCIP stream one at a time, in stream order.

    Each is a new ``scip_pb2.Metadata``, ``Document`` or ``SymbolInformation`` (an external
    symbol), parsed and checked; only one record's bytes are held at a time. Raises
    ``BadInputError`` as ``decode_scip_bytes`` does, when the bad record is reached.
    """
    yield from _records(stream, source, lambda number: _INDEX_FIELDS[number][1]())


def _read_index(
    stream: BinaryIO,
    source: str,
    check: bool = True,
    document_bytes: list[bytes] | None = None,
) -> scip_pb2.Index:
    index = scip_pb2.Index()
    # Parsing straight into the Index's own fields avoids copying each document.
    targets: dict[int, Callable[[], Message]] = {
        1: lambda: index.metadata,
        2: index.documents.add,
        3: index.external_symbols.add,
    }
    for _ in _records(stream, source, lambda number: targets[number](), check, document_bytes):
        pass
    return index


def _records(
    stream: BinaryIO,
    source: str,
    target: Callable[[int], Message],
    check: bool = True,
    document_bytes: list[bytes] | None = None,
) -> Iterator[Message]:
    """Split ``stream`` into Index records, merge each into ``target(field)``, check it
    (unless ``check`` is false), yield it; append each document's payload to
    ``document_bytes`` when given."""
    counts = dict.fromkeys(_INDEX_FIELDS, 0)
    offset = 0
    while first := stream.read(1):
        tag, length_offset = _varint(stream, offset, source, first)
        number, wire = tag >> 3, tag & 7
        if wire != _LENGTH_DELIMITED or number not in _INDEX_FIELDS:
            raise BadInputError(
                f"{source}: byte {offset}: not a SCIP index: unexpected top-level field "
                f"{number} (wire type {wire})"
            )
        length, payload_offset = _varint(stream, length_offset, source)
        if length > _MAX_MESSAGE_BYTES:
            raise BadInputError(
                f"{source}: byte {length_offset}: record length {length} is over protobuf's "
                "2 GiB limit"
            )
        payload = stream.read(length)
        if len(payload) < length:
            raise BadInputError(
                f"{source}: byte {length_offset}: truncated record: length {length} runs "
                f"past the end ({len(payload)} bytes left)"
            )
        name, _ = _INDEX_FIELDS[number]
        where = name if number == 1 else f"{name}[{counts[number]}]"
        message = target(number)
        try:
            # Merge, as protobuf does when a stream repeats the metadata.
            message.MergeFromString(payload)
            if check:
                _check(message)
        except DecodeError as err:
            raise BadInputError(
                f"{source}: byte {payload_offset} in {where}: not a valid "
                f"{message.DESCRIPTOR.name} record (truncated or malformed field, or a "
                f"string that is not UTF-8): {err}"
            ) from None
        except _Invalid as err:
            raise BadInputError(
                f"{source}: byte {payload_offset} in {_join(where, err.where)}: {err.reason}"
            ) from None
        counts[number] += 1
        if document_bytes is not None and number == 2:
            document_bytes.append(payload)
        offset = payload_offset + length
        yield message
    if offset == 0:
        raise BadInputError(f"{source}: empty file, not a SCIP index")
    if not counts[1]:
        raise BadInputError(f"{source}: byte 0: not a SCIP index: no metadata record")


def _varint(stream: BinaryIO, offset: int, source: str, first: bytes = b"") -> tuple[int, int]:
    """Read a varint starting at ``offset``; return (value, offset after it)."""
    value = 0
    for i in range(_MAX_VARINT_BYTES):
        byte = first if i == 0 and first else stream.read(1)
        if not byte:
            raise BadInputError(f"{source}: byte {offset}: truncated varint")
        value |= (byte[0] & 0x7F) << (7 * i)
        if byte[0] < 0x80:
            return value, offset + i + 1
    raise BadInputError(f"{source}: byte {offset}: varint longer than 10 bytes")


# -- checks of parsed records ------------------------------------------------------


def _check(message: Message) -> None:
    if isinstance(message, scip_pb2.Document):
        _check_document(message)
    elif isinstance(message, scip_pb2.SymbolInformation):
        _check_symbol(message)


def _check_document(doc: scip_pb2.Document) -> None:
    if not doc.relative_path:
        raise _Invalid("", "document has no relative_path")
    _check_occurrences(doc.occurrences, "occurrences")
    for i, info in enumerate(doc.symbols):
        try:
            _check_symbol(info)
        except _Invalid as err:
            raise _Invalid(_join(f"symbols[{i}]", err.where), err.reason) from None


def _check_occurrences(occurrences: list[scip_pb2.Occurrence], field: str) -> None:
    for i, occ in enumerate(occurrences):
        # Once per occurrence, so the good case is one inline test; the reason is worked
        # out only for a bad occurrence.
        rng, enclosing = occ.range, occ.enclosing_range
        if not (
            occ.symbol
            and 3 <= len(rng) <= 4
            and min(rng) >= 0
            and (not enclosing or (3 <= len(enclosing) <= 4 and min(enclosing) >= 0))
        ):
            raise _Invalid(f"{field}[{i}]", _occurrence_problem(occ))


def _occurrence_problem(occ: scip_pb2.Occurrence) -> str:
    if not occ.range:
        return "occurrence has no range"
    if not occ.symbol:
        return "occurrence has no symbol"
    return _range_problem(occ.range, "range") or _range_problem(
        occ.enclosing_range, "enclosing_range"
    )


def _range_problem(values: list[int], what: str) -> str:
    if len(values) != 3 and len(values) != 4:
        return f"{what} has {len(values)} values, expected 3 or 4"
    if min(values) < 0:
        return f"negative value in {what} {list(values)}"
    return ""


def _check_symbol(info: scip_pb2.SymbolInformation) -> None:
    if not info.symbol:
        raise _Invalid("", "symbol information has no symbol")
    for i, rel in enumerate(info.relationships):
        if not rel.symbol:
            raise _Invalid(f"relationships[{i}]", "relationship has no symbol")
    if info.HasField("signature_documentation"):
        _check_occurrences(
            info.signature_documentation.occurrences, "signature_documentation.occurrences"
        )


def _join(outer: str, inner: str) -> str:
    return f"{outer}.{inner}" if inner else outer
