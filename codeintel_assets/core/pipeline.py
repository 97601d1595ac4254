"""The build stages of one repository, each behind its checksum gate.

One function per asset: it fingerprints its inputs, runs the domain code when
something changed, writes its artifacts atomically and returns a ``StageResult``
(ran or skipped, data version, metadata). The Dagster assets and the CLI call
these; nothing here knows Dagster.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pyarrow.parquet as pq

from codeintel_assets.core import faiss_store, lifecycle, validation
from codeintel_assets.core.catalog import build_catalog
from codeintel_assets.core.checksums import write_json_atomic, xxh64_file, xxh64_json
from codeintel_assets.core.chunk_table import build_chunk_table, chunk_repository
from codeintel_assets.core.embedding import EmbedderSpec, EmbeddingCache, load_embedder
from codeintel_assets.core.layout import DEFAULT_INDEX_NAME, RepoLayout, data_root
from codeintel_assets.core.manifest import build_manifest
from codeintel_assets.core.registry import RepoConfig
from codeintel_assets.core.schemas import (
    FAISS_IDMAP,
    MANIFEST_SKIPS,
    REPO_MANIFEST,
    write_parquet,
)
from codeintel_assets.core.stamps import (
    StageOutput,
    StageResult,
    fingerprint,
    run_stage,
    upstream_version,
)


@dataclass(frozen=True)
class BuildContext:
    """Everything a stage needs: the repository, where its data lives, the embedder."""

    repo: RepoConfig
    embedder: EmbedderSpec
    root: Path | None = None
    faiss_flat_max: int = faiss_store.FLAT_MAX_VECTORS
    embedding_cache_entries: int = 500_000
    retention: int = lifecycle.DEFAULT_RETENTION

    @property
    def layout(self) -> RepoLayout:
        return RepoLayout(self.root or data_root(), self.repo.name)


def stage_repo_manifest(ctx: BuildContext) -> StageResult:
    """Select the repository's files; the data version is the manifest checksum."""
    layout = ctx.layout
    result = build_manifest(
        ctx.repo.root, ctx.repo.include, ctx.repo.exclude, ctx.repo.max_file_bytes
    )
    # The work tree is the input: fingerprint the selection itself so unchanged trees skip.
    config = {
        "include": ctx.repo.include,
        "exclude": ctx.repo.exclude,
        "max": ctx.repo.max_file_bytes,
        "manifest": result.checksum,
        "skips": result.skips.to_pylist(),
    }
    outputs = [layout.build.repo_manifest, layout.build.repo_manifest.with_name("skipped.parquet")]

    def build() -> StageOutput:
        write_parquet(result.files, outputs[0], REPO_MANIFEST)
        write_parquet(result.skips, outputs[1], MANIFEST_SKIPS)
        sizes = result.files.column("size_bytes").to_pylist()
        langs: dict[str, int] = {}
        for lang in result.files.column("lang").to_pylist():
            langs[lang] = langs.get(lang, 0) + 1
        return StageOutput(
            result.checksum,
            {
                "files": result.files.num_rows,
                "bytes": sum(sizes),
                "skipped": result.skips.num_rows,
                "skip_counts": result.skip_counts,
                "skipped_examples": result.skips.slice(0, 20).to_pylist(),
                "languages": langs,
                "git_commit": result.git_commit,
                "path": str(outputs[0]),
            },
        )

    return run_stage(
        layout, "repo_manifest", fingerprint("repo_manifest", {}, config), outputs, build
    )


def stage_chunks(ctx: BuildContext) -> StageResult:
    """Chunk every manifest file and embed the chunks (through the embedding cache)."""
    layout = ctx.layout
    target = layout.build.chunks
    up = {"repo_manifest": upstream_version(layout, "repo_manifest")}

    def build() -> StageOutput:
        embedder = load_embedder(ctx.embedder)
        manifest = pq.read_table(layout.build.repo_manifest)
        chunks, stats = chunk_repository(ctx.repo.name, ctx.repo.root, manifest, embedder)
        cache_store = EmbeddingCache(
            layout.embedding_cache_dir, embedder.model_id, embedder.dim, ctx.embedding_cache_entries
        )
        table, version = build_chunk_table(chunks, embedder, cache_store, stats)
        write_parquet(table, target)
        cache_store.save()
        return StageOutput(
            version,
            {
                "chunks": stats.chunks,
                "files": stats.files,
                "embedded": stats.embedded,
                "from_cache": stats.from_cache,
                "over_budget": stats.over_budget,
                "changed_since_manifest": stats.changed_since_manifest,
                "by_kind": dict(stats.by_kind),
                "model_id": embedder.model_id,
                "dim": embedder.dim,
                "max_tokens": embedder.max_tokens,
                "bytes": target.stat().st_size,
                "path": str(target),
            },
        )

    config = {"embedder": ctx.embedder.describe(), "repo": ctx.repo.name}
    return run_stage(layout, "chunks", fingerprint("chunks", up, config), [target], build)


