"""Syntax-aware chunking: where chunks are made.

A file becomes a list of ``Chunk`` s whose boundaries follow syntax: top-level
functions, classes and statements (tree-sitter for Python, JavaScript and
TypeScript) are units; a unit over the token budget is split on its inner
boundaries (methods of a class, statements of a body), recursively, and a node
with no inner boundary is cut into line windows (a single over-long line into
character windows). Small adjacent siblings are merged while they fit. Comments,
decorators and blank lines before a unit belong to it. Together the chunks of a
file cover every line exactly once, so nothing is dropped, and every chunk fits
the budget, so nothing is truncated by the embedder.

Token counts come from a ``count_tokens`` callable (the embedding model's own
tokenizer in production), counted once per line and summed: the model's
pre-tokenizer splits on whitespace, so line counts add up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tree_sitter import Node

from codeintel_assets.core.checksums import signed_xxh64, xxh64_text
from codeintel_assets.core.grammars import DEFINITION_NODES, SYNTAX_LANGUAGES, parser_for

TokenCounter = Callable[[Sequence[str]], list[int]]

PREVIEW_CHARS = 240

# Wrappers whose inner node carries the definition (decorators, `export`).
_WRAPPERS = {"decorated_definition": "definition", "export_statement": "declaration"}


@dataclass(frozen=True)
class Chunk:
    """A contiguous range of a file; lines 1-based inclusive, bytes end-exclusive."""

    id: int
    uri: str
    start_line: int
    end_line: int
    start_byte: int
    end_byte: int
    content: str
    lang: str
    kind: str
    name: str | None

    @property
    def preview(self) -> str:
        return self.content[:PREVIEW_CHARS]

    @property
    def content_hash(self) -> str:
        return xxh64_text(self.content)


@dataclass(frozen=True)
class _Piece:
    first: int  # 0-based line index, inclusive
    last: int
    kind: str
    name: str | None
    tokens: int
    # For a piece cut inside one over-long line: character range of that line.
    chars: tuple[int, int] | None = None


def chunk_id(repo: str, uri: str, start_byte: int, end_byte: int) -> int:
    """Return the stable chunk id: signed xxh64 of (repository, uri, start_byte, end_byte)."""
    return signed_xxh64(repo, uri, start_byte, end_byte)


def chunk_file(
    repo: str,
    uri: str,
    text: str,
    lang: str,
    budget: int,
    count_tokens: TokenCounter,
    min_merge_tokens: int | None = None,
) -> list[Chunk]:
    """Return the chunks of one file, in order, covering all of its lines.

    ``budget`` is the most tokens a chunk's content may have; ``min_merge_tokens``
    (default a quarter of the budget) is the size below which a piece is merged
    with its neighbour when both fit together.
    """
    if not text:
        return []
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    line_tokens = count_tokens(lines)
    chunker = _FileChunker(
        lines, line_tokens, budget, count_tokens, min_merge_tokens or budget // 4
    )
    if lang in SYNTAX_LANGUAGES:
        tree = parser_for(lang).parse(text.encode("utf-8"))
        pieces = chunker.split_children(tree.root_node, 0, len(lines) - 1, "module", None)
    else:
        pieces = chunker.windows(0, len(lines) - 1, "window", None)
    return _to_chunks(repo, uri, lang, lines, chunker.merge(pieces), text.endswith("\n"))


class _FileChunker:
    def __init__(
        self,
        lines: list[str],
        line_tokens: list[int],
        budget: int,
        count_tokens: TokenCounter,
        min_merge: int,
    ) -> None:
        self.lines = lines
        self.budget = budget
        self.count_tokens = count_tokens
        self.min_merge = min_merge
        self.prefix = [0]
        for n in line_tokens:
            self.prefix.append(self.prefix[-1] + n)

    def tokens(self, first: int, last: int) -> int:
        return self.prefix[last + 1] - self.prefix[first]

    def pieces_for(
        self, node: Node, first: int, last: int, kind: str, name: str | None
    ) -> list[_Piece]:
        """Return pieces for lines [first, last] that hold ``node`` (one piece if it fits)."""
        tokens = self.tokens(first, last)
        if tokens <= self.budget:
            return [_Piece(first, last, kind, name, tokens)]
        return self.split_children(node, first, last, kind, name)

    def split_children(
        self, node: Node, first: int, last: int, kind: str, name: str | None
    ) -> list[_Piece]:
        """Split lines [first, last] on the inner boundaries of ``node``; windows if none."""
        children = [c for c in _inner_units(node) if c.start_point.row <= last]
        spans = _unit_spans(children, first, last)
        if not spans:
            return self.windows(first, last, kind, name)
        if len(spans) == 1:
            # One unit fills the range (a file holding one class): look inside it.
            child, lo, hi = spans[0]
            child_kind, child_name = _describe(child, kind, name)
            return self.pieces_for(child, lo, hi, child_kind or kind, child_name or name)
        pieces: list[_Piece] = []
        for child, lo, hi in spans:
            child_kind, child_name = _describe(child, kind, name)
            if child_kind is None:
                child_kind, child_name = kind, name
            pieces.extend(self.merge(self.pieces_for(child, lo, hi, child_kind, child_name)))
        return self.merge(pieces)

    def windows(self, first: int, last: int, kind: str, name: str | None) -> list[_Piece]:
        """Cut lines [first, last] into consecutive windows that fit the budget."""
        pieces: list[_Piece] = []
        start = first
        while start <= last:
            end = start
            while end + 1 <= last and self.tokens(start, end + 1) <= self.budget:
                end += 1
            if self.tokens(start, end) > self.budget:
                pieces.extend(self.char_windows(start, kind, name))
            else:
                pieces.append(_Piece(start, end, kind, name, self.tokens(start, end)))
            start = end + 1
        return pieces

    def char_windows(self, line: int, kind: str, name: str | None) -> list[_Piece]:
        """Cut one over-long line into character windows that fit the budget.

        Each window is measured on its own: the first guess is the budget's worth of
        characters at the line's average characters per token (at least one per token),
        shrunk until it fits. Only a window's own text is ever tokenized, so the work is
        linear in the line's length.
        """
        text = self.lines[line]
        total = max(self.tokens(line, line), 1)
        chars_per_token = max(len(text) / total, 1.0)
        pieces: list[_Piece] = []
        start = 0
        while start < len(text):
            size = min(len(text) - start, max(1, int(self.budget * chars_per_token)))
            while True:
                tokens = self.count_tokens([text[start : start + size]])[0]
                if tokens <= self.budget or size == 1:
                    break
                size = max(1, size * self.budget // (tokens + 1))
            pieces.append(_Piece(line, line, kind, name, tokens, (start, start + size)))
            start += size
        return pieces

    def merge(self, pieces: list[_Piece]) -> list[_Piece]:
        """Merge adjacent whole-line pieces when one is small and both fit together."""
        merged: list[_Piece] = []
        for piece in pieces:
            prev = merged[-1] if merged else None
            if (
                prev is not None
                and prev.chars is None
                and piece.chars is None
                and prev.last + 1 == piece.first
                and min(prev.tokens, piece.tokens) < self.min_merge
                and prev.tokens + piece.tokens <= self.budget
            ):
                named = prev if prev.name is not None or piece.name is None else piece
                merged[-1] = _Piece(
                    prev.first, piece.last, named.kind, named.name, prev.tokens + piece.tokens
                )
            else:
                merged.append(piece)
        return merged


def _inner_units(node: Node) -> list[Node]:
    """Return the nodes that are natural split points inside ``node``."""
    inner = node
    while inner.type in _WRAPPERS and inner.child_by_field_name(_WRAPPERS[inner.type]):
        inner = inner.child_by_field_name(_WRAPPERS[inner.type])
    if inner.type in ("module", "program"):
        return list(inner.children)
    body = inner.child_by_field_name("body")
    if body is None and inner.type == "lexical_declaration":
        declarator = inner.named_children[0] if inner.named_children else None
        value = declarator.child_by_field_name("value") if declarator else None
        body = value.child_by_field_name("body") if value else None
    if body is not None and body.named_child_count > 0:
        return list(body.named_children)
    return list(node.named_children) if node.named_child_count > 1 else []


def _unit_spans(children: list[Node], first: int, last: int) -> list[tuple[Node, int, int]]:
    """Return (node, first line, last line) per unit, covering [first, last] contiguously.

    Lines before a unit (comments, decorators, a header) join it; units that share a
    line are fused into the earlier one.
    """
    spans: list[tuple[Node, int, int]] = []
    for child in children:
        start = max(child.start_point.row, first)
        end = min(_last_row(child), last)
        if spans and start <= spans[-1][2]:
            node, lo, hi = spans[-1]
            spans[-1] = (node, lo, max(hi, end))
            continue
        spans.append((child, start, end))
    if not spans:
        return []
    stitched = []
    lo = first
    for index, (node, _start, end) in enumerate(spans):
        hi = last if index == len(spans) - 1 else max(end, lo)
        hi = min(hi, spans[index + 1][1] - 1) if index + 1 < len(spans) else hi
        stitched.append((node, lo, hi))
        lo = hi + 1
    return [s for s in stitched if s[1] <= s[2]]


def _last_row(node: Node) -> int:
    row, column = node.end_point
    return row - 1 if column == 0 and row > node.start_point.row else row


def _describe(
    node: Node, parent_kind: str, parent_name: str | None
) -> tuple[str | None, str | None]:
    """Return (kind, qualified name) when ``node`` is a definition, else (None, None)."""
    inner = node
    while inner.type in _WRAPPERS and inner.child_by_field_name(_WRAPPERS[inner.type]):
        inner = inner.child_by_field_name(_WRAPPERS[inner.type])
    kind = DEFINITION_NODES.get(inner.type)
    if kind is None:
        return None, None
    name_node = inner.child_by_field_name("name")
    name = name_node.text.decode("utf-8", "replace") if name_node is not None else None
    if kind == "function" and parent_kind == "class":
        kind = "method"
    qualified = f"{parent_name}.{name}" if parent_name and name else name
    return kind, qualified


def _to_chunks(
    repo: str, uri: str, lang: str, lines: list[str], pieces: list[_Piece], final_newline: bool
) -> list[Chunk]:
    line_bytes = [len(line.encode("utf-8")) + 1 for line in lines]
    offsets = [0]
    for size in line_bytes:
        offsets.append(offsets[-1] + size)
    chunks: list[Chunk] = []
    for piece in pieces:
        if piece.chars is None:
            content = "\n".join(lines[piece.first : piece.last + 1]) + "\n"
            start_byte = offsets[piece.first]
            end_byte = offsets[piece.last + 1]
            if piece.last == len(lines) - 1 and not final_newline:
                content, end_byte = content[:-1], end_byte - 1
        else:
            line = lines[piece.first]
            lo, hi = piece.chars
            content = line[lo:hi]
            if hi == len(line) and (piece.first < len(lines) - 1 or final_newline):
                content += "\n"  # the last window of a line keeps its line break
            start_byte = offsets[piece.first] + len(line[:lo].encode("utf-8"))
            end_byte = start_byte + len(content.encode("utf-8"))
        chunks.append(
            Chunk(
                id=chunk_id(repo, uri, start_byte, end_byte),
                uri=uri,
                start_line=piece.first + 1,
                end_line=piece.last + 1,
                start_byte=start_byte,
                end_byte=end_byte,
                content=content,
                lang=lang,
                kind=piece.kind,
                name=piece.name,
            )
        )
    return chunks
