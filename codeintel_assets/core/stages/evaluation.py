"""Evaluation stages: synthetic queries with known answers, and the evaluation pool.

Every build measures itself: recall@k of the approximate index against exact search,
and recall / MRR of every channel (dense, BM25, hybrid) against the positives.
"""

from __future__ import annotations

import pyarrow.parquet as pq

from codeintel_assets.core.checksums import table_checksum, write_text_atomic, xxh64_file
from codeintel_assets.core.context import BuildContext
from codeintel_assets.core.evaluation import evaluate_layout, plot_digest
from codeintel_assets.core.queries import (
    synthetic_queries,
    write_queries_jsonl,
)
from codeintel_assets.core.schemas import EVAL_POOL, write_parquet
from codeintel_assets.core.stamps import (
    Stage,
    StageOutput,
    StageResult,
    outputs_intact,
    read_stamp,
    run_stage,
)


def stage_synthetic_queries(ctx: BuildContext, stage: Stage) -> StageResult:
    """`eval/queries.jsonl`: `doc`, `name`, `masked` (shares no identifier with its target) and
    `call` (a use of the definition) queries from documented SCIP definitions, each with its
    positive chunk ids."""
    layout = ctx.layout.build
    config = {"count": ctx.eval_queries, "seed": 0}

    def build() -> StageOutput:
        symbols = pq.read_table(layout.scip_symbols) if layout.scip_symbols.exists() else None
        occurrences = (
            pq.ParquetFile(layout.scip_occurrences).iter_batches(
                columns=["symbol", "uri", "role", "start_line"]
            )
            if layout.scip_occurrences.exists()
            else None
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

    return run_stage(ctx, stage, config, build)


def stage_eval_pools(ctx: BuildContext, stage: Stage) -> StageResult:
    """`eval/last_eval_pool.parquet` (faiss, oracle, bm25, hybrid rankings per query) and the
    report: ANN recall@k against exact search, recall@1/5/10 and MRR@10 per channel, style and
    module, with a plot."""
    layout = ctx.layout.build
    config = {"k": ctx.recall_k, "k_factor": ctx.eval_k_factor}

    def build() -> StageOutput:
        result = evaluate_layout(
            ctx, layout, k=ctx.recall_k, k_factor=ctx.eval_k_factor, save_caches=True
        )
        digest = plot_digest(result.metrics)
        redrawn = not _plot_is_current(ctx, digest)  # before this run writes an output
        write_parquet(result.pool, layout.eval_pool, EVAL_POOL)
        write_text_atomic(layout.eval_report, result.report_markdown)
        if redrawn:
            result.write_plot(layout.eval_plot)
        return StageOutput(
            table_checksum(result.pool),
            {
                "rows": result.pool.num_rows,
                "metrics": result.metrics,
                "markdown": result.report_markdown,
                "plot": str(layout.eval_plot),
                "plot_digest": digest,
                "plot_redrawn": redrawn,
                "path": str(layout.eval_pool),
            },
        )

    return run_stage(ctx, stage, config, build)


def _plot_is_current(ctx: BuildContext, digest: str) -> bool:
    """Return whether the last plot drew the figures of ``digest`` and is intact (the plot
    is a function of them: drawing it again would write the same file)."""
    stamp = read_stamp(ctx.layout, "eval_pools")
    return (
        stamp is not None
        and stamp.get("metadata", {}).get("plot_digest") == digest
        and outputs_intact(ctx.layout, "eval_pools")
    )