def stage_faiss_index(ctx: BuildContext) -> StageResult:
    """Build the FAISS index over the chunk embeddings, keyed by chunk id; write the audit."""
    layout = ctx.layout
    index_path = layout.build.faiss_index()
    audit_path = layout.build.faiss_audit()
    up = {"chunks": upstream_version(layout, "chunks")}

    def build() -> StageOutput:
        table = pq.read_table(layout.build.chunks, columns=["id", "embedding"])
        ids = table.column("id").to_numpy()
        dim = table.schema.field("embedding").type.list_size
        vectors = table.column("embedding").combine_chunks().flatten().to_numpy()
        vectors = vectors.reshape(len(ids), dim)
        factory = faiss_store.choose_factory(len(ids), ctx.faiss_flat_max)
        index = faiss_store.build_index(ids, vectors, factory)
        knobs = "nprobe=16" if factory.startswith("IVF") else ""
        faiss_store.set_search_parameters(index, knobs)
        faiss_store.write_index(index, index_path)
        checksum = xxh64_file(index_path)
        audit = {
            "index_name": DEFAULT_INDEX_NAME,
            "factory": factory,
            "knobs": knobs,
            "metric": "inner_product",
            "dim": int(dim),
            "ntotal": int(index.ntotal),
            "build_version": up["chunks"],
            "built_at": datetime.now(UTC).isoformat(),
            "index_xxh64": checksum,
            "chunks_xxh64": xxh64_file(layout.build.chunks),
            "faiss_version": faiss.__version__,
        }
        write_json_atomic(audit_path, audit)
        return StageOutput(
            checksum, {**audit, "bytes": index_path.stat().st_size, "path": str(index_path)}
        )

    config = {"flat_max": ctx.faiss_flat_max}
    return run_stage(
        layout,
        "faiss_index",
        fingerprint("faiss_index", up, config),
        [index_path, audit_path],
        build,
    )


def stage_faiss_idmap(ctx: BuildContext) -> StageResult:
    """Export the index's row → chunk id map to ``faiss/faiss_idmap.parquet``."""
    layout = ctx.layout
    target = layout.build.faiss_idmap
    up = {"faiss_index": upstream_version(layout, "faiss_index")}

    def build() -> StageOutput:
        index = faiss_store.read_index(layout.build.faiss_index())
        audit = json.loads(layout.build.faiss_audit().read_text(encoding="utf-8"))
        table = faiss_store.idmap_table(
            index,
            audit["index_name"],
            audit["build_version"],
            datetime.fromisoformat(audit["built_at"]),
        )
        write_parquet(table, target, FAISS_IDMAP)
        ids = table.column("faiss_id").to_numpy()
        version = xxh64_json([audit["index_name"], audit["build_version"], ids.tobytes().hex()])
        return StageOutput(
            version, {"rows": table.num_rows, "path": str(target), "bytes": target.stat().st_size}
        )

    return run_stage(layout, "faiss_idmap", fingerprint("faiss_idmap", up, {}), [target], build)


def stage_duckdb_catalog(ctx: BuildContext, upstream_stages: list[str]) -> StageResult:
    """Build the DuckDB catalog of the working build area (views over its Parquet)."""
    layout = ctx.layout
    up = {stage: upstream_version(layout, stage) for stage in upstream_stages}

    def build() -> StageOutput:
        status = build_catalog(layout.build)
        facts = status.to_dict()
        return StageOutput(
            xxh64_json(facts.get("checksums", facts)),
            {**facts, "markdown": status.to_markdown(), "path": str(layout.build.catalog)},
        )

    return run_stage(
        layout,
        "duckdb_catalog",
        fingerprint("duckdb_catalog", up, {}),
        [layout.build.catalog],
        build,
    )


def stage_published_index(ctx: BuildContext, upstream_stages: list[str]) -> StageResult:
    """Publish the build as a validated version and flip ``current``."""
    layout = ctx.layout
    up = {stage: upstream_version(layout, stage) for stage in upstream_stages}

    def build() -> StageOutput:
        outcome = lifecycle.publish_version(
            layout,
            build_catalog=lambda version: build_catalog(version).to_dict(),
            validate=validation.validate_version,
            extra_manifest=tool_versions(ctx),
            retention=ctx.retention,
        )
        return StageOutput(
            outcome.build_version,
            {
                "build_version": outcome.build_version,
                "previous": outcome.previous,
                "reused": outcome.reused,
                "artifacts": len(outcome.manifest["artifacts"]),
                "path": str(layout.version(outcome.build_version).root),
            },
        )

    fp = fingerprint("published_index", up, {"retention": ctx.retention})
    stamp_ok = lifecycle.current_version_or_none(layout) is not None
    return run_stage(layout, "published_index", fp, [], build, force=not stamp_ok)


def tool_versions(ctx: BuildContext) -> dict[str, Any]:
    """Return the versions of the tools and model that made a build (for the manifest)."""
    import duckdb
    import pyarrow

    chunk_stamp = ctx.layout.stamp("chunks")
    model = None
    if chunk_stamp.exists():
        model = json.loads(chunk_stamp.read_text(encoding="utf-8"))["metadata"].get("model_id")
    audit_path = ctx.layout.build.faiss_audit()
    audit = json.loads(audit_path.read_text(encoding="utf-8")) if audit_path.exists() else {}
    return {
        "embedder": {**ctx.embedder.describe(), "model_id": model},
        "faiss": {"factory": audit.get("factory"), "knobs": audit.get("knobs")},
        "tools": {
            "python": platform.python_version(),
            "faiss": faiss.__version__,
            "duckdb": duckdb.__version__,
            "pyarrow": pyarrow.__version__,
            "numpy": np.__version__,
        },
    }
