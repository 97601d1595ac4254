"""Retrieval stages: chunks with embeddings, the FAISS index and its id map, units, BM25."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq

from codeintel_assets.core import faiss_store, tuning
from codeintel_assets.core.channels import build_unit_channels, unit_documents
from codeintel_assets.core.checksums import xxh64_file, xxh64_json
from codeintel_assets.core.chunk_table import (
    build_chunk_table,
    chunk_repository,
    read_chunk_vectors,
    symbol_lookup,
)
from codeintel_assets.core.context import BuildContext
from codeintel_assets.core.embedding import EmbeddingCache, load_embedder
from codeintel_assets.core.layout import ArtifactLayout
from codeintel_assets.core.schemas import (
    CHUNK_UNITS,
    CST_NODES,
    NODE_TO_CHUNK,
    UNITS,
    file_batches,
    parquet_stream,
    write_parquet,
)
from codeintel_assets.core.stamps import (
    Stage,
    StageOutput,
    StageResult,
    run_stage,
    upstream_version,
)
from codeintel_assets.core.syntax import write_node_to_chunk
from codeintel_assets.core.units import NODE_COLUMNS, build_units, load_units


def stage_chunks(ctx: BuildContext, stage: Stage) -> StageResult:
    """`vectors/chunks/chunks.parquet`: functions, methods and classes under the model's
    token budget, with their SCIP symbols and L2-normalized embeddings (unchanged texts come
    from the embedding cache); also `vectors/node_to_chunk.parquet`."""
    layout = ctx.layout.build

    def build() -> StageOutput:
        embedder = load_embedder(ctx.embedder)
        manifest = pq.read_table(layout.repo_manifest)
        chunks, stats = chunk_repository(
            ctx.repo.name, ctx.repo.root, manifest, embedder, ctx.chunk_tokens
        )
        lookup = (
            symbol_lookup(
                pq.read_table(layout.scip_occurrences, columns=["uri", "start_line", "symbol"])
            )
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
    return run_stage(ctx, stage, config, build)


def _node_to_chunk(layout: ArtifactLayout, chunks: pa.Table) -> int:
    """Write ``node_to_chunk`` for the AST and CST nodes present; return its row count."""
    node_files = [path for path in (layout.ast_nodes, layout.cst_nodes) if path.exists()]
    with parquet_stream(layout.node_to_chunk, NODE_TO_CHUNK) as stream:
        if node_files:
            write_node_to_chunk(node_files, chunks, stream)
    return stream.rows


def stage_faiss_index(ctx: BuildContext, stage: Stage) -> StageResult:
    """`faiss/chunks.faiss` (inner product, ids = chunk ids) and its audit sidecar, with the
    knobs tuned to reach the target recall against exact search."""
    layout = ctx.layout.build
    index_path = layout.faiss_index()

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
            upstream_version(ctx.layout, "chunks"),
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
    return run_stage(ctx, stage, config, build)


def stage_faiss_idmap(ctx: BuildContext, stage: Stage) -> StageResult:
    """`faiss/faiss_idmap.parquet`: FAISS row → chunk id, with index name and build version."""
    layout = ctx.layout.build
    target = layout.faiss_idmap

    def build() -> StageOutput:
        table = faiss_store.export_idmap(layout.faiss_index(), target)
        first = table.slice(0, 1).select(["index_name", "build_version"]).to_pylist()
        ids = table.column("faiss_id").to_numpy()
        version = xxh64_json([first, ids.tobytes().hex()])
        return StageOutput(version, {"rows": table.num_rows, "path": str(target)})

    return run_stage(ctx, stage, {}, build)


def stage_units(ctx: BuildContext, stage: Stage) -> StageResult:
    """`units/units.parquet`: what search ranks and returns — every function, method,
    class... of `cst_nodes` and the module blocks around them — and
    `units/chunk_units.parquet`: each chunk's innermost unit."""
    layout = ctx.layout.build

    def build() -> StageOutput:
        columns = ["id", "uri", "lang", "start_line", "end_line", "start_byte", "end_byte"]
        columns += ["kind", "name", "content"]
        chunks = pq.read_table(layout.chunks, columns=columns)
        # File by file: a whole syntax tree as Python values would not fit at scale.
        nodes = (
            file_batches(layout.cst_nodes, NODE_COLUMNS)
            if layout.cst_nodes.exists()
            else CST_NODES.empty_table()
        )
        units, chunk_units = build_units(ctx.repo.name, nodes, chunks)
        write_parquet(units, layout.units, UNITS)
        write_parquet(chunk_units, layout.chunk_units, CHUNK_UNITS)
        kinds = Counter(units.column("kind").to_pylist())
        return StageOutput(
            xxh64_json(["units", xxh64_file(layout.units), xxh64_file(layout.chunk_units)]),
            {"units": units.num_rows, "chunks": chunk_units.num_rows, "kinds": dict(kinds)},
        )

    return run_stage(ctx, stage, {}, build)


def stage_bm25_index(ctx: BuildContext, stage: Stage) -> StageResult:
    """`bm25/`: BM25 over identifier-aware tokens (snake_case and camelCase split, the
    identifier kept too) of each unit's path, qualified name and whole text; the
    definition channel is made from the units when an index is opened."""
    layout = ctx.layout.build

    def build() -> StageOutput:
        columns = ["id", "uri", "lang", "start_line", "end_line", "content"]
        units = load_units(layout)
        texts = unit_documents(units.table, pq.read_table(layout.chunks, columns=columns))
        index = build_unit_channels(units, texts)
        index.save(layout.bm25_dir)
        return StageOutput(
            xxh64_json(["bm25", stage.upstream(ctx.layout), stage.code_version]),
            {
                "rows": len(index.bm25),
                "definitions": len(index.definitions),
                "path": str(layout.bm25_dir),
            },
        )

    return run_stage(ctx, stage, {}, build)
