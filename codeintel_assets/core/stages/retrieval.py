"""Retrieval stages: chunks with embeddings, the FAISS index and its id map, units, BM25."""

from __future__ import annotations

from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from codeintel_assets.core import faiss_build, faiss_store
from codeintel_assets.core.channels import unit_documents
from codeintel_assets.core.checksums import atomic_folder, table_checksum, xxh64_file, xxh64_json
from codeintel_assets.core.chunk_table import (
    build_chunk_table,
    chunk_repository,
    read_chunk_vectors,
    read_chunks,
    with_symbols,
    write_chunks,
)
from codeintel_assets.core.context import BuildContext
from codeintel_assets.core.embedding import EmbeddingCache, load_embedder, text_token_limit
from codeintel_assets.core.layout import ArtifactLayout
from codeintel_assets.core.lexical import TokenCache, build_bm25
from codeintel_assets.core.reuse import (
    FilePlan,
    combined_signatures,
    manifest_hashes,
    manifest_signatures,
    merged_in_uri_order,
    merged_rows,
    plan_files,
    stage_basis,
    upstream_ledger,
    write_ledger,
)
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
from codeintel_assets.core.syntax import (
    merge_node_to_chunk,
    node_to_chunk_table,
    write_node_to_chunk,
)
from codeintel_assets.core.units import NODE_COLUMNS, build_units, load_units

# Above this many files chunked beside reused ones, the chunks stage does not list them
# and the clean-chunking check of that build re-chunks every file.
MAX_LISTED_FILES = 1000


def stage_chunks(ctx: BuildContext, stage: Stage) -> StageResult:
    """`vectors/chunks/chunks.parquet`: functions, methods and classes under the model's
    token budget, with their SCIP symbols and L2-normalized embeddings (unchanged texts come
    from the embedding cache); also `vectors/node_to_chunk.parquet`. Unchanged files' chunks
    and node mappings come from the previous build (``core.reuse``); symbols are looked up
    again for every chunk."""
    layout = ctx.layout.build
    config = {
        "embedder": ctx.embedder.describe(),
        "repo": ctx.repo.name,
        "chunk_tokens": ctx.chunk_tokens,
    }

    def build() -> StageOutput:
        embedder = load_embedder(ctx.embedder)
        manifest = pq.read_table(layout.repo_manifest)
        plan = _chunk_plan(ctx, stage, config, manifest)
        todo = manifest.filter(pc.is_in(manifest["uri"], pa.array(plan.process, pa.string())))
        chunks, stats = chunk_repository(
            ctx.repo.name, ctx.repo.root, todo, embedder, ctx.chunk_tokens
        )
        plan.stale.update(stats.changed_files)
        cache = EmbeddingCache(
            ctx.layout.embedding_cache_dir,
            embedder.model_id,
            embedder.dim,
            ctx.embedding_cache_entries,
        )
        new = build_chunk_table(chunks, embedder, cache, stats)
        read = partial(read_chunks, vectors=layout.chunk_vectors)
        table = merged_rows(plan, layout.chunks, new, read=read)
        if layout.scip_occurrences.exists():
            columns = ["uri", "start_line", "symbol"]
            occurrences = pq.read_table(layout.scip_occurrences, columns=columns)
            table = with_symbols(table, occurrences)
        node_rows = _node_to_chunk(layout, table, new, plan)
        write_chunks(table, layout.chunks, layout.chunk_vectors)
        write_ledger(plan.ledger(), layout.chunks_ledger, plan.basis)
        cache.save()
        with_symbols_count = pc.sum(pc.greater(pc.list_value_length(table["symbols"]), 0))
        over_budget = pc.greater(table["token_count"], text_token_limit(embedder))
        return StageOutput(
            table_checksum(table),
            {
                "chunks": table.num_rows,
                "files": manifest.num_rows,
                **plan.metadata(),
                **_chunked_with_reuse(plan),
                "chunks_reused": table.num_rows - new.num_rows,
                "embedded": stats.embedded,
                "from_cache": stats.from_cache,
                "over_budget": pc.sum(over_budget.cast(pa.int64())).as_py() or 0,
                "embed_seconds": round(stats.embed_seconds, 3),
                "chunks_with_symbols": with_symbols_count.as_py() or 0,
                "node_to_chunk_rows": node_rows,
                "changed_since_manifest": len(stats.changed_files),
                "by_kind": dict(sorted(Counter(table["kind"].to_pylist()).items())),
                "model_id": embedder.model_id,
                "embedder": ctx.embedder.describe(),
                "dim": embedder.dim,
                "max_tokens": embedder.max_tokens,
                "chunk_tokens": min(ctx.chunk_tokens or embedder.chunk_tokens, embedder.max_tokens),
                "path": str(layout.chunks),
            },
        )

    return run_stage(ctx, stage, config, build)


