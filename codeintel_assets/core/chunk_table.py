"""The chunks table: every manifest file chunked, symbol-tagged and embedded.

Chunk boundaries come from ``chunking.chunk_file``; vectors come from the
embedding cache, which embeds only texts it has not seen for this model. The build
writes the table's vectors a second time as a raw matrix beside it
(``core.vector_file``), which its later stages read instead of decoding the column.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from codeintel_assets.core import vector_file
from codeintel_assets.core.checksums import atomic_path, xxh64_bytes, xxh64_file
from codeintel_assets.core.chunking import Chunk, chunk_file
from codeintel_assets.core.embedding import (
    SPECIAL_TOKENS,
    Embedder,
    EmbeddingCache,
    embedding_matrix,
    embedding_text,
    text_token_limit,
)
from codeintel_assets.core.schemas import chunk_schema, parquet_options

_SYMBOLS = pa.list_(pa.string())
# Tokens kept free in the budget for the header (path and qualified name) of each chunk.
NAME_RESERVE_TOKENS = 16


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


def chunk_symbols(chunks: pa.Table, occurrences: pa.Table) -> pa.Array:
    """Return each chunk's SCIP symbols, in the chunks' row order (``list<string>``): the
    symbols that occur in its file on its lines (1-based, inclusive; occurrence lines
    are 0-based), local symbols left out, ordered by the line of their first occurrence
    in the chunk, then by name.

    ``chunks`` needs ``uri, start_line, end_line``; ``occurrences`` ``uri, start_line,
    symbol`` (strings or dictionaries). Everything stays Arrow and NumPy arrays: files and
    symbols become their ranks in sorted order (a sort of the distinct values, not of
    every row's strings), the occurrences are sorted once by (file, line, symbol) as
    numbers, each chunk's rows found by a binary search on (file, line), and each symbol
    kept at its first row in the chunk — no Python value per chunk or per occurrence.
    """
    if occurrences.num_rows == 0:
        return pa.array([[] for _ in range(chunks.num_rows)], _SYMBOLS)
    uri_codes, files = _codes(occurrences.column("uri"))
    symbol_codes, symbols = _codes(occurrences.column("symbol"))
    local = pc.starts_with(symbols, "local ").fill_null(False).to_numpy(zero_copy_only=False)
    keep = ~local[symbol_codes]
    file_rank, symbol_rank = _ranks(files), _ranks(symbols)
    file_of = file_rank[uri_codes[keep]]
    line = occurrences.column("start_line").to_numpy().astype(np.int64)[keep] + 1
    symbol_codes = symbol_codes[keep]
    order = np.lexsort((symbol_rank[symbol_codes], line, file_of))
    # (file rank, line) as one sortable key: the file in the high 32 bits.
    keys = (file_of[order] << 32) | line[order]
    codes = symbol_codes[order]
    in_order = files.take(pa.array(np.argsort(file_rank)))
    chunk_file = pc.index_in(chunks.column("uri"), in_order).fill_null(-1).to_numpy()
    base = chunk_file.astype(np.int64) << 32
    first = np.searchsorted(keys, base | chunks.column("start_line").to_numpy(), "left")
    last = np.searchsorted(keys, base | chunks.column("end_line").to_numpy(), "right")
    counts = np.where(chunk_file >= 0, np.maximum(last - first, 0), 0)
    # Every (chunk, occurrence row) pair, chunk by chunk in row order.
    chunk_of = np.repeat(np.arange(chunks.num_rows), counts)
    rows = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    rows += np.repeat(first, counts)
    picked = codes[rows]
    # A symbol's first row in its chunk: the smallest position of each (chunk, symbol).
    _, kept = np.unique(chunk_of * len(symbols) + picked, return_index=True)
    kept.sort()
    offsets = np.zeros(chunks.num_rows + 1, dtype=np.int32)
    np.cumsum(np.bincount(chunk_of[kept], minlength=chunks.num_rows), out=offsets[1:])
    values = symbols.take(pa.array(picked[kept]))
    return pa.ListArray.from_arrays(pa.array(offsets), values).cast(_SYMBOLS)


def _codes(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Return (each row's code, the distinct values) of a string or dictionary column."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not pa.types.is_dictionary(array.type):
        array = array.dictionary_encode()
    return array.indices.to_numpy(zero_copy_only=False).astype(np.int64), array.dictionary


def _ranks(values: pa.Array) -> np.ndarray:
    """Return each value's rank in sorted (UTF-8 byte) order."""
    rank = np.empty(len(values), dtype=np.int64)
    rank[pc.array_sort_indices(values).to_numpy()] = np.arange(len(values))
    return rank


def with_symbols(table: pa.Table, occurrences: pa.Table) -> pa.Table:
    """Return the chunks table with its ``symbols`` column filled from ``occurrences``
    (``chunk_symbols``: the SCIP index spans the repository, so every chunk's symbols are
    looked up again)."""
    column = table.schema.get_field_index("symbols")
    return table.set_column(column, table.schema.field(column), chunk_symbols(table, occurrences))


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


def write_chunks(table: pa.Table, path: Path, vectors: Path) -> None:
    """Write the chunks ``table`` to ``path`` atomically (``schemas.write_parquet``'s
    options) and its vectors as the matrix at ``vectors``, bound to the new file."""
    matrix = embedding_matrix(table)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, **parquet_options(table.schema))
        # Bound to the new file before it replaces the old one: a crash in between leaves
        # a matrix that names no table there, which no reader takes.
        vector_file.write_matrix(matrix, vectors, xxh64_file(tmp))


def read_chunks(
    path: Path, columns: list[str] | None = None, vectors: Path | None = None
) -> pa.Table:
    """Return the chunks table at ``path`` (``columns`` of it), its ``embedding`` column
    from the matrix at ``vectors`` when that matrix belongs to this file (the same table
    as reading the column; otherwise the column is read)."""
    schema = pq.read_schema(path)
    names = columns or schema.names
    matrix = None
    if vectors is not None and "embedding" in names:
        matrix = vector_file.read_matrix(vectors, path)
    if matrix is None:
        return pq.read_table(path, columns=columns)
    table = pq.read_table(path, columns=[n for n in names if n != "embedding"])
    field = schema.field("embedding")
    column = pa.FixedSizeListArray.from_arrays(
        pa.array(matrix.reshape(-1), pa.float32()), type=field.type
    )
    return table.add_column(names.index("embedding"), field, column)


def read_chunk_vectors(path: Path, vectors: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return (chunk ids, embedding matrix) of the chunks table at ``path``, row for row
    (from the matrix at ``vectors`` when it belongs to this file)."""
    matrix = vector_file.read_matrix(vectors, path) if vectors is not None else None
    if matrix is not None:
        return pq.read_table(path, columns=["id"]).column("id").to_numpy(), matrix
    table = pq.read_table(path, columns=["id", "embedding"])
    return table.column("id").to_numpy(), embedding_matrix(table)
