"""Evaluation stages: synthetic queries with known answers, and the evaluation pool.

Every build measures itself: recall@k of the approximate index against exact search,
and recall / MRR of every channel (dense, BM25, hybrid) against the positives.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from codeintel_assets.core import faiss_store
from codeintel_assets.core.channels import load_lexical_channels
from codeintel_assets.core.checksums import table_checksum, write_text_atomic, xxh64_file
from codeintel_assets.core.embedding import CachedEmbedder, EmbeddingCache, load_embedder
from codeintel_assets.core.evaluation import EvalResult, evaluate
from codeintel_assets.core.layout import ArtifactLayout
from codeintel_assets.core.queries import (
    read_queries_jsonl,
    synthetic_queries,
    write_queries_jsonl,
)
from codeintel_assets.core.schemas import EVAL_POOL, write_parquet
from codeintel_assets.core.stages.context import BuildContext
from codeintel_assets.core.stamps import (
    StageOutput,
    StageResult,
    fingerprint,
    run_stage,
    upstream_version,
)

QUERY_INPUTS = ("scip_occurrences", "chunks")
POOL_INPUTS = ("synthetic_queries", "faiss_index", "bm25_index", "chunks", "modules")


def stage_synthetic_queries(ctx: BuildContext) -> StageResult:
    """``eval/queries.jsonl``: doc, name, masked and call queries from SCIP (or AST) definitions."""
    layout = ctx.layout.build
    up = {stage: upstream_version(ctx.layout, stage) for stage in QUERY_INPUTS}
    config = {"count": ctx.eval_queries, "seed": 0}

    def build() -> StageOutput:
        symbols = pq.read_table(layout.scip_symbols) if layout.scip_symbols.exists() else None
        occurrences = (
            pq.read_table(layout.scip_occurrences) if layout.scip_occurrences.exists() else None
        )
        chunks = pq.read_table(
            layout.chunks,
            columns=["id", "uri", "start_line", "end_line", "start_byte", "content", "lang"],
        )
        queries = synthetic_queries(symbols, occurrences, chunks, count=ctx.eval_queries, seed=0)
        write_queries_jsonl(queries, layout.eval_queries)
        styles: dict[str, int] = {}
        for query in queries:
            styles[query.style] = styles.get(query.style, 0) + 1
        return StageOutput(
            xxh64_file(layout.eval_queries),
            {
                "rows": len(queries),
                "styles": styles,
                "examples": [  # the first two of each style
                    {"style": q.style, "text": q.text, "symbol": q.symbol}
                    for style in styles
                    for q in [q for q in queries if q.style == style][:2]
                ],
                "path": str(layout.eval_queries),
            },
        )

    return run_stage(
        ctx.layout,
        "synthetic_queries",
        fingerprint("synthetic_queries", up, config),
        [layout.eval_queries],
        build,
    )


def stage_eval_pools(ctx: BuildContext) -> StageResult:
    """``eval/last_eval_pool.parquet`` + ``eval/report.md`` + ``eval/report.png``."""
    layout = ctx.layout.build
    up = {stage: upstream_version(ctx.layout, stage) for stage in POOL_INPUTS}
    config = {"k": ctx.recall_k, "k_factor": ctx.eval_k_factor}
    outputs = [layout.eval_pool, layout.eval_report, layout.eval_plot]

    def build() -> StageOutput:
        result = evaluate_layout(
            ctx, layout, k=ctx.recall_k, k_factor=ctx.eval_k_factor, save_query_cache=True
        )
        write_parquet(result.pool, layout.eval_pool, EVAL_POOL)
        write_text_atomic(layout.eval_report, result.report_markdown)
        result.write_plot(layout.eval_plot)
        return StageOutput(
            table_checksum(result.pool),
            {
                "rows": result.pool.num_rows,
                "metrics": result.metrics,
                "markdown": result.report_markdown,
                "plot": str(layout.eval_plot),
                "path": str(layout.eval_pool),
            },
        )

    return run_stage(
        ctx.layout, "eval_pools", fingerprint("eval_pools", up, config), outputs, build
    )


def evaluate_layout(
    ctx: BuildContext,
    layout: ArtifactLayout,
    k: int,
    k_factor: int,
    save_query_cache: bool = False,
) -> EvalResult:
    """Evaluate the queries of ``layout`` against its FAISS and BM25 indexes.

    Query vectors come through a small cache of their own (``cache/embeddings/queries``),
    so the same queries are not embedded build after build; only the build stage saves
    it (``save_query_cache``), so ``indexctl eval recall`` writes nothing.
    """
    queries = read_queries_jsonl(layout.eval_queries)
    chunks = pq.read_table(layout.chunks, columns=["id", "uri", "embedding"])
    audit = json.loads(layout.faiss_audit().read_text(encoding="utf-8"))
    index = faiss_store.read_index(layout.faiss_index(), audit.get("knobs", ""))
    lexical = load_lexical_channels(layout.bm25_dir)
    model = load_embedder(ctx.embedder)
    cache = EmbeddingCache(
        ctx.layout.embedding_cache_dir / "queries", model.model_id, model.dim, max_entries=10_000
    )
    module_of = _module_of(layout, chunks) if layout.modules_parquet.exists() else None
    result = evaluate(
        queries,
        chunks,
        index,
        lexical,
        CachedEmbedder(model, cache),
        k=k,
        k_factor=k_factor,
        module_of=module_of,
    )
    if save_query_cache:
        cache.save()
    return result


def _module_of(layout: ArtifactLayout, chunks: pa.Table) -> Callable[[int], str | None]:
    """Return chunk id → module id, by the longest ``uri_prefix`` (as ``v_chunk_modules``)."""
    modules = pq.read_table(layout.modules_parquet, columns=["module_id", "uri_prefix"])
    by_prefix = dict(
        zip(
            modules.column("uri_prefix").to_pylist(),
            modules.column("module_id").to_pylist(),
            strict=True,
        )
    )
    owner: dict[int, str | None] = {}
    for chunk_id, uri in zip(
        chunks.column("id").to_pylist(), chunks.column("uri").to_pylist(), strict=True
    ):
        # Every string prefix of the uri, longest first: the same rule as the catalog view.
        owner[chunk_id] = next(
            (by_prefix[uri[:n]] for n in range(len(uri), -1, -1) if uri[:n] in by_prefix), None
        )
    return owner.get
