"""Retrieval stages: chunks with embeddings, the FAISS index and its id map."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from codeintel_assets.core import faiss_store, lexical, tuning
from codeintel_assets.core.channels import LexicalChannels
from codeintel_assets.core.checksums import xxh64_json
from codeintel_assets.core.chunk_table import (
    build_chunk_table,
    chunk_repository,
    read_chunk_vectors,
    symbol_lookup,
)
from codeintel_assets.core.definitions import build_definitions
from codeintel_assets.core.embedding import (
    EmbeddingCache,
    embedding_text,
    load_embedder,
)
from codeintel_assets.core.layout import ArtifactLayout
from codeintel_assets.core.schemas import CST_NODES, NODE_TO_CHUNK, write_parquet
from codeintel_assets.core.stages.context import BuildContext
from codeintel_assets.core.stamps import (
    CODE_VERSIONS,
    StageOutput,
    StageResult,
    fingerprint,
    run_stage,
    upstream_version,
)
from codeintel_assets.core.syntax import node_to_chunk_table

CHUNK_INPUTS = ("repo_manifest", "scip_occurrences", "ast_nodes", "cst_nodes")


def stage_chunks(ctx: BuildContext) -> StageResult:
    """Chunk every manifest file, tag chunks with SCIP symbols, embed them (through the cache),
    and map AST/CST nodes to chunks."""
    layout = ctx.layout.build
    up = {stage: upstream_version(ctx.layout, stage) for stage in CHUNK_INPUTS}
    outputs = [layout.chunks, layout.node_to_chunk]

    def build() -> StageOutput:
        embedder = load_embedder(ctx.embedder)
        manifest = pq.read_table(layout.repo_manifest)
        chunks, stats = chunk_repository(
            ctx.repo.name, ctx.repo.root, manifest, embedder, ctx.chunk_tokens
        )
        lookup = (
            symbol_lookup(pq.read_table(layout.scip_occurrences))
            if layout.scip_occurrences.exists()
            else None
        )
        cache = EmbeddingCache(
            ctx.layout.embedding_cache_dir,
            embedder.model_id,
            embedder.dim,
            ctx.embedding_cache_entries,
        )
        table, version = build_chunk_table(chunks, embedder, cache, stats, lookup)
        write_parquet(table, layout.chunks)
        cache.save()
        node_rows = _node_to_chunk(layout, table)
        with_symbols = sum(1 for s in table.column("symbols").to_pylist() if s)
        return StageOutput(
            version,
            {
                "chunks": stats.chunks,
                "files": stats.files,
                "embedded": stats.embedded,
                "from_cache": stats.from_cache,
                "over_budget": stats.over_budget,
                "embed_seconds": round(stats.embed_seconds, 3),
                "chunks_with_symbols": with_symbols,
                "node_to_chunk_rows": node_rows,
                "changed_since_manifest": stats.changed_since_manifest,
                "by_kind": dict(stats.by_kind),
                "model_id": embedder.model_id,
                "embedder": ctx.embedder.describe(),
                "dim": embedder.dim,
                "max_tokens": embedder.max_tokens,
                "chunk_tokens": min(ctx.chunk_tokens or embedder.chunk_tokens, embedder.max_tokens),
                "path": str(layout.chunks),
            },
        )

    config = {
        "embedder": ctx.embedder.describe(),
        "repo": ctx.repo.name,
        "chunk_tokens": ctx.chunk_tokens,
    }
    return run_stage(ctx.layout, "chunks", fingerprint("chunks", up, config), outputs, build)


def _node_to_chunk(layout: ArtifactLayout, chunks: pa.Table) -> int:
    """Write ``node_to_chunk`` for the AST and CST nodes present; return its row count."""
    tables = [
        pq.read_table(path, columns=["node_id", "uri", "start_byte", "end_byte"])
        for path in (layout.ast_nodes, layout.cst_nodes)
        if path.exists()
    ]
    if tables:
        nodes = pa.concat_tables(tables)
        spans = chunks.select(["id", "uri", "start_byte", "end_byte"])
        mapping = node_to_chunk_table(nodes, spans)
    else:
        mapping = NODE_TO_CHUNK.empty_table()
    write_parquet(mapping, layout.node_to_chunk, NODE_TO_CHUNK)
    return mapping.num_rows


def stage_faiss_index(ctx: BuildContext) -> StageResult:
    """Build the FAISS index over the chunk embeddings, keyed by chunk id; write the audit."""
    layout = ctx.layout.build
    index_path = layout.faiss_index()
    audit_path = layout.faiss_audit()
    up = {"chunks": upstream_version(ctx.layout, "chunks")}

    def build() -> StageOutput:
        ids, vectors = read_chunk_vectors(layout.chunks)
        factory = faiss_store.choose_factory(len(ids), ctx.faiss_flat_max)
        index = faiss_store.build_index(ids, vectors, factory)
        audit, point = tuning.tune_and_lock(
            index,
            ids,
            vectors,
            lambda: load_embedder(ctx.embedder),
            factory,
            layout,
            up["chunks"],
            ctx.target_recall,
            ctx.recall_k,
            ctx.tune_queries,
        )
        checksum = audit["index_xxh64"]
        shown = {k: v for k, v in audit.items() if k != "sweep"}
        return StageOutput(
            checksum,
            {
                **shown,
                "sweep": point.sweep,
                "bytes": index_path.stat().st_size,
                "path": str(index_path),
            },
        )

    config = {
        "flat_max": ctx.faiss_flat_max,
        "target_recall": ctx.target_recall,
        "k": ctx.recall_k,
        "tune_queries": ctx.tune_queries,
    }
    return run_stage(
        ctx.layout,
        "faiss_index",
        fingerprint("faiss_index", up, config),
        [index_path, audit_path],
        build,
    )


def stage_faiss_idmap(ctx: BuildContext) -> StageResult:
    """Export the index's row → chunk id map to ``faiss/faiss_idmap.parquet``."""
    layout = ctx.layout.build
    target = layout.faiss_idmap
    up = {"faiss_index": upstream_version(ctx.layout, "faiss_index")}

    def build() -> StageOutput:
        table = faiss_store.export_idmap(layout.faiss_index(), target)
        first = table.slice(0, 1).select(["index_name", "build_version"]).to_pylist()
        ids = table.column("faiss_id").to_numpy()
        version = xxh64_json([first, ids.tobytes().hex()])
        return StageOutput(version, {"rows": table.num_rows, "path": str(target)})

    return run_stage(ctx.layout, "faiss_idmap", fingerprint("faiss_idmap", up, {}), [target], build)


