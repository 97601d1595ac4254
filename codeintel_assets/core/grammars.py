"""Tree-sitter parsers from the per-language grammar wheels (no run-time downloads)."""

from __future__ import annotations

from functools import cache

import tree_sitter_javascript
import tree_sitter_python
import tree_sitter_typescript
from tree_sitter import Language, Parser

_LANGUAGES = {
    "python": tree_sitter_python.language,
    "javascript": tree_sitter_javascript.language,
    "typescript": tree_sitter_typescript.language_typescript,
    "tsx": tree_sitter_typescript.language_tsx,
}

SYNTAX_LANGUAGES = frozenset(_LANGUAGES)

# Tree-sitter node types that define a name (their ``name`` field), across the Python,
# JavaScript and TypeScript grammars, with the kind a user reads: the one table of them.
DEFINITION_KINDS_BY_NODE = {
    "function_definition": "function",
    "class_definition": "class",
    "function_declaration": "function",
    "generator_function_declaration": "function",
    "class_declaration": "class",
    "abstract_class_declaration": "class",
    "method_definition": "method",
    "interface_declaration": "interface",
    "enum_declaration": "enum",
    "type_alias_declaration": "type",
    "internal_module": "namespace",
    "function_expression": "function",
    "generator_function": "function",
    "class": "class",
    "method_signature": "method",
    "abstract_method_signature": "method",
    "function_signature": "function",
}
# Named definitions that are expressions or signatures (``const f = function g() {}``,
# an interface's method): the definition channel indexes them, the chunker does not cut
# at them.
NAMED_ONLY_DEFINITION_NODES = frozenset(
    {
        "function_expression",
        "generator_function",
        "class",
        "method_signature",
        "abstract_method_signature",
        "function_signature",
    }
)
# The chunker's units: a definition of these is kept whole in a chunk when it fits.
DEFINITION_NODES = {
    node: kind
    for node, kind in DEFINITION_KINDS_BY_NODE.items()
    if node not in NAMED_ONLY_DEFINITION_NODES
}
# Every node type that defines a name (``cst_nodes`` rows of these kinds carry it).
CST_DEFINITION_KINDS = frozenset(DEFINITION_KINDS_BY_NODE)
# The kinds of named definitions (the catalog's ``definitions`` view lists the same).
DEFINITION_KINDS = frozenset(DEFINITION_KINDS_BY_NODE.values())


@cache
def language_for(lang: str) -> Language:
    """Return the tree-sitter ``Language`` for a manifest language name; KeyError if none."""
    return Language(_LANGUAGES[lang]())


def parser_for(lang: str) -> Parser:
    """Return a new parser for ``lang`` (parsers are cheap; languages are cached)."""
    return Parser(language_for(lang))
