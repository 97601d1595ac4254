"""Read ``index.scip.json`` — the output of ``scip print --json`` — into ``scip_pb2`` messages.

That command runs Go's ``encoding/json`` over the generated structs, so keys are the
proto field names (snake_case), enums are integers, and zero values (false, 0, "",
empty lists) are omitted. Go's typed range oneofs appear as ``TypedRange`` /
``TypedEnclosingRange`` objects and are read too. Unknown keys are ignored; ``null``
counts as absent (Go prints nil slices that way without ``omitempty``).

Required (a missing one is an error): ``documents[i].relative_path``, and on every
occurrence a ``symbol`` and a range; ``symbol`` on symbol information and
relationships. Wrong types anywhere raise ``BadInputError`` naming the file, the record
path (``documents[3].occurrences[7].range``) and the field. Ranges keep their 3 or 4
values, as in the binary format. ``scip_json_from_index`` writes the same format back
(protobuf's ``MessageToDict`` with proto field names and integer enums), so a decoded
``index.scip`` can be exported and compared.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict

from codeintel_assets.core.errors import BadInputError
from codeintel_assets.core.scip.proto.scip_pb2 import (
    Diagnostic,
    Document,
    Index,
    Metadata,
    Occurrence,
    Relationship,
    SymbolInformation,
    ToolInfo,
)

# Every SCIP integer (int32, enums) must fit the generated classes' int32 fields.
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


class _Fields:
    """Typed access to one JSON object; every error names the file and record path."""

    __slots__ = ("obj", "path", "source")

    def __init__(self, obj: Any, path: str, source: str) -> None:
        if not isinstance(obj, dict):
            raise BadInputError(
                f"{source}: {path or '<root>'}: expected an object, got {_type_name(obj)}"
            )
        self.obj = obj
        self.path = path
        self.source = source

    def error(self, key: str, reason: str) -> BadInputError:
        where = f"{self.path}.{key}" if self.path else key
        return BadInputError(f"{self.source}: {where}: {reason}")

    def string(self, key: str, required: bool = False) -> str:
        value = self.obj.get(key)
        if value is None:
            if required:
                raise self.error(key, "missing required string field")
            return ""
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, got {_type_name(value)}")
        if required and not value:
            raise self.error(key, "must not be empty")
        self._check_unicode(key, value)
        return value

    def _check_unicode(self, key: str, value: str) -> None:
        # JSON can escape a lone surrogate (\ud800), which no UTF-8 string field can hold.
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise self.error(key, "string holds a lone surrogate, not valid Unicode") from None

    def integer(self, key: str) -> int:
        value = self.obj.get(key)
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected an integer, got {_type_name(value)}")
        if not _INT32_MIN <= value <= _INT32_MAX:
            raise self.error(key, f"{value} does not fit an int32")
        return value

    def boolean(self, key: str) -> bool:
        value = self.obj.get(key)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self.error(key, f"expected a boolean, got {_type_name(value)}")
        return value

    def array(self, key: str) -> list[Any]:
        value = self.obj.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.error(key, f"expected an array, got {_type_name(value)}")
        return value

    def strings(self, key: str) -> list[str]:
        values = self.array(key)
        for i, value in enumerate(values):
            if not isinstance(value, str):
                raise self.error(f"{key}[{i}]", f"expected a string, got {_type_name(value)}")
            self._check_unicode(f"{key}[{i}]", value)
        return values

    def child(self, key: str) -> _Fields | None:
        value = self.obj.get(key)
        if value is None:
            return None
        return _Fields(value, f"{self.path}.{key}" if self.path else key, self.source)

    def items(self, key: str) -> list[_Fields]:
        prefix = f"{self.path}.{key}" if self.path else key
        return [_Fields(v, f"{prefix}[{i}]", self.source) for i, v in enumerate(self.array(key))]

    def range(self, key: str) -> list[int]:
        values = self.array(key)
        if not values:
            return []
        for value in values:
            if not _is_int(value) or not 0 <= value <= _INT32_MAX:
                raise self.error(key, f"expected non-negative int32 values, got {values!r}")
        if len(values) not in (3, 4):
            raise self.error(key, f"has {len(values)} values, expected 3 or 4")
        return values


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def read_scip_json(path: Path) -> Index:
    """Read ``path`` (``scip print --json`` output) into a ``scip_pb2.Index``.

    Raises ``BadInputError`` when the file is not JSON, or a field is missing or has the
    wrong type (the message names the file, the record path and the field).
    """
    try:
        raw = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BadInputError(f"{path}: not valid JSON: {err}") from None
    return scip_index_from_json(raw, str(path))


def scip_index_from_json(raw: Any, source: str = "<json>") -> Index:
    """Convert an already parsed ``scip print --json`` value; ``source`` names it in errors.

    A message field is set only when its key is present, as protobuf would read it.
    """
    root = _Fields(raw, "", source)
    metadata = None
    meta = root.child("metadata")
    if meta is not None:
        tool = meta.child("tool_info")
        metadata = Metadata(
            version=meta.integer("version"),
            tool_info=ToolInfo(
                name=tool.string("name"),
                version=tool.string("version"),
                arguments=tool.strings("arguments"),
            )
            if tool is not None
            else None,
            project_root=meta.string("project_root"),
            text_document_encoding=meta.integer("text_document_encoding"),
        )
    return Index(
        metadata=metadata,
        documents=[_document(doc) for doc in root.items("documents")],
        external_symbols=[_symbol_information(info) for info in root.items("external_symbols")],
    )


def _document(doc: _Fields) -> Document:
    return Document(
        relative_path=doc.string("relative_path", required=True),
        occurrences=[_occurrence(occ) for occ in doc.items("occurrences")],
        symbols=[_symbol_information(info) for info in doc.items("symbols")],
        language=doc.string("language"),
        text=doc.string("text"),
        position_encoding=doc.integer("position_encoding"),
    )


def _occurrence(occ: _Fields) -> Occurrence:
    rng = occ.range("range") or _typed_range(occ, "TypedRange")
    if not rng:
        raise occ.error("range", "missing required range")
    return Occurrence(
        range=rng,
        symbol=occ.string("symbol", required=True),
        symbol_roles=occ.integer("symbol_roles"),
        override_documentation=occ.strings("override_documentation"),
        syntax_kind=occ.integer("syntax_kind"),
        diagnostics=[_diagnostic(d) for d in occ.items("diagnostics")],
        enclosing_range=occ.range("enclosing_range") or _typed_range(occ, "TypedEnclosingRange"),
    )


def _typed_range(occ: _Fields, key: str) -> list[int]:
    """Read Go's oneof wrapper: ``{"SingleLineRange": {...}}`` or ``{"MultiLineRange": ...}``.

    Newer SCIP schemas than the vendored one add these typed ranges; they are read into
    the plain 4-value range.
    """
    wrapper = occ.child(key)
    if wrapper is None:
        return []
    for name in wrapper.obj:
        inner = wrapper.child(name)
        if inner is None:
            continue
        start_line = inner.integer("start_line") if "Multi" in name else inner.integer("line")
        end_line = inner.integer("end_line") if "Multi" in name else start_line
        values = [
            start_line,
            inner.integer("start_character"),
            end_line,
            inner.integer("end_character"),
        ]
        if min(values) < 0:
            raise wrapper.error(name, f"negative position {values!r}")
        return values
    return []


def _diagnostic(diag: _Fields) -> Diagnostic:
    tags = diag.array("tags")
    for i, tag in enumerate(tags):
        if not _is_int(tag) or not 0 <= tag <= _INT32_MAX:
            raise diag.error(f"tags[{i}]", f"expected a DiagnosticTag, got {tag!r}")
    return Diagnostic(
        severity=diag.integer("severity"),
        code=diag.string("code"),
        message=diag.string("message"),
        source=diag.string("source"),
        tags=tags,
    )


def _symbol_information(info: _Fields) -> SymbolInformation:
    signature = info.child("signature_documentation")
    return SymbolInformation(
        symbol=info.string("symbol", required=True),
        documentation=info.strings("documentation"),
        relationships=[_relationship(rel) for rel in info.items("relationships")],
        kind=info.integer("kind"),
        display_name=info.string("display_name"),
        signature_documentation=Document(
            language=signature.string("language"),
            text=signature.string("text"),
            occurrences=[_occurrence(occ) for occ in signature.items("occurrences")],
        )
        if signature is not None
        else None,
        enclosing_symbol=info.string("enclosing_symbol"),
    )


def _relationship(rel: _Fields) -> Relationship:
    return Relationship(
        symbol=rel.string("symbol", required=True),
        is_reference=rel.boolean("is_reference"),
        is_implementation=rel.boolean("is_implementation"),
        is_type_definition=rel.boolean("is_type_definition"),
        is_definition=rel.boolean("is_definition"),
    )


# -- writing the same format --------------------------------------------------------


def scip_json_from_index(index: Index) -> dict[str, Any]:
    """Return ``index`` as ``scip print --json`` would print it (zero values omitted)."""
    return MessageToDict(index, preserving_proto_field_name=True, use_integers_for_enums=True)
