"""indexctl: the command line. Parses arguments and calls the same functions the assets use.

User errors (``CodeintelError``) print one line and exit 1, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from codeintel_assets.core import lifecycle, registry
from codeintel_assets.core.errors import CodeintelError
from codeintel_assets.core.fusion import SEARCH_MODES
from codeintel_assets.core.layout import RepoLayout, data_root

SERVER_ENV = "CODEINTEL_SERVER"
TOKEN_ENV = "CODEINTEL_TOKEN"

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run indexctl; return the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        return args.handler(args) or 0
    except CodeintelError as exc:
        err.print(f"indexctl: error: {exc}", markup=False)
        return 1
    except KeyboardInterrupt:
        err.print("indexctl: interrupted", markup=False)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="indexctl", description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(title="commands", metavar="COMMAND")

    repo = verbs.add_parser("repo", help="register and list repositories").add_subparsers(
        title="repo commands", metavar="VERB"
    )
    add = repo.add_parser("add", help="register a repository (one partition)")
    add.add_argument("name")
    add.add_argument("path")
    add.add_argument("--include", action="append", default=[], metavar="GLOB")
    add.add_argument("--exclude", action="append", default=[], metavar="GLOB")
    add.add_argument("--max-file-bytes", type=int, default=1 << 20)
    add.add_argument("--scip", help="an existing index.scip or index.scip.json to ingest")
    add.add_argument("--modules-jsonl", help="an existing modules.jsonl to ingest")
    add.add_argument("--symbol-graph", help="an existing symbol_graph.json to ingest")
    add.add_argument(
        "--python-env",
        metavar="VENV|minimal",
        help="the virtualenv scip-python resolves third-party imports against "
        "(default: the repository's .venv or venv, else none)",
    )
    add.add_argument(
        "--replace", action="store_true", help="change the settings of a registered name"
    )
    add.set_defaults(handler=cmd_repo_add)
    lst = repo.add_parser("list", help="list repositories")
    lst.add_argument("--format", choices=["table", "json"], default="table")
    lst.set_defaults(handler=cmd_repo_list)
    repo.add_parser("default", help="print the default repository's name").set_defaults(
        handler=cmd_repo_default
    )
    repo.add_parser(
        "sync", help="add every repository as a partition of the Dagster instance"
    ).set_defaults(handler=cmd_repo_sync)

    build = verbs.add_parser("build", help="materialize the whole graph of a repository")
    build.add_argument("name", nargs="?", help="repository (default: this checkout)")
    build.add_argument(
        "--embedder",
        choices=["sentence-transformers", "hashing"],
        default="sentence-transformers",
        help="'hashing' is a fast stand-in for tests, not for real search",
    )
    build.add_argument(
        "--backend",
        default=None,
        help="what runs the embedding model: torch, onnx, openvino, or onnx-int8 (int8 "
        "weights, opt-in); recorded in the build, search embeds queries the same way",
    )
    build.add_argument(
        "-v", "--verbose", action="store_true", help="show the Dagster log of the run"
    )
    build.add_argument(
        "--json",
        action="store_true",
        help="print the report as JSON: every stage's ran, seconds and metadata",
    )
    build.set_defaults(handler=cmd_build)

    search = verbs.add_parser("search", help="search the published index")
    search.add_argument("query")
    _repo_option(search)
    search.add_argument("--k", type=int, default=10)
    search.add_argument("--lang", action="append", default=[], metavar="LANG")
    search.add_argument("--include", action="append", default=[], metavar="GLOB")
    search.add_argument("--exclude", action="append", default=[], metavar="GLOB")
    search.add_argument("--mode", choices=SEARCH_MODES, default=SEARCH_MODES[0])
    search.add_argument(
        "--explain", action="store_true", help="show each channel's rank and score, symbols, module"
    )
    search.add_argument("--format", choices=["table", "json"], default="table")
    search.add_argument(
        "--kind",
        choices=["code", "docs", "all"],
        default="code",
        help="what files results come from: code (default), documentation, or all",
    )
    search.add_argument(
        "--module", default=None, metavar="MODULE_ID", help="only files of this module (pkg.a)"
    )
    search.add_argument(
        "--max-tokens",
        type=int,
        default=4000,
        help="bound on the excerpt text of all results together (default 4000)",
    )
    search.add_argument(
        "--server",
        default=os.environ.get(SERVER_ENV),
        metavar="URL",
        help=f"ask a running `indexctl serve` (default: ${SERVER_ENV}), not the index files",
    )
    search.set_defaults(handler=cmd_search)

    serve = verbs.add_parser("serve", help="serve the tools over HTTP (JSON API, MCP, search page)")
    _served_repos_option(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV),
        help=f"bearer token clients must send (default: ${TOKEN_ENV}); required off loopback",
    )
    serve.set_defaults(handler=cmd_serve)
    mcp_cmd = verbs.add_parser("mcp", help="serve the tools over MCP on stdin/stdout")
    _served_repos_option(mcp_cmd)
    mcp_cmd.set_defaults(handler=cmd_mcp)

    tune = verbs.add_parser("tune", help="tune the FAISS knobs against exact search and lock them")
    _repo_option(tune)
    tune.add_argument("--index", help="a FAISS index file (instead of --repo)")
    tune.add_argument("--target-recall", type=float, help="default: the build's target")
    tune.add_argument("--k", type=int, default=10)
    tune.add_argument("--queries", type=int, default=200, help="sampled query vectors")
    tune.add_argument("--nprobe", type=int, help="lock this nprobe (IVF indexes)")
    tune.add_argument("--ef-search", type=int, help="lock this efSearch (HNSW indexes)")
    tune.add_argument(
        "--k-factor", type=float, help="read the ANN list k·k_factor deep when measuring recall"
    )
    tune.set_defaults(handler=cmd_tune)

    evaluation = verbs.add_parser("eval", help="retrieval evaluation").add_subparsers(
        title="eval commands", metavar="VERB"
    )
    recall = evaluation.add_parser(
        "recall", help="evaluate the published version: ANN vs exact, channels vs positives"
    )
    _repo_option(recall)
    recall.add_argument("--duckdb", help="a catalog file (with --index, instead of --repo)")
    recall.add_argument("--index", help="a FAISS index file (with --duckdb, instead of --repo)")
    recall.add_argument("--queries", help="query vectors (.npy or Parquet); default: sampled")
    recall.add_argument("--k", type=int, default=10)
    recall.add_argument("--k-factor", type=float, default=2.0)
    recall.add_argument("--out", help="write the pool Parquet here")
    recall.add_argument("--format", choices=["markdown", "json"], default="markdown")
    recall.set_defaults(handler=cmd_eval_recall)
    write_pool = evaluation.add_parser("write-pool", help="convert a pool TSV to Parquet")
    write_pool.add_argument("--tsv", required=True)
    write_pool.add_argument("--out", required=True)
    write_pool.set_defaults(handler=cmd_eval_write_pool)

    for verb, handler, text in (
        ("versions", cmd_versions, "list published versions"),
        ("status", cmd_status, "catalog status of the published version"),
    ):
        cmd = verbs.add_parser(verb, help=text)
        _repo_option(cmd)
        cmd.add_argument("--format", choices=["table", "json"], default="table")
        cmd.set_defaults(handler=handler)

    stage = verbs.add_parser("stage", help="link the build into versions/<build_version>/")
    _repo_option(stage)
    stage.add_argument("--modules", help="a modules.jsonl to stage instead of the built one")
    stage.add_argument("--symbol-graph", help="a symbol_graph.json to stage instead")
    stage.add_argument("--scip", help="an index.scip or index.scip.json to stage instead")
    stage.add_argument("--ast", help="an ast_nodes.parquet to stage instead")
    stage.add_argument("--cst", help="a cst_nodes.parquet to stage instead")
    stage.set_defaults(handler=cmd_stage)
    publish = verbs.add_parser("publish", help="validate the build and flip `current` to it")
    _repo_option(publish)
    publish.set_defaults(handler=cmd_publish)
    rollback = verbs.add_parser("rollback", help="point `current` at an earlier version")
    _repo_option(rollback)
    rollback.add_argument("--to", help="build version (default: the one published before)")
    rollback.set_defaults(handler=cmd_rollback)
    faiss_cmd = verbs.add_parser("faiss", help="FAISS index tools").add_subparsers(
        title="faiss commands", metavar="VERB"
    )
    for export in (
        faiss_cmd.add_parser("export-idmap", help="write the index's row -> chunk id map"),
        verbs.add_parser("export-idmap", help="= faiss export-idmap"),
    ):
        _repo_option(export)
        export.add_argument("--index", help="a FAISS index file (instead of --repo)")
        export.add_argument("--out", help="Parquet file (default: the build's faiss_idmap.parquet)")
        export.add_argument("--duckdb", help="also load it into this catalog (faiss_idmap_mat)")
        export.set_defaults(handler=cmd_faiss_export_idmap)

    duck = verbs.add_parser("duckdb", help="DuckDB catalog tools").add_subparsers(
        title="duckdb commands", metavar="VERB"
    )
    refresh = duck.add_parser(
        "refresh-idmap-join", help="re-materialize faiss_idmap_mat if the idmap checksum changed"
    )
    _repo_option(refresh)
    refresh.add_argument("--db", help="a catalog file (with --idmap, instead of --repo)")
    refresh.add_argument("--idmap", help="a faiss_idmap.parquet (with --db)")
    refresh.add_argument("--format", choices=["text", "json"], default="text")
    refresh.set_defaults(handler=cmd_refresh_idmap_join)
    return parser


def _served_repos_option(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--repo",
        action="append",
        default=[],
        metavar="NAME",
        help="repository to serve (repeatable; default: every registered one)",
    )


def _repo_option(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--repo", help="repository name (default: this checkout)")


def _layout(name: str | None) -> RepoLayout:
    return RepoLayout(data_root(), registry.get_repo(name).name)


def _at_least_one(**options: int) -> None:
    """Raise ``CodeintelError`` for a count option below 1 (``--k 0`` means nothing)."""
    for name, value in options.items():
        if value < 1:
            flag = "--" + name.replace("_", "-")
            raise CodeintelError(f"{flag} must be at least 1 (got {value})")


def _print_json(value: Any) -> None:
    out.print(json.dumps(value, indent=2, default=str), markup=False)


def _file_form(args: argparse.Namespace, *files: str) -> bool:
    """Return True for the file-based form (any of ``files`` given), False for ``--repo``.

    Raises ``CodeintelError`` when both forms are given, or only some of ``files``.
    """
    given = [name for name in files if getattr(args, name) is not None]
    flags = " ".join(f"--{name.replace('_', '-')} F" for name in files)
    if given and args.repo is not None:
        raise CodeintelError(f"give either --repo or {flags}, not both")
    if given and len(given) != len(files):
        raise CodeintelError(f"the file form needs {flags} together")
    return bool(given)


def _output_file(value: str, flag: str = "--out") -> Path:
    """Return the path of an output file; its folder must exist (none is created: a typo
    in the folder should not silently create a new tree of folders)."""
    path = Path(value).expanduser()
    if not path.parent.is_dir():
        raise CodeintelError(f"{flag} {value}: folder {path.parent} does not exist")
    if path.is_dir():
        raise CodeintelError(f"{flag} {value}: is a folder, not a file")
    return path


def _check_ranges(args: argparse.Namespace) -> None:
    """Raise ``CodeintelError`` for an option outside its range (checked before any work)."""
    rules = (
        ("k", lambda v: v >= 1, "≥ 1"),
        ("k_factor", lambda v: v >= 1, "≥ 1"),
        ("target_recall", lambda v: 0 < v <= 1, "in (0, 1]"),
        ("nprobe", lambda v: v > 0, "> 0"),
        ("ef_search", lambda v: v > 0, "> 0"),
    )
    for name, valid, expected in rules:
        value = getattr(args, name, None)
        if value is not None and not valid(value):
            raise CodeintelError(f"--{name.replace('_', '-')} must be {expected}, got {value}")
    if isinstance(getattr(args, "queries", None), int) and args.queries < 1:
        raise CodeintelError(f"--queries must be ≥ 1, got {args.queries}")


def cmd_repo_add(args: argparse.Namespace) -> int:
    stored = registry.add_repo(
        registry.RepoConfig(
            name=args.name,
            path=args.path,
            include=args.include,
            exclude=args.exclude,
            max_file_bytes=args.max_file_bytes,
            scip_index=args.scip,
            modules_jsonl=args.modules_jsonl,
            symbol_graph_json=args.symbol_graph,
            python_env=args.python_env,
        ),
        replace=args.replace,
    )
    from codeintel_assets.runner import dagster_instance, ensure_partitions

    # Parallel registrations would race to create a fresh instance's SQLite storage.
    with registry.registry_lock():
        ensure_partitions(dagster_instance(), [stored.name])
    out.print(f"registered {stored.name} -> {stored.path}", markup=False)
    return 0


def cmd_repo_list(args: argparse.Namespace) -> int:
    repos = registry.list_repos()
    if args.format == "json":
        _print_json([vars(r) for r in repos])
        return 0
    table = Table("name", "path", "include", "exclude")
    for repo in repos:
        table.add_row(
            *_plain([repo.name, repo.path, ", ".join(repo.include), ", ".join(repo.exclude)])
        )
    out.print(table)
    return 0


def cmd_repo_default(args: argparse.Namespace) -> int:
    out.print(registry.default_repo().name, markup=False)
    return 0


def cmd_repo_sync(args: argparse.Namespace) -> int:
    from codeintel_assets.runner import dagster_instance, ensure_partitions

    names = [r.name for r in registry.list_repos()]
    ensure_partitions(dagster_instance(), names)
    for name in names:
        out.print(name, markup=False)
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from codeintel_assets.core.embedding import BACKENDS, DEFAULT_BACKEND
    from codeintel_assets.resources import CodeintelResource
    from codeintel_assets.runner import build_repository

    repo = registry.get_repo(args.name)
    if not repo.root.is_dir():
        raise CodeintelError(f"repository path {repo.root} of {repo.name!r} does not exist")
    backend = args.backend or DEFAULT_BACKEND
    if backend not in BACKENDS:
        raise CodeintelError(f"embedding backend {backend!r} is not one of {', '.join(BACKENDS)}")
    resource = CodeintelResource(embedder=args.embedder, backend=backend)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task(f"building {repo.name}", total=None)

        def on_step(step: str, finished: int, total: int) -> None:
            progress.update(task, description=f"building {repo.name}: {step} ({finished}/{total})")

        report = build_repository(
            repo.name,
            resource,
            on_step=on_step,
            log_level="DEBUG" if args.verbose else "CRITICAL",
        )
    if args.json:
        _print_json(_report_json(report))
    elif report.success or args.verbose:
        for summary in report.assets:
            out.print(_summary_line(summary), markup=False)
    for warning in report.warnings:
        err.print(f"indexctl: warning: {warning}", markup=False)
    if not report.success:
        # One line: the first failure is the cause; later steps only stopped because of it.
        first = report.failures[0] if report.failures else "no step failed, see the run log"
        more = f" (+{len(report.failures) - 1} more)" if len(report.failures) > 1 else ""
        hint = "" if args.verbose else "; -v shows the Dagster log"
        raise CodeintelError(f"build of {repo.name!r} failed at {first}{more}{hint}")
    if not args.json:
        version = lifecycle.current_version_or_none(_layout(repo.name))
        if not report.run_id:
            out.print("up to date: no stage was stale, no Dagster run", markup=False)
        out.print(f"published {repo.name} version {version}", markup=False)
    return 0


def _report_json(report: Any) -> dict[str, Any]:
    plain = (str, int, float, bool, list, dict, type(None))
    return {
        "success": report.success,
        "dagster_run_id": report.run_id or None,
        "failures": report.failures,
        "warnings": report.warnings,
        "probe_seconds": report.probe_seconds,
        "run_seconds": report.run_seconds,
        "step_seconds": report.step_seconds,
        "stages": [
            {
                "asset": s.asset,
                "ran": s.ran,
                "seconds": s.seconds,
                # Dagster's own values (the table schema) are left out: they are not JSON.
                "metadata": {k: v for k, v in s.metadata.items() if isinstance(v, plain)},
            }
            for s in report.assets
        ],
    }


def _summary_line(summary: Any) -> str:
    if summary.ran is None:
        return f"{summary.asset:<18} not materialized"
    state = "ran" if summary.ran else "skipped"
    rows = f"{summary.rows} rows" if summary.rows is not None else "-"
    line = f"{summary.asset:<18} {state:<8} {rows:<14} {summary.seconds or 0:.2f}s"
    if summary.ran and "peak_rss_mib" in summary.metadata:
        line += f"  peak {summary.metadata['peak_rss_mib']:.0f} MiB"
    if summary.asset == "chunks":
        # A skipped stage reports its stamp's old counts; this build embedded nothing.
        meta = summary.metadata if summary.ran else {}
        line += f"  ({meta.get('embedded', 0)} embedded, {meta.get('from_cache', 0)} from cache)"
    return line


def cmd_search(args: argparse.Namespace) -> int:
    if args.server:
        results = _search_server(args)
    else:
        results = _search_in_process(args)
    if args.format == "json":
        _print_json([r.to_dict() for r in results])
        return 0
    for r in results:
        name = f"{r.kind} {r.qualified_name}" if r.qualified_name else r.kind
        out.print(
            f"#{r.rank}  {r.score:.4f}  {r.uri}:{r.start_line}-{r.end_line}  {name}  "
            f"(matched lines {r.match_start_line}-{r.match_end_line})",
            markup=False,
            highlight=False,
        )
        if args.explain:
            channels = ", ".join(
                f"{channel} #{hit['rank']:.0f} ({hit['score']:.3f})"
                for channel, hit in r.channels.items()
            )
            names = [_short_symbol(s) for s in r.symbols if not s.endswith(")")][:4]
            out.print(
                f"    channels: {channels or '-'}; module: {r.module_id or '-'}; "
                f"symbols: {', '.join(names) or '-'}",
                markup=False,
                highlight=False,
            )
        for line in r.excerpt.splitlines():
            out.print(f"    {line}", markup=False, highlight=False, soft_wrap=True)
        out.print("", markup=False)
    return 0


def _plain(cells: list[str]) -> list[Text]:
    """Return table cells as plain text: code and paths may hold ``[...]`` that rich would
    read as markup (and crash on, or silently drop)."""
    return [Text(cell) for cell in cells]


def _search_in_process(args: argparse.Namespace) -> list[Any]:
    from codeintel_assets.core.catalog import ChunkFilter
    from codeintel_assets.core.search import CodeIndex, recorded_embedder, use_query_threads
    from codeintel_assets.core.service.handles import LazyEmbedder, index_dimension

    use_query_threads()
    filters = None
    if args.lang or args.include or args.exclude:
        filters = ChunkFilter(
            include_globs=args.include, exclude_globs=args.exclude, languages=args.lang
        )
    layout = lifecycle.current_layout(_layout(args.repo))
    manifest = json.loads(layout.version_manifest.read_text(encoding="utf-8"))
    # The model loads only if the search needs a query vector (not for --mode bm25).
    embedder = LazyEmbedder(recorded_embedder(manifest), index_dimension(layout))
    with CodeIndex(layout, manifest, embedder) as index:
        results = index.search(
            args.query,
            k=args.k,
            filters=filters,
            mode=args.mode,
            kind=args.kind,
            max_tokens=args.max_tokens,
            module=args.module,
        )
        for note in index.notes:
            err.print(f"indexctl: note: {note}", markup=False)
    return results


def _search_server(args: argparse.Namespace) -> list[Any]:
    from codeintel_assets.server.client import search_remote

    answer = search_remote(
        args.server,
        {
            "query": args.query,
            "repo": args.repo,
            "k": args.k,
            "mode": args.mode,
            "lang": args.lang,
            "include": args.include,
            "exclude": args.exclude,
            "kind": args.kind,
            "max_tokens": args.max_tokens,
            **({"module": args.module} if args.module else {}),
        },
        token=os.environ.get(TOKEN_ENV),
    )
    for note in answer["notes"]:
        err.print(f"indexctl: note: {note}", markup=False)
    return answer["hits"]


def cmd_serve(args: argparse.Namespace) -> int:
    from codeintel_assets.core.search import use_query_threads
    from codeintel_assets.core.service.handles import HandleCache
    from codeintel_assets.server.http_api import require_token_for, serve

    require_token_for(args.host, args.token)
    use_query_threads()
    cache = HandleCache(args.repo or None)
    err.print(
        f"indexctl: serving {', '.join(cache.repos)} on http://{args.host}:{args.port} "
        "(/, /api, /mcp, /metrics, /healthz)",
        markup=False,
    )
    serve(cache, args.host, args.port, args.token)
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    from codeintel_assets.core.search import use_query_threads
    from codeintel_assets.core.service.handles import HandleCache
    from codeintel_assets.server.mcp_server import run_stdio

    use_query_threads()
    run_stdio(HandleCache(args.repo or None))
    return 0


def _short_symbol(symbol: str) -> str:
    """Return the last descriptors of a SCIP symbol (``Class#method().``) for display."""
    return symbol.rsplit("/", 1)[-1]


def cmd_tune(args: argparse.Namespace) -> int:
    from codeintel_assets.core import tuning

    _check_ranges(args)
    if args.target_recall is None:
        args.target_recall = tuning.TARGET_RECALL
    explicit = any(v is not None for v in (args.nprobe, args.ef_search, args.k_factor))
    if _file_form(args, "index") or explicit:
        index_path = Path(args.index) if args.index else _layout(args.repo).build.faiss_index()
        audit = tuning.lock_index_file(
            index_path,
            nprobe=args.nprobe,
            ef_search=args.ef_search,
            k_factor=args.k_factor,
            k=args.k,
            queries=args.queries,
            target_recall=args.target_recall,
        )
    else:
        audit = _retune_build(args)
    depth = "" if audit["k_factor"] == 1 else f" in ANN top {math.ceil(args.k * audit['k_factor'])}"
    for point in audit["sweep"]:
        out.print(
            f"{point['knobs'] or '(exact)':<16} recall@{args.k}{depth} {point['recall']:.4f}  "
            f"{point['latency_ms']:.3f} ms/query",
            markup=False,
        )
    state = "meets" if audit["target_met"] else "does NOT meet"
    out.print(
        f"locked {audit['factory']} {audit['knobs'] or '(no knobs)'}: recall "
        f"{audit['measured_recall']:.4f} {state} target {args.target_recall}",
        markup=False,
    )
    if explicit:
        # An operator's lock is kept as given; the blocking recall check judges it at publish.
        return 0
    return 0 if audit["target_met"] else 1


def _retune_build(args: argparse.Namespace) -> dict[str, Any]:
    """Re-run the build's sweep with real text queries (``tune --repo`` without knobs)."""
    from codeintel_assets.core.embedding import EmbedderSpec, load_embedder
    from codeintel_assets.core.faiss_build import retune
    from codeintel_assets.core.stamps import read_stamp

    layout = _layout(args.repo)
    chunk_stamp = read_stamp(layout, "chunks")
    if chunk_stamp is None:
        raise CodeintelError(f"repository {layout.name!r} has no chunks yet; build it first")
    spec = EmbedderSpec(**chunk_stamp["metadata"]["embedder"])
    return retune(layout.build, load_embedder(spec), args.target_recall, args.k, args.queries)


def cmd_eval_recall(args: argparse.Namespace) -> int:
    from codeintel_assets.core.schemas import EVAL_POOL, write_parquet

    _check_ranges(args)
    target = _output_file(args.out, "--out") if args.out else None
    if _file_form(args, "duckdb", "index"):
        from codeintel_assets.core.ann_recall import evaluate_index_file

        result = evaluate_index_file(
            Path(args.index),
            Path(args.duckdb),
            Path(args.queries) if args.queries else None,
            k=args.k,
            k_factor=args.k_factor,
        )
    elif args.queries is not None:
        raise CodeintelError("--queries needs the file form (--duckdb F --index F)")
    else:
        result = _evaluate_published(args)
    if target is not None:
        write_parquet(result.pool, target, EVAL_POOL)
    if args.format == "json":
        _print_json(result.metrics)
    else:
        out.print(result.report_markdown, markup=False)
    return 0


def _evaluate_published(args: argparse.Namespace) -> Any:
    """Evaluate the published version of ``--repo`` (every channel against the positives)."""
    from codeintel_assets.core.context import BuildContext
    from codeintel_assets.core.evaluation import evaluate_layout
    from codeintel_assets.core.search import recorded_embedder

    layout = lifecycle.current_layout(_layout(args.repo))
    manifest = lifecycle.read_version_manifest(layout)
    ctx = BuildContext.for_repo(args.repo, embedder=recorded_embedder(manifest))
    return evaluate_layout(ctx, layout, k=args.k, k_factor=args.k_factor)


def cmd_eval_write_pool(args: argparse.Namespace) -> int:
    from codeintel_assets.core.evaluation import read_pool_tsv
    from codeintel_assets.core.schemas import EVAL_POOL, write_parquet

    target = _output_file(args.out)
    pool = read_pool_tsv(Path(args.tsv))
    write_parquet(pool, target, EVAL_POOL)
    out.print(f"wrote {pool.num_rows} pool rows to {args.out}", markup=False)
    return 0


def cmd_versions(args: argparse.Namespace) -> int:
    rows = lifecycle.list_versions(_layout(args.repo))
    if args.format == "json":
        _print_json(rows)
        return 0
    table = Table("build_version", "published_at", "current", "chunks")
    for row in rows:
        table.add_row(
            *_plain(
                [
                    row["build_version"],
                    str(row["published_at"]),
                    "*" if row["current"] else "",
                    str(row["chunks"]),
                ]
            )
        )
    out.print(table)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from codeintel_assets.core.catalog import catalog_status

    layout = lifecycle.current_layout(_layout(args.repo))
    status = catalog_status(layout.catalog)
    if args.format == "json":
        _print_json({"build_version": layout.root.name, **status.to_dict()})
    else:
        out.print(f"version {layout.root.name}", markup=False)
        out.print(status.to_markdown(), markup=False)
    return 0


def cmd_stage(args: argparse.Namespace) -> int:
    from codeintel_assets.core.staged_artifacts import GivenArtifacts, stage_given

    given = GivenArtifacts(
        **{
            name: Path(value) if value else None
            for name in ("modules", "symbol_graph", "scip", "ast", "cst")
            for value in [getattr(args, name)]
        }
    )
    repo = registry.get_repo(args.repo)
    staged = stage_given(_layout(repo.name), repo.root, given)
    out.print(
        f"staged {staged.build_version} at {staged.layout.root}"
        f"{' (already complete)' if staged.reused else ''}",
        markup=False,
    )
    for table, rows in staged.rows.items():
        out.print(f"  {table}: {rows} rows from the given file", markup=False)
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from codeintel_assets.core.context import BuildContext

    staged = lifecycle.staged_version_or_none(_layout(args.repo))
    outcome = lifecycle.publish_build(BuildContext.for_repo(args.repo), staged=staged)
    out.print(f"published {outcome.build_version} (previous: {outcome.previous})", markup=False)
    return 0


def cmd_faiss_export_idmap(args: argparse.Namespace) -> int:
    from codeintel_assets.core import faiss_store
    from codeintel_assets.core.catalog import CatalogReader, refresh_idmap_file

    if _file_form(args, "index"):
        if args.out is None:
            raise CodeintelError("--index needs --out F (where to write the id map)")
        index_path = Path(args.index)
    else:
        index_path = _layout(args.repo).build.faiss_index()
    target = _output_file(args.out, "--out") if args.out else _layout(args.repo).build.faiss_idmap
    if args.duckdb:
        # Checked before anything is written: an id map of another index would not join.
        _, ids = faiss_store.read_keyed_index(index_path)
        with CatalogReader(Path(args.duckdb)) as reader:
            chunk_ids = reader.chunk_ids()
        faiss_store.check_ids_match(ids, chunk_ids, f"index {index_path}", Path(args.duckdb))
    table = faiss_store.export_idmap(index_path, target)
    out.print(f"wrote {table.num_rows} rows to {target}", markup=False)
    if args.duckdb:
        _print_refresh(refresh_idmap_file(Path(args.duckdb), target), "text")
    return 0


def cmd_refresh_idmap_join(args: argparse.Namespace) -> int:
    from codeintel_assets.core import faiss_store
    from codeintel_assets.core.catalog import CatalogReader, read_idmap_ids, refresh_idmap_file

    if _file_form(args, "db", "idmap"):
        catalog, idmap = Path(args.db), Path(args.idmap)
        # A file from elsewhere may map another index: it must join this catalog's chunks.
        with CatalogReader(catalog) as reader:
            chunk_ids = reader.chunk_ids()
        faiss_store.check_ids_match(read_idmap_ids(idmap), chunk_ids, f"id map {idmap}", catalog)
    else:
        build = _layout(args.repo).build
        catalog, idmap = build.catalog, build.faiss_idmap
    _print_refresh(refresh_idmap_file(catalog, idmap), args.format)
    return 0


def _print_refresh(refresh: Any, fmt: str) -> None:
    if fmt == "json":
        _print_json(vars(refresh) | {"state": "refreshed" if refresh.refreshed else "unchanged"})
        return
    state = "refreshed" if refresh.refreshed else "unchanged (idmap checksum unchanged)"
    out.print(
        f"faiss_idmap_mat {state}: {refresh.rows} rows, checksum {refresh.checksum}", markup=False
    )


def cmd_rollback(args: argparse.Namespace) -> int:
    previous, current = lifecycle.rollback(_layout(args.repo), args.to)
    out.print(f"current: {previous} -> {current}", markup=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