def _chunked_with_reuse(plan: FilePlan) -> dict[str, list[str]]:
    """Return ``chunked_uris``, the files chunked afresh beside reused ones (what the
    ``chunks_match_clean_build`` check re-chunks), when reuse kept some and they are few."""
    if not plan.reused or len(plan.process) > MAX_LISTED_FILES:
        return {}
    return {"chunked_uris": plan.process}


def _chunk_plan(
    ctx: BuildContext, stage: Stage, config: dict[str, Any], manifest: pa.Table
) -> FilePlan:
    """Return the chunk stage's reuse plan: a file's chunks and node mappings are kept when
    its bytes and its AST and CST rows are the ones they were made from."""
    layout = ctx.layout.build
    ast, cst = upstream_ledger(layout.ast_ledger), upstream_ledger(layout.cst_ledger)
    return plan_files(
        ctx.layout,
        stage,
        layout.chunks_ledger,
        stage_basis(stage, config, ast, cst),
        combined_signatures(manifest_signatures(manifest), ast.signatures(), cst.signatures()),
        manifest_hashes(manifest),
        ctx.reuse_files,
    )


_SPAN = ["node_id", "uri", "start_byte", "end_byte"]


def _node_to_chunk(layout: ArtifactLayout, chunks: pa.Table, new: pa.Table, plan: FilePlan) -> int:
    """Write ``node_to_chunk`` for the AST and CST nodes present: the previous rows of the
    reused files' chunks, the processed files' mapped afresh; return its row count.

    With nothing reused (a first build) DuckDB maps the node files as they are on disk,
    so the nodes are never in memory at once."""
    paths = [path for path in (layout.ast_nodes, layout.cst_nodes) if path.exists()]
    if not paths:
        write_parquet(NODE_TO_CHUNK.empty_table(), layout.node_to_chunk, NODE_TO_CHUNK)
        return 0
    if not plan.reused:
        with parquet_stream(layout.node_to_chunk, NODE_TO_CHUNK) as stream:
            write_node_to_chunk(paths, new, stream)
        return stream.rows
    nodes = pa.concat_tables([_spans(path, plan.process) for path in paths])
    mapping = node_to_chunk_table(nodes, new.select(["id", "uri", "start_byte", "end_byte"]))
    previous = pq.read_table(layout.node_to_chunk)
    # Only the ids are needed: filtering every column (texts, vectors) would copy the table.
    kept_ids = plan.kept(chunks.select(["id", "uri"]))["id"]
    kept = previous.filter(pc.is_in(previous["chunk_id"], kept_ids))
    # One chunk of rows: Parquet pages break where the input's chunks do, so the file's
    # bytes would depend on how the rows were put together (DuckDB's batches, a merge).
    mapping = merge_node_to_chunk(kept, mapping)
    write_parquet(mapping, layout.node_to_chunk, NODE_TO_CHUNK)
    return mapping.num_rows


def _spans(path: Path, uris: list[str]) -> pa.Table:
    """Return the node spans of the files ``uris`` in a node table (row groups whose uri
    statistics exclude them are not read: the tables are written file by file)."""
    if not uris:
        return pq.read_table(path, columns=_SPAN).slice(0, 0)
    return pq.read_table(path, columns=_SPAN, filters=[("uri", "in", uris)])


