"""The SCIP data model as plain dataclasses: what both readers (protobuf and JSON) return.

Field names and meanings follow ``scip.proto`` (sourcegraph/scip, now scip-code/scip);
only what we read is kept. Ranges are normalized at decode time to a 4-tuple
``(start_line, start_char, end_line, end_char)``: 0-based, end exclusive, characters
in the unit of the document's ``position_encoding`` (UTF-16 code units for scip-python,
which leaves the field unset; see ``tables.py`` for the conversion to code points).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# A SCIP range: (start_line, start_char, end_line, end_char), 0-based, end exclusive.
Range = tuple[int, int, int, int]

# SymbolRole bits (scip.proto), tested with ``roles & flag``.
ROLE_DEFINITION = 0x1
ROLE_IMPORT = 0x2
ROLE_WRITE_ACCESS = 0x4
ROLE_READ_ACCESS = 0x8
ROLE_GENERATED = 0x10
ROLE_TEST = 0x20
ROLE_FORWARD_DEFINITION = 0x40

# PositionEncoding (scip.proto): how Occurrence character offsets count.
POSITION_UNSPECIFIED = 0
POSITION_UTF8 = 1
POSITION_UTF16 = 2
POSITION_UTF32 = 3

# SymbolInformation.Kind names by value (scip.proto), used when an indexer sets ``kind``.
KIND_NAMES: dict[int, str] = {
    0: "UnspecifiedKind",
    1: "Array",
    2: "Assertion",
    3: "AssociatedType",
    4: "Attribute",
    5: "Axiom",
    6: "Boolean",
    7: "Class",
    8: "Constant",
    9: "Constructor",
    10: "DataFamily",
    11: "Enum",
    12: "EnumMember",
    13: "Event",
    14: "Fact",
    15: "Field",
    16: "File",
    17: "Function",
    18: "Getter",
    19: "Grammar",
    20: "Instance",
    21: "Interface",
    22: "Key",
    23: "Lang",
    24: "Lemma",
    25: "Macro",
    26: "Method",
    27: "MethodReceiver",
    28: "Message",
    29: "Module",
    30: "Namespace",
    31: "Null",
    32: "Number",
    33: "Object",
    34: "Operator",
    35: "Package",
    36: "PackageObject",
    37: "Parameter",
    38: "ParameterLabel",
    39: "Pattern",
    40: "Predicate",
    41: "Property",
    42: "Protocol",
    43: "Quasiquoter",
    44: "SelfParameter",
    45: "Setter",
    46: "Signature",
    47: "Subscript",
    48: "String",
    49: "Struct",
    50: "Tactic",
    51: "Theorem",
    52: "ThisParameter",
    53: "Trait",
    54: "Type",
    55: "TypeAlias",
    56: "TypeClass",
    57: "TypeFamily",
    58: "TypeParameter",
    59: "Union",
    60: "Value",
    61: "Variable",
    62: "Contract",
    63: "Error",
    64: "Library",
    65: "Modifier",
    66: "AbstractMethod",
    67: "MethodSpecification",
    68: "ProtocolMethod",
    69: "PureVirtualMethod",
    70: "TraitMethod",
    71: "TypeClassMethod",
    72: "Accessor",
    73: "Delegate",
    74: "MethodAlias",
    75: "SingletonClass",
    76: "SingletonMethod",
    77: "StaticDataMember",
    78: "StaticEvent",
    79: "StaticField",
    80: "StaticMethod",
    81: "StaticProperty",
    82: "StaticVariable",
    84: "Extension",
    85: "Mixin",
    86: "Concept",
}


@dataclass(slots=True)
class ToolInfo:
    """The indexer that produced the index."""

    name: str = ""
    version: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Metadata:
    """Index-wide facts: protocol version, tool, project root URI, text encoding."""

    version: int = 0
    tool_info: ToolInfo = field(default_factory=ToolInfo)
    project_root: str = ""
    text_document_encoding: int = 0


@dataclass(slots=True)
class Relationship:
    """A typed link from one symbol to another (base class, overridden method...)."""

    symbol: str
    is_reference: bool = False
    is_implementation: bool = False
    is_type_definition: bool = False
    is_definition: bool = False


@dataclass(slots=True)
class Diagnostic:
    """A diagnostic attached to an occurrence (scip-python never emits one)."""

    severity: int = 0
    code: str = ""
    message: str = ""
    source: str = ""
    tags: list[int] = field(default_factory=list)


@dataclass(slots=True)
class Occurrence:
    """One use or definition of a symbol at a range of a document."""

    range: Range
    symbol: str
    symbol_roles: int = 0
    override_documentation: list[str] = field(default_factory=list)
    syntax_kind: int = 0
    diagnostics: list[Diagnostic] = field(default_factory=list)
    enclosing_range: Range | None = None


@dataclass(slots=True)
class Signature:
    """A signature as shown in hovers (``SymbolInformation.signature_documentation``)."""

    language: str = ""
    text: str = ""
    occurrences: list[Occurrence] = field(default_factory=list)


@dataclass(slots=True)
class SymbolInformation:
    """Metadata of a symbol: documentation, relationships, kind, display name."""

    symbol: str
    documentation: list[str] = field(default_factory=list)
    relationships: list[Relationship] = field(default_factory=list)
    kind: int = 0
    display_name: str = ""
    signature_documentation: Signature | None = None
    enclosing_symbol: str = ""


@dataclass(slots=True)
class Document:
    """One source file: its occurrences and the symbols it defines."""

    relative_path: str
    occurrences: list[Occurrence] = field(default_factory=list)
    symbols: list[SymbolInformation] = field(default_factory=list)
    language: str = ""
    text: str = ""
    position_encoding: int = 0


@dataclass(slots=True)
class ScipIndex:
    """A whole SCIP index: metadata, documents and hover data of external symbols."""

    metadata: Metadata = field(default_factory=Metadata)
    documents: list[Document] = field(default_factory=list)
    external_symbols: list[SymbolInformation] = field(default_factory=list)

    @property
    def occurrence_count(self) -> int:
        """Return the number of occurrences over all documents."""
        return sum(len(doc.occurrences) for doc in self.documents)
