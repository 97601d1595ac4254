"""Searching a published index: dense (FAISS), lexical (BM25) or hybrid.

Hybrid fuses, by reciprocal rank fusion, the dense list, the BM25 list and the
definition list (the chunks that define what the query names, ``core.definitions``):
dense and lexical with structure-aware ranking.

``CodeIndex.open(repo)`` reads the version ``current`` points at — FAISS index, BM25
index, catalog and the embedding model recorded in its manifest — so a search never
sees a half-published build. Filters apply to every channel's candidates before the
final cut (over-fetch, filter, widen if needed); results are hydrated from DuckDB in
rank order with their symbols, module and, for ``explain``, each channel's rank and
score.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codeintel_assets.core import faiss_store, lifecycle
from codeintel_assets.core.catalog import HYDRATION_COLUMNS, CatalogReader, ChunkFilter
from codeintel_assets.core.channels import load_lexical_channels
from codeintel_assets.core.embedding import Embedder, EmbedderSpec, load_embedder, text_token_limit
from codeintel_assets.core.errors import CodeintelError, EmptyQueryError
from codeintel_assets.core.fusion import RRF_K, SEARCH_MODES, channel_ranks, rrf
from codeintel_assets.core.layout import ArtifactLayout, RepoLayout, data_root
from codeintel_assets.core.registry import get_repo

# Candidates fetched per channel: at least this many, or k times OVERFETCH.
MIN_CANDIDATES = 100
OVERFETCH = 4


@dataclass(frozen=True)
class SearchResult:
    chunk_id: int
    uri: str
    start_line: int
    end_line: int
    lang: str
    score: float
    rank: int
    preview: str
    symbols: list[str] = field(default_factory=list)
    module_id: str | None = None
    channels: dict[str, dict[str, float]] = field(default_factory=dict)  # {channel: rank, score}

    def to_dict(self) -> dict[str, Any]:
        return {
            "chunk_id": self.chunk_id,
            "uri": self.uri,
            "start_line": self.start_line,
            "end_line": self.end_line,
            "lang": self.lang,
            "score": self.score,
            "rank": self.rank,
            "module_id": self.module_id,
            "preview": self.preview,
            "symbols": self.symbols,
            "channels": self.channels,
        }


def recorded_embedder(manifest: dict[str, Any]) -> EmbedderSpec:
    """Return the embedder a published version was built with (queries must use the same)."""
    recorded = manifest.get("embedder", {})
    return EmbedderSpec(
        kind=recorded.get("kind", "sentence-transformers"),
        model_path=recorded.get("model_path"),
        dim=recorded.get("dim", 64),
    )


class CodeIndex:
    """A published version of one repository, ready to search."""

    def __init__(self, layout: ArtifactLayout, manifest: dict[str, Any], embedder: Embedder):
        self.layout = layout
        self.manifest = manifest
        self.embedder = embedder
        audit = json.loads(layout.faiss_audit().read_text(encoding="utf-8"))
        self.index = faiss_store.read_index(layout.faiss_index(), audit.get("knobs", ""))
        if self.index.d != embedder.dim:
            raise CodeintelError(
                f"index {layout.faiss_index()} has dimension {self.index.d} but the embedding "
                f"model has {embedder.dim}; rebuild the index with this model"
            )
        self.lexical = load_lexical_channels(layout.bm25_dir) if layout.bm25_ids.exists() else None
        self.catalog = CatalogReader(layout.catalog)
        self.notes: list[str] = []  # what the last search had to adjust (e.g. truncation)

    @classmethod
    def open(
        cls, repo: str | None = None, root: Path | None = None, embedder: Embedder | None = None
    ) -> CodeIndex:
        """Open the published version of ``repo`` (the default repository when None).

        Raises ``UnknownRepositoryError`` or ``NothingPublishedError``.
        """
        config = get_repo(repo, root)
        layout = lifecycle.current_layout(RepoLayout(root or data_root(), config.name))
        manifest = json.loads(layout.version_manifest.read_text(encoding="utf-8"))
        return cls(layout, manifest, embedder or load_embedder(recorded_embedder(manifest)))

    @property
    def build_version(self) -> str:
        return self.manifest["build_version"]

    def search(
        self,
        query: str,
        k: int = 10,
        filters: ChunkFilter | None = None,
        mode: str = "hybrid",
    ) -> list[SearchResult]:
        """Return the ``k`` best chunks for ``query``, best first.

        Raises ``EmptyQueryError`` for an empty query and ``CodeintelError`` for a bad
        ``k`` or ``mode``.
        """
        query = query.strip() if query else ""
        if not query:
            raise EmptyQueryError("the query is empty; give some words or code to search for")
        if k < 1:
            raise CodeintelError(f"k must be at least 1 (got {k})")
        if mode not in SEARCH_MODES:
            choices = ", ".join(SEARCH_MODES)
            raise CodeintelError(f"unknown search mode {mode!r}; use one of {choices}")
        self.notes = []
        if mode != "dense" and self.lexical is None:
            self.notes.append("this version has no BM25 index: searching dense only")
            mode = "dense"
        total = self.index.ntotal
        fetch = max(MIN_CANDIDATES, k * OVERFETCH)
        vector = self._embed(query) if mode != "bm25" else None
        while True:
            channels = self._candidates(query, vector, mode, fetch, filters)
            fused = self._fuse(channels, mode)
            if len(fused) >= k or fetch >= total:
                break
            fetch = min(total, fetch * 4)
        return self._hydrate(fused[:k], channels)

    def _embed(self, query: str):
        limit = text_token_limit(self.embedder)
        tokens = self.embedder.count_tokens([query])[0]
        if tokens > limit:
            self.notes.append(
                f"the query has {tokens} tokens; the model reads the first {limit}, the rest is "
                "ignored by dense search (BM25 still sees all of it)"
            )
        return self.embedder.embed([query])

    def _candidates(
        self, query: str, vector, mode: str, fetch: int, filters: ChunkFilter | None
    ) -> dict[str, list[tuple[int, float]]]:
        """Return each channel's (chunk id, score) candidates, filtered, best first."""
        channels: dict[str, list[tuple[int, float]]] = {}
        if mode in ("dense", "hybrid"):
            hits = faiss_store.search(self.index, vector, fetch)
            channels["dense"] = [
                (int(i), float(s))
                for i, s in zip(hits.ids[0], hits.scores[0], strict=True)
                if i != -1
            ]
        if mode == "bm25":
            channels["bm25"] = self.lexical.bm25.search(query, fetch)
        elif mode == "hybrid":
            channels.update(self.lexical.channels(query, fetch))
        if filters is not None:
            for name, ranked in channels.items():
                kept = set(self.catalog.filter_ids([i for i, _ in ranked], filters))
                channels[name] = [(i, s) for i, s in ranked if i in kept]
        return channels

    @staticmethod
    def _fuse(channels: dict[str, list[tuple[int, float]]], mode: str) -> list[tuple[int, float]]:
        if mode != "hybrid":
            return channels[mode]
        fused = rrf(channels, RRF_K)  # scored lists: ties share a rank
        return [(chunk_id, score) for chunk_id, score, _ in fused]

    def _hydrate(
        self, ranked: list[tuple[int, float]], channels: dict[str, list[tuple[int, float]]]
    ) -> list[SearchResult]:
        positions = {
            name: {
                chunk_id: (rank, score)
                for (chunk_id, rank), (_, score) in zip(channel_ranks(hits), hits, strict=True)
            }
            for name, hits in channels.items()
        }
        scores = dict(ranked)
        rows = self.catalog.hydrate(
            [i for i, _ in ranked], columns=(*HYDRATION_COLUMNS, "symbols"), join_modules=True
        )
        results = []
        for rank, row in enumerate(rows, start=1):
            chunk_id = int(row["id"])
            results.append(
                SearchResult(
                    chunk_id=chunk_id,
                    uri=row["uri"],
                    start_line=int(row["start_line"]),
                    end_line=int(row["end_line"]),
                    lang=row["lang"],
                    score=scores[chunk_id],
                    rank=rank,
                    preview=row["preview"],
                    symbols=list(row.get("symbols") or []),
                    module_id=row.get("module_id"),
                    channels={
                        name: {"rank": hit[0], "score": hit[1]}
                        for name, found in positions.items()
                        if (hit := found.get(chunk_id)) is not None
                    },
                )
            )
        return results

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> CodeIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
