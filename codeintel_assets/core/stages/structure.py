"""Structure stages: SCIP index and tables, AST and CST nodes, modules, the symbol graph.

User-supplied artifacts (``index.scip``/``index.scip.json``, ``modules.jsonl``,
``symbol_graph.json`` in the repository's registry entry) are validated and used
instead of deriving them. A failed or impossible scip-python run is recorded and
the SCIP tables are empty, so everything downstream still materializes.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from codeintel_assets.core import modules as modules_core
from codeintel_assets.core.checksums import (
    atomic_path,
    digests_checksum,
    table_checksum,
    table_digest,
    write_json_atomic,
    write_text_atomic,
    xxh64_bytes,
    xxh64_file,
    xxh64_json,
    xxh64_parts,
)
from codeintel_assets.core.context import BuildContext
from codeintel_assets.core.errors import BadInputError
from codeintel_assets.core.grammars import SYNTAX_LANGUAGES
from codeintel_assets.core.layout import ArtifactLayout
from codeintel_assets.core.manifest import language_of
from codeintel_assets.core.reuse import (
    FilePlan,
    Ledger,
    combined_signatures,
    ledger_diagnostics,
    manifest_hashes,
    manifest_signatures,
    merged_by_file,
    merged_rows,
    plan_files,
    stage_basis,
    upstream_ledger,
    write_ledger,
)
from codeintel_assets.core.schemas import (
    AST_NODES,
    CST_NODES,
    FILE_EDGES,
    MODULE_FILES,
    MODULES,
    SCIP_OCCURRENCES,
    SCIP_SYMBOLS,
    SYMBOL_EDGES,
    SYNTAX_SITES,
    ParquetStream,
    file_batches,
    parquet_stream,
    write_parquet,
)
from codeintel_assets.core.scip import Index, decode_scip_file
from codeintel_assets.core.scip.incremental import (
    read_written_index,
    scip_job,
    update_scip_index,
)
from codeintel_assets.core.scip.tables import (
    occurrence_batches,
    occurrences_table,
    repo_text_reader,
    symbols_table,
)
from codeintel_assets.core.stamps import (
    Stage,
    StageOutput,
    StageResult,
    read_stamp,
    run_stage,
    unchanged_outputs,
)
from codeintel_assets.core.symbols import (
    REFERENCE_COLUMNS,
    file_edges_table,
    read_symbol_graph_json,
    symbol_edges_of,
    symbol_graph_json,
    syntax_site_rows,
    syntax_sites_of,
)
from codeintel_assets.core.syntax import (
    Diagnostic,
    ast_nodes_table,
    cst_nodes_table,
    write_ast_nodes,
    write_cst_nodes,
)

_EXAMPLES = 20


def _diagnostics(diags: list[Diagnostic]) -> dict[str, Any]:
    return {
        "diagnostics": len(diags),
        "diagnostic_counts": dict(Counter(d.reason for d in diags)),
        "diagnostic_examples": [
            {"uri": d.uri, "reason": d.reason, "detail": d.detail} for d in diags[:_EXAMPLES]
        ],
    }


def _given_config(given: Path | None) -> dict[str, Any]:
    """Return the fingerprint config of a user-given artifact: its path and content checksum."""
    config: dict[str, Any] = {"given": str(given) if given else None}
    if given is not None:
        config["given_xxh64"] = xxh64_file(given) if given.is_file() else "missing"
    return config


def stage_scip_index(ctx: BuildContext, stage: Stage) -> StageResult:
    """`scip/index.scip` from scip-python (or the user's index), updated incrementally when
    only some files changed (``core/scip/incremental.py``). A failed run is recorded in
    metadata with its stderr tail and downstream assets get empty SCIP tables."""
    layout = ctx.layout.build
    given = Path(ctx.repo.scip_index) if ctx.repo.scip_index else None
    config = _given_config(given)
    job = None if given is not None else scip_job(ctx)
    if job is not None:
        # Another environment gives other symbols: the stage must run, and runs a full pass.
        config["python_env"] = job.environment.fingerprint()

    def build() -> StageOutput:
        if job is None:
            layout.scip_state.unlink(missing_ok=True)
            return _ingest_scip(given, set(_scip_uris(ctx)), layout)
        layout.scip_index_json.unlink(missing_ok=True)
        update = update_scip_index(job)
        facts = {
            "ok": update.ok,
            "seconds": round(update.seconds, 2),
            "python_files": len(job.files),
            **update.facts(),
            **job.budget.facts(),
            "python_env": job.environment.fingerprint(),
            "tree_version": _project_version(ctx),
            "reason": update.failure,
            "stderr_tail": update.stderr_tail,
            "source": "scip-python",
        }
        if not update.ok:
            # A stale index would describe another tree: downstream gets empty tables.
            layout.scip_index.unlink(missing_ok=True)
            layout.scip_state.unlink(missing_ok=True)
            failed = ["failed", stage.upstream(ctx.layout), update.failure]
            return StageOutput(xxh64_json(failed), facts)
        return StageOutput(
            xxh64_file(layout.scip_index),
            {**facts, "bytes": layout.scip_index.stat().st_size, "path": str(layout.scip_index)},
        )

    return run_stage(ctx, stage, config, build)


def _project_version(ctx: BuildContext) -> str:
    """Return the git commit of the tree, or its manifest checksum outside git (metadata
    only: symbols carry ``PROJECT_VERSION``)."""
    stamp = read_stamp(ctx.layout, "repo_manifest") or {}
    commit = stamp.get("metadata", {}).get("git_commit")
    return commit or (stamp.get("data_version") or "unversioned")[:16]


def _scip_uris(ctx: BuildContext, lang: str | None = None) -> list[str]:
    """Return the files SCIP may describe: the manifest's (of one language when ``lang``
    is given) and the empty files it skipped.

    An empty ``__init__.py`` has nothing to chunk, yet it makes its folder a package
    that imports resolve to; it is inside the repository and holds no text to leak.
    """
    build = ctx.layout.build
    manifest = pq.read_table(build.repo_manifest, columns=["uri", "lang"]).to_pylist()
    skips = pq.read_table(build.manifest_skips, columns=["uri", "reason"]).to_pylist()
    empty = [
        {"uri": s["uri"], "lang": language_of(s["uri"])} for s in skips if s["reason"] == "empty"
    ]
    return [row["uri"] for row in manifest + empty if lang is None or row["lang"] == lang]


def _within_manifest(index: Index, uris: set[str]) -> tuple[Index, list[str]]:
    """Return the index without documents outside ``uris``, and those documents' paths.

    Every table must describe only the manifest's files: an ingested index may name
    excluded files, files of another tree or paths like ``../../etc/passwd``.
    """
    dropped = [doc.relative_path for doc in index.documents if doc.relative_path not in uris]
    if not dropped:
        # Nothing to take out: the index itself, not a copy of every document.
        return index, dropped
    kept = Index()
    kept.metadata.CopyFrom(index.metadata)
    kept.external_symbols.extend(index.external_symbols)
    kept.documents.extend(doc for doc in index.documents if doc.relative_path in uris)
    return kept, dropped


def _edges_within(edges: pa.Table, uris: set[str]) -> tuple[pa.Table, int]:
    """Return the edges whose files (where given) are in ``uris``, and how many were not."""
    keep = [
        (src is None or src in uris) and (dst is None or dst in uris)
        for src, dst in zip(
            edges.column("src_uri").to_pylist(), edges.column("dst_uri").to_pylist(), strict=True
        )
    ]
    return edges.filter(pa.array(keep, type=pa.bool_())), keep.count(False)


def _ingest_scip(given: Path, uris: set[str], layout: ArtifactLayout) -> StageOutput:
    """Validate a user's SCIP file by decoding it, then copy it into the build.

    Raises ``BadInputError`` naming the file when it is missing, does not decode, has no
    documents (another JSON file, such as a symbol graph, given as ``--scip``) or none
    of its documents is a file of the manifest (an index of another tree).
    """
    if not given.is_file():
        raise BadInputError(f"{given}: SCIP index given in the registry does not exist")
    index = decode_scip_file(given)
    if not index.documents:
        raise BadInputError(f"{given}: not a SCIP index: it has no documents")
    _, outside = _within_manifest(index, uris)
    if len(outside) == len(index.documents):
        raise BadInputError(
            f"{given}: none of its {len(outside)} documents is a file of the repository's "
            f"manifest (first: {outside[0]!r}); is it an index of another tree?"
        )
    is_json = given.suffix == ".json"
    target = layout.scip_index_json if is_json else layout.scip_index
    (layout.scip_index if is_json else layout.scip_index_json).unlink(missing_ok=True)
    with atomic_path(target) as tmp:
        shutil.copyfile(given, tmp)
    return StageOutput(
        xxh64_file(target),
        {
            "ok": True,
            "source": f"ingested {given}",
            "documents": len(index.documents),
            "documents_outside_manifest": len(outside),
            "bytes": target.stat().st_size,
            "path": str(target),
        },
    )


def stage_scip_occurrences(ctx: BuildContext, stage: Stage) -> StageResult:
    """`scip/scip_occurrences.parquet` (0-based SCIP ranges) and `scip/scip_symbols.parquet`.
    Documents unchanged since the previous build (the same bytes, of the same file) keep
    their rows (``_occurrence_plan``); only the others are converted."""
    layout = ctx.layout.build

    def build() -> StageOutput:
        source = next((p for p in (layout.scip_index, layout.scip_index_json) if p.exists()), None)
        facts: dict[str, Any] = {"source": str(source) if source else None}
        index = None
        if source is None:
            facts["note"] = "no SCIP index (see scip_index's metadata): tables are empty"
        else:
            try:
                index = (
                    read_written_index(source, layout.scip_state)
                    if source == layout.scip_index
                    else decode_scip_file(source)
                )
            except BadInputError as exc:
                facts["scip_error"] = str(exc)
        if index is not None:
            index, outside = _within_manifest(index, set(_scip_uris(ctx)))
            facts["documents_outside_manifest"] = len(outside)
            facts["documents_outside_manifest_examples"] = outside[:_EXAMPLES]
            facts["documents"] = len(index.documents)
        plan = _occurrence_plan(ctx, stage, index or Index())
        previous_symbols = pq.read_table(layout.scip_symbols) if plan.reused else None
        with parquet_stream(layout.scip_occurrences, SCIP_OCCURRENCES) as occurrences:
            if index is not None:
                _write_occurrences(ctx, plan, index, occurrences)
        symbols = (
            symbols_table(index, previous_symbols, plan.reused)
            if index is not None
            else SCIP_SYMBOLS.empty_table()
        )
        write_parquet(symbols, layout.scip_symbols, SCIP_SYMBOLS)
        write_ledger(plan.ledger(), layout.scip_occurrences_ledger, plan.basis)
        definitions = _count_equal(layout.scip_occurrences, "role", "def")
        return StageOutput(
            digests_checksum(occurrences.digest, table_digest(symbols)),
            {
                **facts,
                **plan.metadata(),
                "documents_converted": len(plan.process),
                "rows": occurrences.rows,
                "symbols": symbols.num_rows,
                "definitions": definitions,
                "references": occurrences.rows - definitions,
                "path": str(layout.scip_occurrences),
            },
        )

    return run_stage(ctx, stage, {}, build)


def _occurrence_plan(ctx: BuildContext, stage: Stage, index: Index) -> FilePlan:
    """Return which documents of ``index`` keep their rows of the previous build.

    A document's signature is its serialized bytes and its file's content hash (offsets are
    converted to code points with the file's text). Rows are kept only when the documents
    are in strictly ascending path order, the order a clean build writes them in (every
    index scip-python makes here is; an ingested one may not be).
    """
    manifest = pq.read_table(ctx.layout.build.repo_manifest, columns=["uri", "lang", "xxh64"])
    content = manifest_hashes(manifest)
    paths = [doc.relative_path for doc in index.documents]
    signatures: dict[str, str] = {}
    for doc in index.documents:
        path = doc.relative_path
        signature = xxh64_parts(
            [xxh64_bytes(doc.SerializeToString(deterministic=True)), content.get(path, "-")]
        )
        # An ingested index may hold a path twice: its signature is then of both documents
        # (symbol_edges keeps a file's edges by it).
        signatures[path] = (
            xxh64_parts([signatures[path], signature]) if path in signatures else signature
        )
    in_order = all(a < b for a, b in pairwise(paths))
    return plan_files(
        ctx.layout,
        stage,
        ctx.layout.build.scip_occurrences_ledger,
        stage_basis(stage, {}),
        signatures,
        enabled=ctx.reuse_files and in_order,
    )


def _write_occurrences(ctx: BuildContext, plan: FilePlan, index: Index, out: ParquetStream) -> None:
    """Write the occurrences of ``index``: the previous rows of ``plan.reused`` documents
    and the converted rows of the others, in document order."""
    read_text = repo_text_reader(ctx.repo.root)
    if not plan.reused:
        # Document by document: all occurrences as Python values would not fit.
        for batch in occurrence_batches(index, read_text):
            out.write(batch)
        return
    changed = Index()
    changed.documents.extend(doc for doc in index.documents if doc.relative_path not in plan.reused)
    new = occurrences_table(changed, read_text)
    previous = pq.read_table(ctx.layout.build.scip_occurrences)
    out.write(merged_by_file(previous, new, plan.reused))


def _definitions_and_uris(occurrences: Path) -> tuple[pa.Table, list[str]]:
    """Return the ``def`` rows (symbol, uri) of a ``scip_occurrences`` file in its order,
    and its sorted uris, reading it row group by row group."""
    parts, uris = [], set()
    columns = ["symbol", "uri", "role"]
    for batch in pq.ParquetFile(occurrences).iter_batches(columns=columns):
        parts.append(batch.filter(pc.equal(batch["role"], "def")).select(["symbol", "uri"]))
        uris.update(pc.unique(batch["uri"]).to_pylist())
    schema = pa.schema([SCIP_OCCURRENCES.field("symbol"), SCIP_OCCURRENCES.field("uri")])
    return pa.Table.from_batches(parts, schema=schema), sorted(uris)


def _count_equal(path: Path, column: str, value: str) -> int:
    """Return how many rows of a Parquet table hold ``value`` in ``column``, row group by
    row group."""
    batches = pq.ParquetFile(path).iter_batches(columns=[column])
    return sum(pc.sum(pc.equal(batch[column], value)).as_py() or 0 for batch in batches)


def stage_ast_nodes(ctx: BuildContext, stage: Stage) -> StageResult:
    """`ast/ast_nodes.parquet`: Python `ast` nodes; files that do not parse are counted.
    Unchanged files' rows come from the previous build (``core.reuse``)."""
    layout = ctx.layout.build

    def build() -> StageOutput:
        def python(files: Iterable[tuple[str, str, bytes]]) -> Iterator[tuple[str, bytes]]:
            return ((uri, data) for uri, _, data in files)

        stream, diags, plan = _node_table(
            ctx,
            stage,
            PYTHON,
            (layout.ast_nodes, layout.ast_ledger),
            AST_NODES,
            lambda files: ast_nodes_table(ctx.repo.name, python(files)),
            lambda files, out: write_ast_nodes(ctx.repo.name, python(files), out),
        )
        return StageOutput(
            stream.checksum,
            {
                "rows": stream.rows,
                **plan.metadata(),
                **_diagnostics(diags),
                "path": str(layout.ast_nodes),
            },
        )

    return run_stage(ctx, stage, {}, build)


def stage_cst_nodes(ctx: BuildContext, stage: Stage) -> StageResult:
    """`cst/cst_nodes.parquet`: tree-sitter nodes of Python, JavaScript and TypeScript files,
    with comments, tokens and ERROR nodes. Unchanged files' rows come from the previous
    build (``core.reuse``)."""
    layout = ctx.layout.build

    def build() -> StageOutput:
        stream, diags, plan = _node_table(
            ctx,
            stage,
            SYNTAX_LANGUAGES,
            (layout.cst_nodes, layout.cst_ledger),
            CST_NODES,
            lambda files: cst_nodes_table(ctx.repo.name, files),
            lambda files, out: write_cst_nodes(ctx.repo.name, files, out),
        )
        error_nodes = _count_equal(layout.cst_nodes, "kind", "ERROR")
        return StageOutput(
            stream.checksum,
            {
                "rows": stream.rows,
                "error_nodes": error_nodes,
                **plan.metadata(),
                **_diagnostics(diags),
                "path": str(layout.cst_nodes),
            },
        )

    return run_stage(ctx, stage, {}, build)


PYTHON = frozenset({"python"})
Files = Iterable[tuple[str, str, bytes]]  # (uri, lang, bytes)
# Returns the node rows of files and their diagnostics...
NodeParser = Callable[[Files], tuple[pa.Table, list[Diagnostic]]]
# ...or writes them to a stream and returns the diagnostics.
NodeWriter = Callable[[Files, ParquetStream], list[Diagnostic]]


def _node_table(
    ctx: BuildContext,
    stage: Stage,
    languages: frozenset[str],
    paths: tuple[Path, Path],
    schema: pa.Schema,
    parse: NodeParser,
    write: NodeWriter,
) -> tuple[ParquetStream, list[Diagnostic], FilePlan]:
    """Write a syntax node table and its ledger (``paths``), parsing only the files that
    changed since the previous build; return the finished stream (rows, checksum), every
    file's diagnostics and the reuse plan.

    With nothing to reuse (a first build) the rows go to the file as they are parsed
    (``write``); otherwise the processed files' rows (``parse``) merge with the reused ones,
    Arrow tables, not Python values.
    """
    target, ledger_path = paths
    manifest = pq.read_table(ctx.layout.build.repo_manifest, columns=["uri", "lang", "xxh64"])
    plan = plan_files(
        ctx.layout,
        stage,
        ledger_path,
        stage_basis(stage, {}),
        manifest_signatures(manifest, languages),
        manifest_hashes(manifest, languages),
        ctx.reuse_files,
    )
    files = plan.read(ctx.manifest_files(languages, plan.process))
    if plan.reused:
        new, diags = parse(files)
        table = merged_rows(plan, target, new, combine=False)
        with parquet_stream(target, schema) as stream:
            stream.write(table)
    else:
        with parquet_stream(target, schema) as stream:
            diags = write(files, stream)
    ledger = plan.ledger(diags)
    write_ledger(ledger, ledger_path, plan.basis)
    return stream, ledger_diagnostics(ledger), plan


def stage_modules(ctx: BuildContext, stage: Stage) -> StageResult:
    """`modules/modules.parquet` + `modules.jsonl`: size, cyclomatic complexity, doc coverage,
    import-graph degrees and PageRank centrality per module, from the manifest's files (parsed
    here with `ast`) and the chunk count of each module."""
    layout = ctx.layout.build
    given = Path(ctx.repo.modules_jsonl) if ctx.repo.modules_jsonl else None
    config = _given_config(given)

    def build() -> StageOutput:
        if given is not None:
            if not given.is_file():
                raise BadInputError(f"{given}: modules.jsonl given in the registry does not exist")
            table, diags, source = modules_core.read_modules_jsonl(given), [], f"ingested {given}"
            reuse = {}
        else:
            chunks = (
                pq.read_table(layout.chunks, columns=["uri"]) if layout.chunks.exists() else None
            )
            facts, diags, plan = _module_file_facts(ctx, stage, config)
            table, source = modules_core.modules_from_facts(facts, chunks), "derived"
            reuse = plan.metadata()
        write_parquet(table, layout.modules_parquet, MODULES)
        write_text_atomic(layout.modules_jsonl, modules_core.modules_jsonl(table))
        top = table.sort_by([("centrality", "descending")]).slice(0, 10)
        return StageOutput(
            table_checksum(table),
            {
                "rows": table.num_rows,
                "source": source,
                **reuse,
                "top_by_centrality": [
                    {"module_id": r["module_id"], "centrality": round(r["centrality"] or 0, 4)}
                    for r in top.select(["module_id", "centrality"]).to_pylist()
                ],
                **_diagnostics(diags),
                "path": str(layout.modules_parquet),
            },
        )

    return run_stage(ctx, stage, config, build)


def _module_file_facts(
    ctx: BuildContext, stage: Stage, config: dict[str, Any]
) -> tuple[pa.Table, list[Diagnostic], FilePlan]:
    """Write `modules/module_files.parquet`, parsing only the files that changed since the
    previous build; return it, every file's diagnostics and the reuse plan."""
    layout = ctx.layout.build
    manifest = pq.read_table(layout.repo_manifest, columns=["uri", "lang", "xxh64"])
    plan = plan_files(
        ctx.layout,
        stage,
        layout.modules_ledger,
        stage_basis(stage, config),
        manifest_signatures(manifest),
        manifest_hashes(manifest),
        ctx.reuse_files,
    )
    new, diags = modules_core.module_file_facts(plan.read(ctx.manifest_files(uris=plan.process)))
    facts = merged_rows(plan, layout.module_files, new)
    ledger = plan.ledger(diags)
    write_parquet(facts, layout.module_files, MODULE_FILES)
    write_ledger(ledger, layout.modules_ledger, plan.basis)
    return facts, ledger_diagnostics(ledger), plan


def _syntax_sites(
    ctx: BuildContext, stage: Stage, config: dict[str, Any], uris: list[str]
) -> tuple[pa.Table, pa.Table, FilePlan]:
    """Return the call sites and import lines (``SYNTAX_SITES``) of the Python files among
    ``uris`` that the manifest holds, parsing only the files that changed since the previous
    build, their ledger and the reuse plan; nothing is written yet (the plan of the file
    edges must see the stage's previous outputs intact). (An empty file the manifest skipped
    has no sites.)"""
    layout = ctx.layout.build
    manifest = pq.read_table(layout.repo_manifest, columns=["uri", "lang", "xxh64"])
    wanted = {uri for uri in uris if uri.endswith((".py", ".pyi"))}
    signatures = {u: s for u, s in manifest_signatures(manifest).items() if u in wanted}
    plan = plan_files(
        ctx.layout,
        stage,
        layout.symbol_edges_ledger,
        stage_basis(stage, config),
        signatures,
        manifest_hashes(manifest),
        ctx.reuse_files,
    )
    new, unparsed = syntax_site_rows(plan.read(ctx.manifest_files(uris=plan.process)))
    table = merged_rows(plan, layout.syntax_sites, new)
    ledger = plan.ledger(Diagnostic(uri, "syntax_error", "") for uri in unparsed)
    return table, ledger, plan


def _file_edges_plan(
    ctx: BuildContext, stage: Stage, config: dict[str, Any], sites: pa.Table
) -> FilePlan:
    """Return which files keep their edges of the previous build (``FILE_EDGES``).

    A file's edges are made from its SCIP document's rows and its call sites and import
    lines, so its signature is the document's (``scip_occurrences``' ledger: a signature
    changed elsewhere re-indexes a file whose bytes did not change) combined with its sites'
    (``sites``, this run's ledger of them: a file read while it changed is stale); the basis
    holds the stage's code and config and the occurrences' basis.
    """
    documents = upstream_ledger(ctx.layout.build.scip_occurrences_ledger)
    parsed = Ledger(stage_basis(stage, config), sites)
    return plan_files(
        ctx.layout,
        stage,
        ctx.layout.build.file_edges_ledger,
        stage_basis(stage, config, documents, parsed),
        combined_signatures(documents.signatures(), parsed.signatures()),
        enabled=ctx.reuse_files,
    )


def _counted_file_edges(occurrences: Path, uris: list[str], sites: pa.Table) -> pa.Table:
    """Return the ``FILE_EDGES`` of the files ``uris`` counted from their rows of the
    ``scip_occurrences`` file and their ``sites``, file by file: all occurrences as Python
    values would not fit at scale."""
    wanted = pa.array(uris, pa.string())
    found = syntax_sites_of(sites.filter(pc.is_in(sites["uri"], value_set=wanted)))
    parts = [FILE_EDGES.empty_table()]
    for table in file_batches(occurrences, REFERENCE_COLUMNS):
        counted = table.filter(pc.is_in(table["uri"], value_set=wanted))
        if counted.num_rows:
            parts.append(file_edges_table(counted, found.calls, found.import_lines))
    return pa.concat_tables(parts).combine_chunks()


def _derived_edges(
    ctx: BuildContext, stage: Stage, config: dict[str, Any]
) -> tuple[pa.Table, dict[str, Any]]:
    """Return the symbol graph of the SCIP tables and the facts of how it was made, writing
    the per-file parts kept between builds: call sites and import lines, and each file's
    reference edges (counted again only for files whose document or sites changed)."""
    layout = ctx.layout.build
    definitions, uris = _definitions_and_uris(layout.scip_occurrences)
    sites, sites_ledger, sites_plan = _syntax_sites(ctx, stage, config, uris)
    plan = _file_edges_plan(ctx, stage, config, sites_ledger)
    write_parquet(sites, layout.syntax_sites, SYNTAX_SITES)
    write_ledger(sites_ledger, layout.symbol_edges_ledger, sites_plan.basis)
    counted = _counted_file_edges(layout.scip_occurrences, plan.process, sites)
    file_edges = merged_rows(plan, layout.file_edges, counted)
    write_parquet(file_edges, layout.file_edges, FILE_EDGES)
    write_ledger(plan.ledger(), layout.file_edges_ledger, plan.basis)
    edges = symbol_edges_of(file_edges, pq.read_table(layout.scip_symbols), definitions)
    facts = {
        "source": "derived",
        "unparsed_files": len(ledger_diagnostics(sites_ledger)),
        **sites_plan.metadata(),
        **{f"edges_{key}": value for key, value in plan.metadata().items()},
    }
    return edges, facts


def stage_symbol_edges(ctx: BuildContext, stage: Stage) -> StageResult:
    """`symbol_graph/symbol_edges.parquet` + `symbol_graph.json`: call, reference, import,
    inherits and implements edges between symbols, weighted by occurrence count. Unchanged
    files' call sites and import lines, and the reference edges of files whose SCIP document
    and sites are unchanged, come from the previous build (``core.reuse``)."""
    layout = ctx.layout.build
    given = Path(ctx.repo.symbol_graph_json) if ctx.repo.symbol_graph_json else None
    config = _given_config(given)

    def build() -> StageOutput:
        if given is not None:
            if not given.is_file():
                raise BadInputError(
                    f"{given}: symbol_graph.json given in the registry does not exist"
                )
            edges, outside = _edges_within(read_symbol_graph_json(given), set(_scip_uris(ctx)))
            # What a derived graph kept per file would describe another build.
            kept = (layout.syntax_sites, layout.symbol_edges_ledger)
            for path in (*kept, layout.file_edges, layout.file_edges_ledger):
                path.unlink(missing_ok=True)
            facts = {"source": f"ingested {given}", "edges_outside_manifest": outside}
        else:
            edges, facts = _derived_edges(ctx, stage, config)
        checksum = table_checksum(edges)
        # An edit inside a function body often leaves the graph as it was: keep its files.
        graph_files = (layout.symbol_edges, layout.symbol_graph_json)
        facts["graph_rewritten"] = not unchanged_outputs(ctx.layout, stage, checksum, graph_files)
        if facts["graph_rewritten"]:
            write_parquet(edges, layout.symbol_edges, SYMBOL_EDGES)
            write_json_atomic(layout.symbol_graph_json, symbol_graph_json(edges), compact=True)
        heaviest = edges.sort_by([("weight", "descending")]).slice(0, 10).to_pylist()
        by_kind = Counter()
        for kind, weight in zip(
            edges.column("edge").to_pylist(), edges.column("weight").to_pylist(), strict=True
        ):
            by_kind[kind] += weight
        return StageOutput(
            checksum,
            {
                **facts,
                "rows": edges.num_rows,
                "weight_by_edge": dict(by_kind),
                "heaviest": heaviest,
                "path": str(layout.symbol_edges),
            },
        )

    return run_stage(ctx, stage, config, build)
