"""The settings of a build: the repository, where its data lives, the embedder and the knobs.

Every stage, check and CLI command that builds or evaluates takes one ``BuildContext``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from codeintel_assets.core import faiss_store, lifecycle, tuning
from codeintel_assets.core.embedding import EmbedderSpec
from codeintel_assets.core.layout import RepoLayout, data_root
from codeintel_assets.core.registry import RepoConfig, get_repo


@dataclass(frozen=True)
class BuildContext:
    """The repository being built and the settings of the build."""

    repo: RepoConfig
    embedder: EmbedderSpec
    root: Path | None = None
    faiss_flat_max: int = faiss_store.FLAT_MAX_VECTORS
    embedding_cache_entries: int = 500_000
    retention: int = lifecycle.DEFAULT_RETENTION  # published versions kept
    scip_timeout_s: float = 1800.0
    # Longest embedded chunk text in tokens; None = what the model was trained on (128 for MiniLM).
    chunk_tokens: int | None = None
    target_recall: float = tuning.TARGET_RECALL  # ANN recall@k the build must reach
    recall_k: int = 10
    tune_queries: int = 200
    eval_queries: int = 200
    eval_k_factor: int = 2
    # Keep unchanged files' rows from the previous build (core/reuse.py); False re-processes
    # every file (the outputs are the same: benchmarks measure against it).
    reuse_files: bool = True

    @classmethod
    def for_repo(
        cls, name: str | None, root: Path | None = None, embedder: EmbedderSpec | None = None
    ) -> BuildContext:
        """Return the context of a registered repository with default settings."""
        return cls(repo=get_repo(name, root), embedder=embedder or EmbedderSpec(), root=root)

    @property
    def layout(self) -> RepoLayout:
        return RepoLayout(self.root or data_root(), self.repo.name)

    def manifest_files(
        self, languages: frozenset[str] | None = None, uris: Collection[str] | None = None
    ) -> Iterator[tuple[str, str, bytes]]:
        """Yield (uri, lang, bytes) of the manifest's files, optionally of some languages only
        and of some files (``uris``) only."""
        manifest = pq.read_table(self.layout.build.repo_manifest, columns=["uri", "lang"])
        wanted = None if uris is None else set(uris)
        for uri, lang in zip(
            manifest.column("uri").to_pylist(), manifest.column("lang").to_pylist(), strict=True
        ):
            if (languages is None or lang in languages) and (wanted is None or uri in wanted):
                yield uri, lang, (self.repo.root / uri).read_bytes()
