"""The build stages of one repository: the stage table, and one module per layer.

``STAGES`` is the table of contents of the build, in build order (every stage after its
inputs): the Dagster assets are generated from it (``assets/factory.py``), the gates
fingerprint each stage's ``inputs`` and ``code_version`` (``core.stamps``), and
``indexctl build`` reports in its order. Adding a stage is one row here plus its
function, which takes ``(ctx, stage)``, gates on its row (``run_stage``) and calls the
domain code. Nothing here knows Dagster.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from codeintel_assets.core.context import BuildContext
from codeintel_assets.core.errors import CodeintelError
from codeintel_assets.core.layout import ArtifactLayout
from codeintel_assets.core.stages import catalog, evaluation, publish, retrieval, source, structure
from codeintel_assets.core.stamps import Stage, StageIsStale, StageResult, probing


def files(*names: str) -> Callable[[ArtifactLayout], list[Path]]:
    """Return the function giving a build area's paths of these ``ArtifactLayout`` names."""

    def paths(layout: ArtifactLayout) -> list[Path]:
        found = [getattr(layout, name) for name in names]
        return [path() if callable(path) else path for path in found]

    return paths


# Stage(name, inputs, code version, the function that runs it, its outputs, group, kinds)
STAGES: tuple[Stage, ...] = (
    Stage(
        "repo_manifest",
        (),
        "2",
        source.stage_repo_manifest,
        files("repo_manifest", "manifest_skips"),
        "source",
        frozenset({"parquet"}),
    ),
    Stage(
        "scip_index",
        ("repo_manifest",),
        "3",
        structure.stage_scip_index,
        files("scip_index", "scip_index_json", "scip_state"),
        "structure",
        frozenset({"scip"}),
    ),
    Stage(
        "scip_occurrences",
        ("scip_index", "repo_manifest"),
        "3",  # 3: unchanged documents' rows kept (ledgers/scip_occurrences.parquet)
        structure.stage_scip_occurrences,
        files("scip_occurrences", "scip_symbols", "scip_occurrences_ledger"),
        "structure",
        frozenset({"parquet"}),
    ),
    Stage(
        "ast_nodes",
        ("repo_manifest",),
        # Still 1 since the LZ4 encoding (schemas.parquet_options): the rows are the same, so
        # reuse of them stays valid; a kept file takes the encoding when next written.
        "1",
        structure.stage_ast_nodes,
        files("ast_nodes", "ast_ledger"),
        "structure",
        frozenset({"parquet", "python"}),
    ),
    Stage(
        "cst_nodes",
        ("repo_manifest",),
        # Still 1 since the LZ4 encoding (schemas.parquet_options): the rows are the same, so
        # reuse of them stays valid; a kept file takes the encoding when next written.
        "1",
        structure.stage_cst_nodes,
        files("cst_nodes", "cst_ledger"),
        "structure",
        frozenset({"parquet"}),
    ),
    Stage(
        "chunks",
        ("repo_manifest", "scip_occurrences", "ast_nodes", "cst_nodes"),
        "4",
        retrieval.stage_chunks,
        files("chunks", "node_to_chunk", "chunks_ledger"),
        "retrieval",
        frozenset({"parquet", "pytorch"}),
    ),
    Stage(
        "modules",
        ("repo_manifest", "chunks"),
        "1",
        structure.stage_modules,
        files("modules_parquet", "modules_jsonl", "module_files", "modules_ledger"),
        "structure",
        frozenset({"parquet"}),
    ),
    Stage(
        "symbol_edges",
        ("scip_occurrences", "repo_manifest"),
        "5",  # 5: each file's reference edges kept by its SCIP document (ledgers/file_edges*)
        structure.stage_symbol_edges,
        files(
            "symbol_edges",
            "symbol_graph_json",
            "syntax_sites",
            "symbol_edges_ledger",
            "file_edges",
            "file_edges_ledger",
        ),
        "structure",
        frozenset({"parquet"}),
    ),
    Stage(
        "faiss_index",
        ("chunks",),
        "2",  # 2: an IVF index is updated in place (core/faiss_build.py)
        retrieval.stage_faiss_index,
        files("faiss_index", "faiss_audit", "faiss_tuning_queries"),
        "retrieval",
        frozenset({"faiss"}),
    ),
    Stage(
        "faiss_idmap",
        ("faiss_index",),
        "1",
        retrieval.stage_faiss_idmap,
        files("faiss_idmap"),
        "retrieval",
        frozenset({"parquet"}),
    ),
    Stage(
        "units",
        ("chunks", "cst_nodes"),
        "1",
        retrieval.stage_units,
        files("units", "chunk_units", "units_ledger"),
        "retrieval",
        frozenset({"parquet"}),
    ),
    Stage(
        "bm25_index",
        ("chunks", "units"),
        # 5: bm25s writes its vocabulary with orjson (compact), now a dependency;
        # 6: the vocabulary in token id order (the same file from coded or plain tokens)
        "6",
        retrieval.stage_bm25_index,
        files("bm25_ids"),
        "retrieval",
        frozenset({"numpy"}),
    ),
    Stage(
        "synthetic_queries",
        ("scip_occurrences", "chunks"),
        "3",
        evaluation.stage_synthetic_queries,
        files("eval_queries"),
        "evaluation",
    ),
    Stage(
        "eval_pools",
        ("synthetic_queries", "faiss_index", "bm25_index", "units", "chunks", "modules"),
        "3",
        evaluation.stage_eval_pools,
        files("eval_pool", "eval_report", "eval_plot"),
        "evaluation",
    ),
    Stage(
        "duckdb_catalog",
        (
            "repo_manifest",
            "scip_occurrences",
            "ast_nodes",
            "cst_nodes",
            "modules",
            "symbol_edges",
            "chunks",
            "units",
            "faiss_idmap",
            "bm25_index",
            "eval_pools",
        ),
        "2",  # 2: the uri_modules macro, which the query API's join_modules calls
        catalog.stage_duckdb_catalog,
        files("catalog"),
        "catalog",
        frozenset({"duckdb"}),
    ),
    Stage(
        "published_index",
        ("duckdb_catalog", "faiss_index"),
        "2",
        publish.stage_published_index,
        files(),
        "publish",
    ),
)

STAGE_BY_NAME = {stage.name: stage for stage in STAGES}


def run_named(ctx: BuildContext, name: str) -> StageResult:
    """Run the stage called ``name`` behind its gate; return its result.

    Raises ``KeyError`` for a name that is not in the table.
    """
    stage = STAGE_BY_NAME[name]
    return stage.run(ctx, stage)


def results_if_current(ctx: BuildContext) -> list[StageResult] | None:
    """Return every stage's result in build order when no stage would run, else None.

    Each stage is gated exactly as in a build (its fingerprint and intact outputs, see
    ``core.stamps``) but builds nothing: the first stale stage ends the probe, and so does
    a gate's user-facing error (``NothingIndexableError`` for a tree without indexable
    files...), which the build then reports as that stage's failure. Scanning the work
    tree (``repo_manifest``) is the real cost.
    """
    results = []
    with probing():
        for stage in STAGES:
            try:
                results.append(stage.run(ctx, stage))
            except (StageIsStale, CodeintelError):
                return None
    return results