def stage_bm25_index(ctx: BuildContext) -> StageResult:
    """BM25 over identifier-aware tokens of each chunk's path, name and code, and beside it
    the definition index: each definition in ``cst_nodes`` → the chunk holding its start
    (``bm25/``)."""
    layout = ctx.layout.build
    up = {stage: upstream_version(ctx.layout, stage) for stage in ("chunks", "cst_nodes")}

    def build() -> StageOutput:
        columns = ["id", "uri", "name", "start_byte", "end_byte", "content"]
        table = pq.read_table(layout.chunks, columns=columns)
        texts = [
            embedding_text(uri, name, content)
            for uri, name, content in zip(
                table.column("uri").to_pylist(),
                table.column("name").to_pylist(),
                table.column("content").to_pylist(),
                strict=True,
            )
        ]
        nodes = (
            pq.read_table(layout.cst_nodes, columns=["uri", "kind", "start_byte", "name"])
            if layout.cst_nodes.exists()
            else CST_NODES.empty_table()
        )
        definitions = build_definitions(nodes, table)
        bm25 = lexical.build_bm25(table.column("id").to_numpy(), texts)
        index = LexicalChannels(bm25, definitions)
        index.save(layout.bm25_dir)
        return StageOutput(
            xxh64_json(["bm25", up, CODE_VERSIONS["bm25_index"]]),
            {"rows": len(index), "definitions": len(definitions), "path": str(layout.bm25_dir)},
        )

    return run_stage(
        ctx.layout,
        "bm25_index",
        fingerprint("bm25_index", up, {}),
        [layout.bm25_ids, layout.bm25_definitions],
        build,
    )
