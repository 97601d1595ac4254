"""Evaluation pools and retrieval metrics: how much ANN loses, and how good each channel is.

``evaluate`` runs every synthetic query through each channel and keeps the ranked
lists as the pool (schema ``EVAL_POOL``):

* ``faiss``: the ANN index, top ``k·k_factor`` chunks;
* ``oracle``: exact inner-product search over the same vectors, top ``k`` chunks;
* ``bm25``: BM25 over unit texts, top ``k·k_factor`` units;
* ``hybrid``: what ``indexctl search`` ranks — reciprocal rank fusion of the dense,
  BM25 and definition channels over units (``core.channels``), each fetched
  ``fusion_depth`` deep (search fetches max(100, 4·k), the same for k ≤ 25), top
  ``k·k_factor`` units.

Every row names its unit; faiss and oracle rows are chunks (the unit of the chunk
beside it). Metrics come from the pool alone (``pool_metrics``): recall@k of ANN
against the oracle at chunk level (ties count, see ``tuning.recall_at_k``), where it
belongs; recall@1/5/10 and MRR@10 of each source at **unit level** — a query is
answered when its positive's unit is returned, each unit counted once — overall, per
style and per module. A pool read from a TSV has no unit ids and is scored by chunk.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.metadata
import json
import math
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from codeintel_assets.core import faiss_store
from codeintel_assets.core.channels import (
    UnitChannels,
    load_unit_channels,
    rank_units,
    unit_channels,
)
from codeintel_assets.core.checksums import atomic_path, xxh64_json
from codeintel_assets.core.chunk_table import read_chunks
from codeintel_assets.core.embedding import (
    CachedEmbedder,
    Embedder,
    EmbeddingCache,
    embedding_matrix,
    load_embedder,
    text_token_limit,
)
from codeintel_assets.core.errors import BadInputError, CodeintelError
from codeintel_assets.core.fusion import RRF_K
from codeintel_assets.core.heldout import HELD_OUT, HeldOutCorpus, StrippedFiles, held_out_corpus
from codeintel_assets.core.layout import ArtifactLayout
from codeintel_assets.core.lexical import TokenCache
from codeintel_assets.core.modules import longest_prefix_owner
from codeintel_assets.core.queries import SHARES_TEXT, STYLES, SyntheticQuery, read_queries_jsonl
from codeintel_assets.core.schemas import EVAL_POOL
from codeintel_assets.core.tuning import ExactCache, ExactOracle, recall_at_k
from codeintel_assets.core.units import load_units

if TYPE_CHECKING:
    from codeintel_assets.core.context import BuildContext

SOURCES = ("faiss", "oracle", "bm25", "hybrid", "splade")
CHANNELS = ("faiss", "bm25", "hybrid", "oracle")
RECALL_AT = (1, 5, 10)
MRR_AT = 10
FUSION_DEPTH = 100
TSV_COLUMNS = ("query_id", "source", "rank", "chunk_id", "score")  # a pool written by hand
MAX_REPORT_MODULES = 25

ModuleOf = Callable[[int], str | None] | Mapping[int, str]


@dataclass(frozen=True)
class EvalResult:
    """The pool, the metrics computed from it, and its markdown report."""

    pool: pa.Table  # schema EVAL_POOL
    metrics: dict[str, Any]
    report_markdown: str

    def write_plot(self, path: Path) -> None:
        """Write a PNG bar chart of MRR@10 and recall@10 per source and style, atomically."""
        write_metrics_plot(self.metrics, path)


def evaluate(
    queries: list[SyntheticQuery],
    chunks: pa.Table,
    index: Any,
    channels: UnitChannels,
    embedder: Embedder,
    *,
    k: int = 10,
    k_factor: float = 2,
    module_of: ModuleOf | None = None,
    fusion_depth: int = FUSION_DEPTH,
    oracle: ExactOracle | None = None,
    tokens: TokenCache | None = None,
    stripped: StrippedFiles | None = None,
) -> EvalResult:
    """Return the evaluation of ``queries`` against one built index (FAISS + BM25);
    ``tokens`` tokenizes the held-out corpus' BM25 texts and ``stripped`` strips its
    files (both caches kept between builds).

    ``chunks`` needs ``id`` and ``embedding`` (for the exact oracle, unless ``oracle`` is
    given), ``uri`` (for the default module: the chunk's directory) and ``lang,
    start_line, end_line, name, content`` (the held-out corpus, ``core.heldout``).
    Raises ``CodeintelError`` when the index dimension differs from the model's.
    """
    if index.d != embedder.dim:
        raise CodeintelError(
            f"the FAISS index has dimension {index.d} but the embedding model has "
            f"{embedder.dim}; rebuild the index with this model"
        )
    oracle = oracle or oracle_from_chunks(chunks)
    texts = [q.text for q in queries]
    limit = text_token_limit(embedder)
    truncated = sum(1 for n in embedder.count_tokens(texts) if n > limit)
    vectors = embedder.embed(texts) if texts else np.zeros((0, index.d), dtype=np.float32)
    held_out = held_out_corpus(queries, chunks, channels, embedder, tokens, stripped)
    pool = evaluation_pool(
        queries, vectors, index, oracle, channels, k, k_factor, fusion_depth, held_out
    )
    module_of = module_of or default_module_of(chunks)
    metrics = pool_metrics(pool, queries, k=k, module_of=module_of, unit_of=channels.units.unit_of)
    metrics["truncated_queries"] = truncated
    metrics["k_factor"] = k_factor
    metrics["fusion_depth"] = fusion_depth
    metrics["hybrid_channels"] = ["dense", "bm25", "definition"]
    metrics["held_out_chunks"] = len(held_out.chunk_ids) if held_out else 0
    return EvalResult(pool=pool, metrics=metrics, report_markdown=report_markdown(metrics))


def oracle_from_chunks(chunks: pa.Table, cache: ExactCache | None = None) -> ExactOracle:
    """Return exact search over the ``embedding`` column of ``chunks``, keyed by ``id``
    (through the kept exact lists of ``cache`` when given)."""
    return ExactOracle(chunks.column("id").to_numpy(), embedding_matrix(chunks), cache)


def default_module_of(chunks: pa.Table) -> Callable[[int], str | None]:
    """Return chunk id → the directory of its file (``.`` at the top)."""
    dirs = {
        cid: (uri.rsplit("/", 1)[0] if "/" in uri else ".")
        for cid, uri in zip(
            chunks.column("id").to_pylist(), chunks.column("uri").to_pylist(), strict=True
        )
    }
    return dirs.get


def evaluation_pool(
    queries: list[SyntheticQuery],
    vectors: np.ndarray,
    index: Any,
    oracle: ExactOracle,
    channels: UnitChannels,
    k: int,
    k_factor: float,
    fusion_depth: int = FUSION_DEPTH,
    held_out: HeldOutCorpus | None = None,
) -> pa.Table:
    """Return the pool rows (``EVAL_POOL``) of every query: faiss, oracle (chunks), bm25
    and hybrid (units, as ``CodeIndex.search`` ranks them); ``heldout`` queries search
    ``held_out``'s corpus."""
    keep = math.ceil(k * k_factor)
    depth = max(keep, fusion_depth)
    dense = faiss_store.search(index, vectors, depth)
    exact = oracle.search(vectors, k)
    rows: dict[str, list] = {name: [] for name in EVAL_POOL.names}
    units = channels.units

    def add(query_id: str, source: str, ranked: list[tuple[int, float, int]]) -> None:
        for rank, (chunk_id, score, unit_id) in enumerate(ranked, start=1):
            rows["query_id"].append(query_id)
            rows["source"].append(source)
            rows["rank"].append(rank)
            rows["chunk_id"].append(int(chunk_id))
            rows["score"].append(float(score))
            rows["unit_id"].append(unit_id)

    def of_chunks(ranked: list[tuple[int, float]]) -> list[tuple[int, float, int]]:
        return [(c, s, units.unit_of.get(c)) for c, s in ranked]

    def of_units(ranked: list[tuple[int, float]], best: dict[int, int]) -> list:
        return [(best.get(u) or units.best_chunk(u), s, u) for u, s in ranked]

    for row, query in enumerate(queries):
        dense_list = [
            (int(i), float(s))
            for i, s in zip(dense.ids[row], dense.scores[row], strict=True)
            if i != -1
        ]
        exact_list = [
            (int(i), float(s))
            for i, s in zip(exact.ids[row], exact.scores[row], strict=True)
            if i != -1
        ]
        searched = channels
        if query.style == HELD_OUT and held_out is not None:
            dense_list = held_out.replace(dense_list, vectors[row], depth)
            exact_list = held_out.replace(exact_list, vectors[row], k)
            searched = held_out.channels
        ranked, best = unit_channels(searched, query.text, "hybrid", dense_list, depth)
        add(query.query_id, "faiss", of_chunks(dense_list[:keep]))
        add(query.query_id, "oracle", of_chunks(exact_list))
        add(query.query_id, "bm25", of_units(rank_units(ranked, "bm25", units)[:keep], best))
        add(query.query_id, "hybrid", of_units(rank_units(ranked, "hybrid", units)[:keep], best))
    return pa.table(rows, schema=EVAL_POOL)


def pool_metrics(
    pool: pa.Table,
    queries: list[SyntheticQuery],
    *,
    k: int = 10,
    module_of: ModuleOf | None = None,
    unit_of: Mapping[int, int] | None = None,
) -> dict[str, Any]:
    """Return the metrics of a pool: ANN recall against the oracle and per-source quality.

    Shape: ``{"k", "queries", "level", "ann_recall", "overall": {source: {metric: value}},
    "by_style": {style: {source: ...}}, "by_module": {module: {source: ...}},
    "counts": {"style": {...}, "module": {...}}}``. With ``unit_of`` (chunk id → unit id)
    and unit ids in the pool, quality is scored by unit (positives mapped to their
    units, each unit counted at its first rank); otherwise by chunk. A query's module is
    the module of its first positive. Sources absent from the pool are left out.
    """
    chunk_lists: dict[str, dict[str, list[tuple[int, float]]]] = defaultdict(dict)
    unit_lists: dict[str, dict[str, list[tuple[int, float]]]] = defaultdict(dict)
    names = ("query_id", "source", "rank", "chunk_id", "score", "unit_id")
    columns = [
        pool.column(n).to_pylist() if n in pool.column_names else [None] * pool.num_rows
        for n in names
    ]
    by_unit = unit_of is not None and any(u is not None for u in columns[-1])
    for query_id, source, _rank, chunk_id, score, unit_id in sorted(
        zip(*columns, strict=True), key=lambda r: (r[0], r[1], r[2])
    ):
        chunk_lists[source].setdefault(query_id, []).append((chunk_id, score))
        if by_unit:
            listed = unit_lists[source].setdefault(query_id, [])
            unit = unit_id if unit_id is not None else unit_of.get(chunk_id)
            if all(u != unit for u, _ in listed):
                listed.append((unit, score))
    lists = unit_lists if by_unit else chunk_lists
    # Held-out queries search a corpus with their targets changed: ANN recall is the
    # index's, measured on the other queries.
    held_out_ids = {q.query_id for q in queries if q.style == HELD_OUT}
    scored = [_unit_query(q, unit_of) for q in queries] if by_unit else queries
    sources = [s for s in CHANNELS if s in lists] + sorted(set(lists) - set(CHANNELS))
    lookup = _module_lookup(module_of)
    groups: dict[str, dict[str, list[SyntheticQuery]]] = {"style": {}, "module": {}}
    for q, as_scored in zip(queries, scored, strict=True):
        groups["style"].setdefault(q.style, []).append(as_scored)
        module = q.module or (lookup(q.positives[0]) if lookup and q.positives else None)
        groups["module"].setdefault(module or "(unknown)", []).append(as_scored)

    def scores_for(subset: list[SyntheticQuery]) -> dict[str, dict[str, float]]:
        return {source: ranking_quality(subset, lists[source]) for source in sources}

    metrics: dict[str, Any] = {
        "k": k,
        "queries": len(queries),
        "level": "unit" if by_unit else "chunk",
        "ann_recall": _ann_recall(
            _without(chunk_lists.get("faiss", {}), held_out_ids),
            _without(chunk_lists.get("oracle", {}), held_out_ids),
            k,
        ),
        "overall": scores_for(scored),
        "by_style": {s: scores_for(groups["style"][s]) for s in STYLES if s in groups["style"]},
        "by_module": {m: scores_for(qs) for m, qs in sorted(groups["module"].items())},
        "counts": {
            name: {key: len(qs) for key, qs in sorted(group.items())}
            for name, group in groups.items()
        },
    }
    return metrics


def _without(lists: dict[str, list], query_ids: set[str]) -> dict[str, list]:
    return {q: ranked for q, ranked in lists.items() if q not in query_ids}


def _unit_query(query: SyntheticQuery, unit_of: Mapping[int, int]) -> SyntheticQuery:
    """Return ``query`` with its positives mapped to their units (each once)."""
    units = list(dict.fromkeys(unit_of[c] for c in query.positives if c in unit_of))
    return dataclasses.replace(query, positives=units)


def _module_lookup(module_of: ModuleOf | None) -> Callable[[int], str | None] | None:
    if module_of is None or callable(module_of):
        return module_of
    return module_of.get


def ranking_quality(
    queries: list[SyntheticQuery], ranked: dict[str, list[tuple[int, float]]]
) -> dict[str, float]:
    """Return mean recall@1/5/10 and MRR@10 of ``queries`` against their positives."""
    if not queries:
        return {}
    recall = {n: 0.0 for n in RECALL_AT}
    mrr = 0.0
    for q in queries:
        positives = set(q.positives)
        ids = [i for i, _ in ranked.get(q.query_id, [])]
        for n in RECALL_AT:
            recall[n] += len(positives & set(ids[:n])) / len(positives) if positives else 0.0
        first = next((r for r, i in enumerate(ids[:MRR_AT], start=1) if i in positives), None)
        mrr += 1.0 / first if first else 0.0
    out = {f"recall@{n}": recall[n] / len(queries) for n in RECALL_AT}
    out[f"mrr@{MRR_AT}"] = mrr / len(queries)
    return out


def _ann_recall(
    ann: dict[str, list[tuple[int, float]]], exact: dict[str, list[tuple[int, float]]], k: int
) -> float | None:
    """Return the ANN recall@k against the oracle over the queries both listed."""
    shared = sorted(set(ann) & set(exact))
    if not shared:
        return None

    def hits(lists: dict[str, list[tuple[int, float]]]) -> faiss_store.SearchHits:
        ids = np.full((len(shared), k), -1, dtype=np.int64)
        scores = np.full((len(shared), k), -np.inf, dtype=np.float32)
        for row, query_id in enumerate(shared):
            for col, (chunk_id, score) in enumerate(lists[query_id][:k]):
                ids[row, col], scores[row, col] = chunk_id, score
        return faiss_store.SearchHits(ids=ids, scores=scores)

    return recall_at_k(hits(ann), hits(exact), k)


def report_markdown(metrics: dict[str, Any]) -> str:
    """Return the metrics as a markdown report (overall, per style, per module)."""
    k = metrics["k"]
    lines = ["# Retrieval evaluation", ""]
    ann = metrics.get("ann_recall")
    lines.append(f"- queries: {metrics['queries']}")
    lines.append(
        f"- ANN recall@{k} against exact search: "
        + (f"**{ann:.4f}**" if ann is not None else "n/a (no faiss/oracle pool)")
    )
    if metrics.get("truncated_queries"):
        lines.append(f"- queries truncated to the model's limit: {metrics['truncated_queries']}")
    if metrics.get("hybrid_channels"):
        channels = ", ".join(metrics["hybrid_channels"])
        lines.append(f"- hybrid: reciprocal rank fusion (k = {RRF_K}) of {channels}")
    lines.append(f"- scored by {metrics.get('level', 'chunk')}")
    held_out = metrics["by_style"].get(HELD_OUT)
    if held_out:
        lines += ["", f"## Held out ({metrics['counts']['style'][HELD_OUT]} queries: the "
                  "docstring's first sentence, the targets searched without docstrings and "
                  "comments) — the headline", ""] + _table(held_out)  # fmt: skip
    lines += ["", "## By style (MRR@10)", ""]
    sources = list(metrics["overall"])
    lines.append("| style | queries | shares text with target | " + " | ".join(sources) + " |")
    lines.append("|---|---:|---|" + "---:|" * len(sources))
    for style, scores in metrics["by_style"].items():
        count = metrics["counts"]["style"].get(style, 0)
        shares = "yes" if SHARES_TEXT.get(style, True) else "no"
        cells = [f"{scores.get(s, {}).get(f'mrr@{MRR_AT}', 0.0):.3f}" for s in sources]
        lines.append(f"| {style} | {count} | {shares} | " + " | ".join(cells) + " |")
    lines += ["", "## Overall (every style, including those that share text)", ""]
    lines += _table(metrics["overall"])
    lines += ["", "## By style", ""]
    for style, scores in metrics["by_style"].items():
        count = metrics["counts"]["style"].get(style, 0)
        lines += [f"### {style} ({count} queries)", ""] + _table(scores) + [""]
    lines += ["## By module (MRR@10)", ""]
    modules = sorted(
        metrics["by_module"].items(), key=lambda kv: -metrics["counts"]["module"].get(kv[0], 0)
    )
    shown = modules[:MAX_REPORT_MODULES]
    sources = list(metrics["overall"])
    lines.append("| module | queries | " + " | ".join(sources) + " |")
    lines.append("|---|---:|" + "---:|" * len(sources))
    for module, scores in shown:
        cells = [f"{scores.get(s, {}).get(f'mrr@{MRR_AT}', 0.0):.3f}" for s in sources]
        lines.append(
            f"| {module} | {metrics['counts']['module'][module]} | " + " | ".join(cells) + " |"
        )
    if len(modules) > len(shown):
        lines.append(f"\n({len(modules) - len(shown)} smaller modules not shown)")
    return "\n".join(lines) + "\n"


def _table(scores: dict[str, dict[str, float]]) -> list[str]:
    names = [f"recall@{n}" for n in RECALL_AT] + [f"mrr@{MRR_AT}"]
    out = ["| source | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for source, values in scores.items():
        out.append(f"| {source} | " + " | ".join(f"{values.get(n, 0.0):.3f}" for n in names) + " |")
    return out


def plot_digest(metrics: dict[str, Any]) -> str:
    """Return a checksum of what ``write_metrics_plot`` draws of ``metrics``: equal digests
    draw the same plot (a build whose figures did not move need not draw it again)."""
    shown = {key: metrics.get(key) for key in ("overall", "by_style", "ann_recall", "k")}
    # Without importing matplotlib (~1 s): its version draws the plot too.
    return xxh64_json({**shown, "matplotlib": importlib.metadata.version("matplotlib")})


def write_metrics_plot(metrics: dict[str, Any], path: Path) -> None:
    """Write a PNG of MRR@10 and recall@10 per source, overall and per style, atomically."""
    import matplotlib

    matplotlib.use("Agg")  # no display: the plot is a file in the asset's metadata
    import matplotlib.pyplot as plt

    groups = {"overall": metrics["overall"], **metrics["by_style"]}
    sources = list(metrics["overall"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    width = 0.8 / max(1, len(sources))
    for ax, metric in zip(axes, (f"mrr@{MRR_AT}", "recall@10"), strict=True):
        for i, source in enumerate(sources):
            values = [groups[g].get(source, {}).get(metric, 0.0) for g in groups]
            ax.bar(np.arange(len(groups)) + i * width, values, width, label=source)
        ax.set_xticks(np.arange(len(groups)) + width * (len(sources) - 1) / 2, list(groups))
        ax.set_title(metric)
        ax.set_ylim(0, 1)
    if sources:
        axes[0].legend()
    else:
        axes[0].set_title(f"mrr@{MRR_AT}: no evaluation queries")
    ann = metrics.get("ann_recall")
    if ann is not None:
        fig.suptitle(f"ANN recall@{metrics['k']} vs exact: {ann:.3f}")
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def read_pool_tsv(path: Path) -> pa.Table:
    """Return a pool table (``EVAL_POOL``) from a TSV of ``query_id source rank chunk_id score``.

    A header line with those names is optional; blank lines are ignored. Raises
    ``BadInputError`` naming the file and line of the first bad row.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{path}: cannot be read as UTF-8 text: {exc}") from exc
    rows: dict[str, list] = {name: [] for name in EVAL_POOL.names}
    seen: set[tuple[str, str, int]] = set()
    reader = csv.reader(text.splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE)
    for number, fields in enumerate(reader, start=1):
        if not fields or all(not f.strip() for f in fields):
            continue
        if number == 1 and [f.strip() for f in fields] == list(TSV_COLUMNS):
            continue
        record = _pool_row(path, number, fields)
        key = (record[0], record[1], record[2])
        if key in seen:
            raise BadInputError(
                f"{path}:{number}: duplicate rank {record[2]} for query {record[0]!r} "
                f"source {record[1]!r}"
            )
        seen.add(key)
        for name, value in zip(TSV_COLUMNS, record, strict=True):
            rows[name].append(value)
        rows["unit_id"].append(None)
    return pa.table(rows, schema=EVAL_POOL)


def _pool_row(path: Path, number: int, fields: list[str]) -> tuple[str, str, int, int, float]:
    where = f"{path}:{number}"
    if len(fields) != len(TSV_COLUMNS):
        raise BadInputError(
            f"{where}: expected {len(TSV_COLUMNS)} tab-separated fields "
            f"({', '.join(TSV_COLUMNS)}), got {len(fields)}"
        )
    query_id, source, rank, chunk_id, score = (f.strip() for f in fields)
    if not query_id:
        raise BadInputError(f"{where}: field 'query_id' is empty")
    if source not in SOURCES:
        raise BadInputError(f"{where}: field 'source' is {source!r}, expected one of {SOURCES}")
    try:
        rank_value = int(rank)
    except ValueError:
        raise BadInputError(f"{where}: field 'rank' is {rank!r}, not an integer") from None
    if rank_value < 1 or rank_value > 2**31 - 1:
        raise BadInputError(f"{where}: field 'rank' is {rank_value}, expected 1 or more")
    try:
        chunk_value = int(chunk_id)
    except ValueError:
        raise BadInputError(f"{where}: field 'chunk_id' is {chunk_id!r}, not an integer") from None
    if not -(2**63) <= chunk_value < 2**63:
        raise BadInputError(f"{where}: field 'chunk_id' {chunk_value} is out of the BIGINT range")
    try:
        score_value = float(score)
    except ValueError:
        raise BadInputError(f"{where}: field 'score' is {score!r}, not a number") from None
    if not np.isfinite(score_value):
        raise BadInputError(f"{where}: field 'score' is {score!r}, not a finite number")
    return query_id, source, rank_value, chunk_value, score_value


def evaluate_layout(
    ctx: BuildContext,
    layout: ArtifactLayout,
    k: int,
    k_factor: int,
    save_caches: bool = False,
) -> EvalResult:
    """Evaluate the queries of ``layout`` against its FAISS and BM25 indexes.

    Query vectors come through a small cache of their own (``cache/embeddings/queries``),
    so the same queries are not embedded build after build, and so do the held-out
    corpus' stripped files and their BM25 tokens (``cache/heldout_*.parquet``; the rest
    of its tokens are the BM25 stage's) and the oracle's exact lists
    (``cache/eval_exact.npz``, ``tuning.ExactCache``: a few changed vectors are scored,
    not all). Only the build stage saves them
    (``save_caches``), so ``indexctl eval recall`` writes nothing.
    """
    queries = read_queries_jsonl(layout.eval_queries)
    columns = ["id", "uri", "lang", "start_line", "end_line", "name", "content", "embedding"]
    chunks = read_chunks(layout.chunks, columns, layout.chunk_vectors)
    audit = json.loads(layout.faiss_audit().read_text(encoding="utf-8"))
    index = faiss_store.read_index(layout.faiss_index(), audit.get("knobs", ""))
    channels = load_unit_channels(layout.bm25_dir, load_units(layout))
    model = load_embedder(ctx.embedder)
    cache = EmbeddingCache(
        ctx.layout.embedding_cache_dir / "queries", model.model_id, model.dim, max_entries=10_000
    )
    module_of = _module_of(layout, chunks) if layout.modules_parquet.exists() else None
    # The BM25 stage's tokens: only the held-out files' stripped texts are new.
    tokens = TokenCache(ctx.layout.heldout_token_cache, base=TokenCache(ctx.layout.token_cache))
    stripped = StrippedFiles(ctx.layout.stripped_cache)
    exact = ExactCache(ctx.layout.eval_exact_cache)
    result = evaluate(
        queries,
        chunks,
        index,
        channels,
        CachedEmbedder(model, cache),
        k=k,
        k_factor=k_factor,
        module_of=module_of,
        oracle=oracle_from_chunks(chunks, exact),
        tokens=tokens,
        stripped=stripped,
    )
    if save_caches:
        cache.save()
        tokens.save()
        stripped.save()
        exact.save()
    return result


def _module_of(layout: ArtifactLayout, chunks: pa.Table) -> Callable[[int], str | None]:
    """Return chunk id → module id, by the longest ``uri_prefix`` (as ``uri_modules``)."""
    modules = pq.read_table(layout.modules_parquet, columns=["module_id", "uri_prefix"])
    by_prefix = dict(
        zip(
            modules.column("uri_prefix").to_pylist(),
            modules.column("module_id").to_pylist(),
            strict=True,
        )
    )
    uris = chunks.column("uri").to_pylist()
    # Per file, not per chunk: the lookup tries every prefix of the uri.
    of_file = {uri: longest_prefix_owner(by_prefix, uri) for uri in set(uris)}
    owner = {
        chunk_id: of_file[uri]
        for chunk_id, uri in zip(chunks.column("id").to_pylist(), uris, strict=True)
    }
    return owner.get
