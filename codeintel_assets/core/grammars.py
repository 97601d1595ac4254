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


@cache
def language_for(lang: str) -> Language:
    """Return the tree-sitter ``Language`` for a manifest language name; KeyError if none."""
    return Language(_LANGUAGES[lang]())


def parser_for(lang: str) -> Parser:
    """Return a new parser for ``lang`` (parsers are cheap; languages are cached)."""
    return Parser(language_for(lang))
