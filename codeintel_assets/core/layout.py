"""Every artifact path, in one place. Nothing else joins artifact paths.

``ArtifactLayout`` names the files of one set of artifacts relative to a root: the
working build area of a repository (``data/<repo>/``) or one published version
(``data/<repo>/versions/<build_version>/``) — both use the same relative layout,
so the catalog of a version points at that version's own files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from codeintel_assets.core.errors import RepositoryPathError

BM25_IDS_FILE = "unit_ids.npy"  # inside bm25/: row → unit id, the folder's completeness marker

DATA_ENV = "CODEINTEL_DATA"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_INDEX_NAME = "chunks"


def data_root() -> Path:
    """Return the data root: ``$CODEINTEL_DATA`` or ``<project>/data``, absolute.

    Raises ``RepositoryPathError`` when it exists and is not a directory.
    """
    configured = os.environ.get(DATA_ENV)
    root = Path(configured).expanduser().resolve() if configured else PROJECT_ROOT / "data"
    if root.exists() and not root.is_dir():
        raise RepositoryPathError(f"data root {root} (${DATA_ENV}) is not a directory")
    return root


def model_exports_dir() -> Path:
    """Return where local exports of embedding models (ONNX files) are kept: shared by
    every repository of the data root, since they depend on the weights alone."""
    return data_root() / "cache" / "models"


def audit_beside(index_path: Path) -> Path:
    """Return the audit sidecar of a FAISS index file: ``<name>.audit.json`` beside it."""
    return index_path.with_name(f"{index_path.stem}.audit.json")


@dataclass(frozen=True)
class ArtifactLayout:
    """The artifact files under one root (a build area or a published version)."""

    root: Path

    # -- source -------------------------------------------------------------------
    @property
    def repo_manifest(self) -> Path:
        return self.root / "manifest" / "repo_manifest.parquet"

    @property
    def manifest_skips(self) -> Path:
        return self.root / "manifest" / "skipped.parquet"

    # -- structure ----------------------------------------------------------------
    @property
    def scip_index(self) -> Path:
        return self.root / "scip" / "index.scip"

    @property
    def scip_state(self) -> Path:
        """What ``index.scip`` was made from (file hashes, environment), for incremental SCIP."""
        return self.root / "scip" / "scip_state.json"

    @property
    def scip_index_json(self) -> Path:
        """An ingested ``scip print --json`` index (kept as given; we write no protobuf)."""
        return self.root / "scip" / "index.scip.json"

    @property
    def scip_occurrences(self) -> Path:
        return self.root / "scip" / "scip_occurrences.parquet"

    @property
    def scip_symbols(self) -> Path:
        return self.root / "scip" / "scip_symbols.parquet"

    @property
    def ast_nodes(self) -> Path:
        return self.root / "ast" / "ast_nodes.parquet"

    @property
    def cst_nodes(self) -> Path:
        return self.root / "cst" / "cst_nodes.parquet"

    @property
    def modules_parquet(self) -> Path:
        return self.root / "modules" / "modules.parquet"

    @property
    def modules_jsonl(self) -> Path:
        return self.root / "modules" / "modules.jsonl"

    @property
    def module_files(self) -> Path:
        """What the modules table is made from, per file (kept for per-file reuse)."""
        return self.root / "modules" / "module_files.parquet"

    @property
    def symbol_edges(self) -> Path:
        return self.root / "symbol_graph" / "symbol_edges.parquet"

    @property
    def symbol_graph_json(self) -> Path:
        return self.root / "symbol_graph" / "symbol_graph.json"

    # -- retrieval ----------------------------------------------------------------
    @property
    def chunks_dir(self) -> Path:
        return self.root / "vectors" / "chunks"

    @property
    def chunks(self) -> Path:
        return self.chunks_dir / "chunks.parquet"

    @property
    def chunks_glob(self) -> str:
        return str(self.chunks_dir / "*.parquet")

    @property
    def chunk_vectors(self) -> Path:
        """The chunks' vectors as a raw matrix for the build's own later stages
        (``core.vector_file``; not published: the table's column is the artifact)."""
        return self.root / "vectors" / "chunk_vectors.npy"

    @property
    def node_to_chunk(self) -> Path:
        return self.root / "vectors" / "node_to_chunk.parquet"

    def faiss_index(self, index_name: str = DEFAULT_INDEX_NAME) -> Path:
        return self.root / "faiss" / f"{index_name}.faiss"

    def faiss_audit(self, index_name: str = DEFAULT_INDEX_NAME) -> Path:
        return audit_beside(self.faiss_index(index_name))

    @property
    def faiss_idmap(self) -> Path:
        return self.root / "faiss" / "faiss_idmap.parquet"

    @property
    def faiss_tuning_queries(self) -> Path:
        """The query vectors an IVF index was tuned with, kept so that an update re-measures
        recall without the model (build area only; never published)."""
        return self.root / "faiss" / "tuning_queries.npy"

    @property
    def faiss_tuning_exact(self) -> Path:
        """The exact top lists of the tuning queries over the index's vectors, kept so that
        an update re-measures recall without searching every vector (``tuning.ExactCache``;
        build area only; never published)."""
        return self.root / "faiss" / "tuning_exact.npz"

    @property
    def bm25_dir(self) -> Path:
        return self.root / "bm25"

    @property
    def bm25_ids(self) -> Path:
        """The unit-id file the BM25 folder always holds (its completeness marker)."""
        return self.bm25_dir / BM25_IDS_FILE

    @property
    def units_dir(self) -> Path:
        return self.root / "units"

    @property
    def units(self) -> Path:
        """Every unit search ranks (``core.units``)."""
        return self.units_dir / "units.parquet"

    @property
    def chunk_units(self) -> Path:
        """Each chunk's innermost unit."""
        return self.units_dir / "chunk_units.parquet"

    # -- per-file reuse (build area only; never published) --------------------------
    def file_ledger(self, stage: str) -> Path:
        """The file ledger of a per-file stage (``core.reuse``)."""
        return self.root / "ledgers" / f"{stage}.parquet"

    @property
    def scip_occurrences_ledger(self) -> Path:
        """Per SCIP document: the signature of its bytes and its file's (``core.reuse``)."""
        return self.file_ledger("scip_occurrences")

    @property
    def ast_ledger(self) -> Path:
        return self.file_ledger("ast_nodes")

    @property
    def cst_ledger(self) -> Path:
        return self.file_ledger("cst_nodes")

    @property
    def chunks_ledger(self) -> Path:
        return self.file_ledger("chunks")

    @property
    def units_ledger(self) -> Path:
        return self.file_ledger("units")

    @property
    def modules_ledger(self) -> Path:
        return self.file_ledger("modules")

    @property
    def syntax_sites(self) -> Path:
        """Call sites and import lines of each Python file (``symbol_edges``' per-file part)."""
        return self.root / "ledgers" / "syntax_sites.parquet"

    @property
    def symbol_edges_ledger(self) -> Path:
        """Per Python file: the signature of the bytes its call sites were parsed from."""
        return self.file_ledger("symbol_edges")

    @property
    def file_edges(self) -> Path:
        """Reference, call and import edges of each file (``symbol_edges``' per-file part)."""
        return self.root / "ledgers" / "file_edges.parquet"

    @property
    def file_edges_ledger(self) -> Path:
        """Per file: the signature of its SCIP document and its call sites and import lines."""
        return self.root / "ledgers" / "file_edges_ledger.parquet"

    # -- catalog and evaluation ---------------------------------------------------
    @property
    def catalog(self) -> Path:
        return self.root / "db" / "codeintel.duckdb"

    @property
    def eval_queries(self) -> Path:
        return self.root / "eval" / "queries.jsonl"

    @property
    def eval_pool(self) -> Path:
        return self.root / "eval" / "last_eval_pool.parquet"

    @property
    def eval_report(self) -> Path:
        return self.root / "eval" / "report.md"

    @property
    def eval_plot(self) -> Path:
        return self.root / "eval" / "report.png"

    @property
    def version_manifest(self) -> Path:
        return self.root / "manifest.json"


@dataclass(frozen=True)
class RepoLayout:
    """All folders of one repository partition under the data root."""

    data_root: Path
    name: str

    @property
    def repo_dir(self) -> Path:
        return self.data_root / self.name

    @property
    def build(self) -> ArtifactLayout:
        """The working build area the assets write into."""
        return ArtifactLayout(self.repo_dir)

    @property
    def stamps_dir(self) -> Path:
        return self.repo_dir / "stamps"

    def stamp(self, stage: str) -> Path:
        return self.stamps_dir / f"{stage}.json"

    @property
    def proofs_dir(self) -> Path:
        """Proofs of passed checks, keyed by the checksums of what they read (``validation``)."""
        return self.repo_dir / "proofs"

    @property
    def embedding_cache_dir(self) -> Path:
        return self.repo_dir / "cache" / "embeddings"

    @property
    def token_cache(self) -> Path:
        """BM25 tokens of the last build's texts, by content hash (``lexical.TokenCache``)."""
        return self.repo_dir / "cache" / "tokens.arrow"

    @property
    def heldout_token_cache(self) -> Path:
        """BM25 tokens of the held-out evaluation's stripped texts (``core.heldout``)."""
        return self.repo_dir / "cache" / "heldout_tokens.arrow"

    @property
    def stripped_cache(self) -> Path:
        """The held-out evaluation's stripped files, by content hash (``core.heldout``)."""
        return self.repo_dir / "cache" / "heldout_stripped.parquet"

    @property
    def eval_exact_cache(self) -> Path:
        """The evaluation queries' exact top lists over the chunk vectors
        (``tuning.ExactCache``)."""
        return self.repo_dir / "cache" / "eval_exact.npz"

    @property
    def versions_dir(self) -> Path:
        return self.repo_dir / "versions"

    def version(self, build_version: str) -> ArtifactLayout:
        return ArtifactLayout(self.versions_dir / build_version)

    @property
    def current_pointer(self) -> Path:
        """Symlink ``current`` -> ``versions/<build_version>``, flipped atomically."""
        return self.repo_dir / "current"

    @property
    def staged_pointer(self) -> Path:
        """``staged.json``: the version ``indexctl stage`` left for ``indexctl publish``."""
        return self.repo_dir / "staged.json"

    @property
    def last_build(self) -> Path:
        """``last_build.json``: what the last ``indexctl build`` did (run id, stages run)."""
        return self.repo_dir / "last_build.json"

    @property
    def publish_history(self) -> Path:
        return self.repo_dir / "versions" / "history.json"

    @property
    def locks_dir(self) -> Path:
        return self.repo_dir / "locks"

    def stage_lock(self, stage: str) -> Path:
        """The lock a stage holds while it decides and writes (``core.stamps.run_stage``)."""
        return self.locks_dir / f"stage.{stage}.lock"


def registry_path(root: Path | None = None) -> Path:
    """Return the repository registry file under the data root."""
    return (root or data_root()) / "repos.json"


def registry_lock_path(root: Path) -> Path:
    """Return the lock file that serializes changes of the registry under ``root``."""
    # A dot-file: repository names start with a letter or digit, so no folder collides.
    return root / ".repos.json.lock"
