"""The chunks table: every manifest file chunked, symbol-tagged and embedded.

Chunk boundaries come from ``chunking.chunk_file``; vectors come from the
embedding cache, which embeds only texts it has not seen for this model.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from codeintel_assets.core.checksums import xxh64_bytes
from codeintel_assets.core.chunking import Chunk, chunk_file
from codeintel_assets.core.embedding import (
    SPECIAL_TOKENS,
    Embedder,
    EmbeddingCache,
    embedding_matrix,
    embedding_text,
    text_token_limit,
)
from codeintel_assets.core.schemas import chunk_schema

# Tokens kept free in the budget for the header (path and qualified name) of each chunk.
NAME_RESERVE_TOKENS = 16

SymbolLookup = Callable[[str, int, int], list[str]]


@dataclass
class ChunkBuildStats:
    files: int = 0
    chunks: int = 0
    embedded: int = 0
    from_cache: int = 0
    over_budget: int = 0  # embedded texts longer than the model reads (should stay 0)
    changed_files: list[str] = field(default_factory=list)  # bytes no longer the manifest's
    embed_seconds: float = 0.0
    by_kind: Counter = field(default_factory=Counter)


def symbol_lookup(occurrences: pa.Table) -> SymbolLookup:
    """Return a function giving the SCIP symbols defined or referenced in a file's lines
    ``(uri, start_line, end_line)`` (1-based, inclusive).

    Occurrence lines are 0-based (SCIP), chunk lines 1-based; local symbols are left out.
    Symbols are ordered by the line of their first occurrence. ``occurrences`` needs
    ``uri, start_line, symbol``; they stay Arrow columns, sorted once, and only the rows
    of the asked file become Python values (a repository's occurrences would not fit).
    """
    table = occurrences.select(["uri", "start_line", "symbol"])
    table = table.filter(pc.invert(pc.starts_with(table.column("symbol"), "local ")))
    table = table.sort_by(
        [("uri", "ascending"), ("start_line", "ascending"), ("symbol", "ascending")]
    )
    uris = table.column("uri")
    runs = pc.value_counts(uris)  # in order of first appearance: the sorted order
    counts = runs.field("counts").to_numpy()
    starts = (np.cumsum(counts) - counts).tolist()
    spans = {
        uri: (start, count)
        for uri, start, count in zip(
            runs.field("values").to_pylist(), starts, counts.tolist(), strict=True
        )
    }
    lines = table.column("start_line").to_numpy() + 1
    symbols = table.column("symbol")

    def lookup(uri: str, start_line: int, end_line: int) -> list[str]:
        start, count = spans.get(uri, (0, 0))
        file_lines = lines[start : start + count]
        lo = int(np.searchsorted(file_lines, start_line, side="left"))
        hi = int(np.searchsorted(file_lines, end_line, side="right"))
        return list(dict.fromkeys(symbols.slice(start + lo, hi - lo).to_pylist()))

    return lookup


def with_symbols(table: pa.Table, symbols_for: SymbolLookup) -> pa.Table:
    """Return the chunks table with its ``symbols`` column filled by ``symbols_for`` (the
    SCIP index spans the repository, so every chunk's symbols are looked up again)."""
    symbols = [
        symbols_for(uri, first, last)
        for uri, first, last in zip(
            table["uri"].to_pylist(),
            table["start_line"].to_pylist(),
            table["end_line"].to_pylist(),
            strict=True,
        )
    ]
    column = table.schema.get_field_index("symbols")
    return table.set_column(
        column, table.schema.field(column), pa.array(symbols, pa.list_(pa.string()))
    )


def chunk_repository(
    repo: str, root: Path, manifest: pa.Table, embedder: Embedder, max_tokens: int | None = None
) -> tuple[list[Chunk], ChunkBuildStats]:
    """Chunk every file of the manifest; return chunks ordered by (uri, start_byte).

    A chunk's embedded text fits ``max_tokens``: by default the length the model was
    trained on (``embedder.chunk_tokens``), never more than the model reads.
    """
    limit = min(max_tokens or embedder.chunk_tokens, embedder.max_tokens)
    stats = ChunkBuildStats()
    chunks: list[Chunk] = []
    for row in manifest.select(["uri", "lang", "xxh64"]).to_pylist():
        data = (root / row["uri"]).read_bytes()
        if xxh64_bytes(data) != row["xxh64"]:
            stats.changed_files.append(row["uri"])
        text = data.decode("utf-8", errors="replace")
        header = embedder.count_tokens([row["uri"]])[0] + NAME_RESERVE_TOKENS
        budget = max(32, limit - SPECIAL_TOKENS - header)
        chunks.extend(
            chunk_file(repo, row["uri"], text, row["lang"], budget, embedder.count_tokens)
        )
        stats.files += 1
    stats.chunks = len(chunks)
    stats.by_kind.update(c.kind for c in chunks)
    return chunks, stats


def embedding_texts(chunks: list[Chunk], embedder: Embedder) -> tuple[list[str], list[int]]:
    """Return the text to embed per chunk and its token count.

    The qualified name is dropped from the header when it would push the text over
    the model's limit, so no chunk is silently truncated.
    """
    limit = text_token_limit(embedder)
    texts = [embedding_text(c.uri, c.name, c.content) for c in chunks]
    counts = embedder.count_tokens(texts)
    for i, chunk in enumerate(chunks):
        if counts[i] > limit and chunk.name:
            texts[i] = embedding_text(chunk.uri, None, chunk.content)
            counts[i] = embedder.count_tokens([texts[i]])[0]
    return texts, counts


def build_chunk_table(
    chunks: list[Chunk], embedder: Embedder, cache: EmbeddingCache, stats: ChunkBuildStats
) -> pa.Table:
    """Embed (through the cache) and return the chunks table; ``symbols`` are left empty
    (``with_symbols`` fills them)."""
    texts, counts = embedding_texts(chunks, embedder)
    stats.over_budget = sum(1 for n in counts if n > text_token_limit(embedder))
    started = time.perf_counter()
    vectors, cache_stats = cache.embed(texts, embedder)
    stats.embed_seconds = time.perf_counter() - started
    stats.embedded, stats.from_cache = cache_stats.misses, cache_stats.hits
    dim = embedder.dim
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), pa.float32())
    return pa.table(
        {
            "id": pa.array([c.id for c in chunks], pa.int64()),
            "uri": [c.uri for c in chunks],
            "start_line": pa.array([c.start_line for c in chunks], pa.int32()),
            "end_line": pa.array([c.end_line for c in chunks], pa.int32()),
            "start_byte": pa.array([c.start_byte for c in chunks], pa.int64()),
            "end_byte": pa.array([c.end_byte for c in chunks], pa.int64()),
            "preview": [c.preview for c in chunks],
            "content": [c.content for c in chunks],
            "lang": [c.lang for c in chunks],
            "content_hash": [c.content_hash for c in chunks],
            "symbols": pa.array([[] for _ in chunks], pa.list_(pa.string())),
            "kind": [c.kind for c in chunks],
            "name": [c.name for c in chunks],
            "token_count": pa.array(counts, pa.int32()),
            "embedding": pa.FixedSizeListArray.from_arrays(flat, dim),
        },
        schema=chunk_schema(dim),
    )


def read_chunk_vectors(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return (chunk ids, embedding matrix) of the chunks table at ``path``, row for row."""
    table = pq.read_table(path, columns=["id", "embedding"])
    return table.column("id").to_numpy(), embedding_matrix(table)