def stage_faiss_index(ctx: BuildContext, stage: Stage) -> StageResult:
    """`faiss/chunks.faiss` (inner product, ids = chunk ids) and its audit sidecar, with the
    knobs tuned to reach the target recall against exact search. An IVF index is updated in
    place while its training holds, else rebuilt (``core.faiss_build``: metadata ``mode``
    and ``reason``)."""
    layout = ctx.layout.build
    index_path = layout.faiss_index()
    settings = faiss_build.IndexSettings(
        flat_max=ctx.faiss_flat_max,
        target_recall=ctx.target_recall,
        recall_k=ctx.recall_k,
        tune_queries=ctx.tune_queries,
        embedder=ctx.embedder.describe(),
    )

    def build() -> StageOutput:
        ids, vectors = read_chunk_vectors(layout.chunks, layout.chunk_vectors)
        built = faiss_build.build_or_update_index(
            layout,
            ids,
            vectors,
            settings,
            lambda: load_embedder(ctx.embedder),
            upstream_version(ctx.layout, "chunks"),
        )
        shown = {k: v for k, v in built.audit.items() if k != "sweep"}
        return StageOutput(
            built.audit["index_xxh64"],
            {
                **shown,
                **built.metadata,
                "sweep": built.point.sweep,
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
    `units/chunk_units.parquet`: each chunk's innermost unit. Unchanged files' units come
    from the previous build (``core.reuse``)."""
    layout = ctx.layout.build

    def build() -> StageOutput:
        columns = ["id", "uri", "lang", "start_line", "end_line", "start_byte", "end_byte"]
        columns += ["kind", "name", "content"]
        chunks = pq.read_table(layout.chunks, columns=columns)
        chunk_ledger = upstream_ledger(layout.chunks_ledger)
        cst = upstream_ledger(layout.cst_ledger)
        plan = plan_files(
            ctx.layout,
            stage,
            layout.units_ledger,
            stage_basis(stage, {}, chunk_ledger, cst),
            combined_signatures(chunk_ledger.signatures(), cst.signatures()),
            enabled=ctx.reuse_files,
        )
        wanted = pa.array(plan.process, pa.string())
        # File by file: a whole syntax tree as Python values would not fit at scale.
        nodes = (
            (
                batch.filter(pc.is_in(batch["uri"], wanted)) if plan.reused else batch
                for batch in file_batches(layout.cst_nodes, NODE_COLUMNS)
            )
            if layout.cst_nodes.exists()
            else CST_NODES.empty_table()
        )
        new_units, new_chunk_units = build_units(
            ctx.repo.name,
            nodes,
            chunks.filter(pc.is_in(chunks["uri"], wanted)) if plan.reused else chunks,
        )
        units = merged_rows(plan, layout.units, new_units)
        chunk_units = new_chunk_units
        if plan.reused:
            previous = pq.read_table(layout.chunk_units)
            kept_ids = plan.kept(chunks.select(["id", "uri"]))["id"]
            kept = previous.filter(pc.is_in(previous["chunk_id"], kept_ids))
            chunk_units = merged_in_uri_order(
                kept,
                new_chunk_units,
                _chunk_uris(kept["chunk_id"], chunks),
                _chunk_uris(new_chunk_units["chunk_id"], chunks),
            )
        write_parquet(units, layout.units, UNITS)
        write_parquet(chunk_units, layout.chunk_units, CHUNK_UNITS)
        write_ledger(plan.ledger(), layout.units_ledger, plan.basis)
        kinds = Counter(units.column("kind").to_pylist())
        return StageOutput(
            xxh64_json(["units", xxh64_file(layout.units), xxh64_file(layout.chunk_units)]),
            {
                "units": units.num_rows,
                "chunks": chunk_units.num_rows,
                "kinds": dict(kinds),
                **plan.metadata(),
            },
        )

    return run_stage(ctx, stage, {}, build)


def _chunk_uris(chunk_ids: pa.ChunkedArray, chunks: pa.Table) -> pa.ChunkedArray:
    """Return the uri of each chunk id (ids of ``chunks``)."""
    return chunks["uri"].take(pc.index_in(chunk_ids, chunks["id"]))


def stage_bm25_index(ctx: BuildContext, stage: Stage) -> StageResult:
    """`bm25/`: BM25 over identifier-aware tokens (snake_case and camelCase split, the
    identifier kept too) of each unit's path, qualified name and whole text; the
    definition channel is made from the units when an index is opened."""
    layout = ctx.layout.build

    def build() -> StageOutput:
        columns = ["id", "uri", "lang", "start_line", "end_line", "content"]
        units = load_units(layout)
        texts = unit_documents(units.table, pq.read_table(layout.chunks, columns=columns))
        # Unchanged texts' tokens come from the last build's (a clean build's, exactly).
        tokens = TokenCache(ctx.layout.token_cache)
        # BM25 alone: the definition channel is made from the units when an index opens.
        index = build_bm25(units.table["unit_id"].to_numpy(), texts, tokens)
        with atomic_folder(layout.bm25_dir) as folder:
            index.save(folder)
        tokens.save()
        return StageOutput(
            xxh64_json(["bm25", stage.upstream(ctx.layout), stage.code_version]),
            {
                "rows": len(index),
                "texts_tokenized": len(texts) - tokens.hits,
                "path": str(layout.bm25_dir),
            },
        )

    return run_stage(ctx, stage, {}, build)
