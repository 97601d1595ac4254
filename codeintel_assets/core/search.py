"""Searching a published index: embed the query, search FAISS, hydrate from DuckDB.

``CodeIndex.open(repo)`` reads the version ``current`` points at — FAISS index,
catalog and the embedding model recorded in its manifest — so a search never
sees a half-published build.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codeintel_assets.core import faiss_store, lifecycle
from codeintel_assets.core.catalog import CatalogReader, ChunkFilter
from codeintel_assets.core.embedding import Embedder, EmbedderSpec, load_embedder
from codeintel_assets.core.errors import CodeintelError, EmptyQueryError
from codeintel_assets.core.layout import ArtifactLayout, RepoLayout, data_root
from codeintel_assets.core.registry import get_repo

# Fetch this many candidates per requested result before filtering, then widen.
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
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "chunk_id": self.chunk_id,
            "uri": self.uri,
            "start_line": self.start_line,
            "end_line": self.end_line,
            "lang": self.lang,
            "score": self.score,
            "rank": self.rank,
            "preview": self.preview,
            "symbols": self.symbols,
            **self.extra,
        }


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
        self.catalog = CatalogReader(layout.catalog)

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
        if embedder is None:
            recorded = manifest.get("embedder", {})
            spec = EmbedderSpec(
                kind=recorded.get("kind", "sentence-transformers"),
                model_path=recorded.get("model_path"),
                dim=recorded.get("dim", 64),
            )
            embedder = load_embedder(spec)
        return cls(layout, manifest, embedder)

    @property
    def build_version(self) -> str:
        return self.manifest["build_version"]

    def search(
        self, query: str, k: int = 10, filters: ChunkFilter | None = None
    ) -> list[SearchResult]:
        """Return the ``k`` best chunks for ``query``, best first, filters applied before the cut.

        Raises ``EmptyQueryError`` for an empty query.
        """
        if not query or not query.strip():
            raise EmptyQueryError("the query is empty; give some words or code to search for")
        if k < 1:
            raise CodeintelError(f"k must be at least 1 (got {k})")
        vector = self.embedder.embed([query.strip()])
        total = self.index.ntotal
        fetch = min(total, k * OVERFETCH)
        while True:
            hits = faiss_store.search(self.index, vector, fetch)
            ranked = [
                (int(i), float(s))
                for i, s in zip(hits.ids[0], hits.scores[0], strict=True)
                if i != -1
            ]
            ids = [i for i, _ in ranked]
            kept = self.catalog.filter_ids(ids, filters) if filters else ids
            if len(kept) >= k or fetch >= total:
                break
            fetch = min(total, fetch * 4)
        scores = dict(ranked)
        rows = self.catalog.hydrate(kept[:k], join_modules=False)
        return [
            SearchResult(
                chunk_id=int(row["id"]),
                uri=row["uri"],
                start_line=int(row["start_line"]),
                end_line=int(row["end_line"]),
                lang=row["lang"],
                score=scores[int(row["id"])],
                rank=rank,
                preview=row["preview"],
                symbols=list(row.get("symbols") or []),
            )
            for rank, row in enumerate(rows, start=1)
        ]

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> CodeIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
