"""indexctl: the command line. Parses arguments and calls the same functions the assets use.

User errors (``CodeintelError``) print one line and exit 1, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from codeintel_assets.core import lifecycle, registry
from codeintel_assets.core.embedding import EmbedderSpec
from codeintel_assets.core.errors import CodeintelError
from codeintel_assets.core.layout import RepoLayout, data_root

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
        "-v", "--verbose", action="store_true", help="show the Dagster log of the run"
    )
    build.set_defaults(handler=cmd_build)

    search = verbs.add_parser("search", help="search the published index")
    search.add_argument("query")
    _repo_option(search)
    search.add_argument("--k", type=int, default=10)
    search.add_argument("--lang", action="append", default=[], metavar="LANG")
    search.add_argument("--include", action="append", default=[], metavar="GLOB")
    search.add_argument("--exclude", action="append", default=[], metavar="GLOB")
    search.add_argument("--mode", choices=["hybrid", "dense", "bm25"], default="hybrid")
    search.add_argument(
        "--explain", action="store_true", help="show each channel's rank and score, symbols, module"
    )
    search.add_argument("--format", choices=["table", "json"], default="table")
    search.set_defaults(handler=cmd_search)

    tune = verbs.add_parser("tune", help="tune the FAISS knobs against exact search and lock them")
    _repo_option(tune)
    tune.add_argument("--target-recall", type=float, default=0.95)
    tune.add_argument("--k", type=int, default=10)
    tune.add_argument("--queries", type=int, default=200, help="sampled query vectors")
    tune.set_defaults(handler=cmd_tune)

    evaluation = verbs.add_parser("eval", help="retrieval evaluation").add_subparsers(
        title="eval commands", metavar="VERB"
    )
    recall = evaluation.add_parser(
        "recall", help="evaluate the published version: ANN vs exact, channels vs positives"
    )
    _repo_option(recall)
    recall.add_argument("--k", type=int, default=10)
    recall.add_argument("--k-factor", type=int, default=2)
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
    export = faiss_cmd.add_parser("export-idmap", help="write the index's row -> chunk id map")
    _repo_option(export)
    export.add_argument("--out", help="Parquet file (default: the build's faiss_idmap.parquet)")
    export.set_defaults(handler=cmd_faiss_export_idmap)

    duck = verbs.add_parser("duckdb", help="DuckDB catalog tools").add_subparsers(
        title="duckdb commands", metavar="VERB"
    )
    refresh = duck.add_parser(
        "refresh-idmap-join", help="re-materialize faiss_idmap_mat if the idmap checksum changed"
    )
    _repo_option(refresh)
    refresh.set_defaults(handler=cmd_refresh_idmap_join)
    return parser


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


def _output_file(given: str) -> Path:
    """Return an ``--out`` path whose folder exists; raise ``CodeintelError`` otherwise.

    A typo in the folder should not silently create a new tree of folders.
    """
    path = Path(given).expanduser()
    if not path.parent.is_dir():
        raise CodeintelError(f"--out {given}: folder {path.parent} does not exist")
    if path.is_dir():
        raise CodeintelError(f"--out {given}: is a folder, give a file name")
    return path


def _print_json(value: Any) -> None:
    out.print(json.dumps(value, indent=2, default=str), markup=False)


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

    from codeintel_assets.resources import CodeintelResource
    from codeintel_assets.runner import build_repository

    repo = registry.get_repo(args.name)
    if not repo.root.is_dir():
        raise CodeintelError(f"repository path {repo.root} of {repo.name!r} does not exist")
    resource = CodeintelResource(embedder=args.embedder)
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
    if report.success or args.verbose:
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
    version = lifecycle.current_version_or_none(_layout(repo.name))
    out.print(f"published {repo.name} version {version}", markup=False)
    return 0


def _summary_line(summary: Any) -> str:
    if summary.ran is None:
        return f"{summary.asset:<18} not materialized"
    state = "ran" if summary.ran else "skipped"
    rows = f"{summary.rows} rows" if summary.rows is not None else "-"
    line = f"{summary.asset:<18} {state:<8} {rows:<14} {summary.seconds or 0:.2f}s"
    if summary.asset == "chunks":
        # A skipped stage reports its stamp's old counts; this build embedded nothing.
        meta = summary.metadata if summary.ran else {}
        line += f"  ({meta.get('embedded', 0)} embedded, {meta.get('from_cache', 0)} from cache)"
    return line


def cmd_search(args: argparse.Namespace) -> int:
    from codeintel_assets.core.catalog import ChunkFilter
    from codeintel_assets.core.search import CodeIndex

    filters = None
    if args.lang or args.include or args.exclude:
        filters = ChunkFilter(
            include_globs=args.include, exclude_globs=args.exclude, languages=args.lang
        )
    with CodeIndex.open(args.repo) as index:
        results = index.search(args.query, k=args.k, filters=filters, mode=args.mode)
        for note in index.notes:
            err.print(f"indexctl: note: {note}", markup=False)
    if args.format == "json":
        _print_json([r.to_dict() for r in results])
        return 0
    table = Table("#", "score", "location", "preview")
    table.columns[2].overflow = "fold"
    if args.explain:
        table.add_column("channels")
        table.add_column("module / symbols", overflow="fold")
    for r in results:
        preview = r.preview.strip().splitlines()[0][:80] if r.preview.strip() else ""
        row = [str(r.rank), f"{r.score:.4f}", f"{r.uri}:{r.start_line}-{r.end_line}", preview]
        if args.explain:
            row.append(
                "\n".join(
                    f"{name} #{hit['rank']:.0f} ({hit['score']:.3f})"
                    for name, hit in r.channels.items()
                )
                or "-"
            )
            names = [_short_symbol(s) for s in r.symbols if not s.endswith(")")][:4]
            row.append(f"{r.module_id or '-'}\n" + ", ".join(names))
        table.add_row(*_plain(row))
    out.print(table)
    return 0


def _plain(cells: list[str]) -> list[Text]:
    """Return table cells as plain text: code and paths may hold ``[...]`` that rich would
    read as markup (and crash on, or silently drop)."""
    return [Text(cell) for cell in cells]


def _short_symbol(symbol: str) -> str:
    """Return the last descriptors of a SCIP symbol (``Class#method().``) for display."""
    return symbol.rsplit("/", 1)[-1]


def cmd_tune(args: argparse.Namespace) -> int:
    from codeintel_assets.core.embedding import load_embedder
    from codeintel_assets.core.stages.retrieval import retune
    from codeintel_assets.core.stamps import read_stamp

    _at_least_one(k=args.k, queries=args.queries)
    if not 0 < args.target_recall <= 1:
        raise CodeintelError(
            f"--target-recall is a recall, between 0 (excluded) and 1 (got {args.target_recall})"
        )
    layout = _layout(args.repo)
    chunk_stamp = read_stamp(layout, "chunks")
    if chunk_stamp is None:
        raise CodeintelError(f"repository {layout.name!r} has no chunks yet; build it first")
    spec = EmbedderSpec(**chunk_stamp["metadata"]["embedder"])
    audit = retune(layout.build, load_embedder(spec), args.target_recall, args.k, args.queries)
    for point in audit["sweep"]:
        out.print(
            f"{point['knobs'] or '(exact)':<16} recall@{args.k} {point['recall']:.4f}  "
            f"{point['latency_ms']:.3f} ms/query",
            markup=False,
        )
    state = "meets" if audit["target_met"] else "does NOT meet"
    out.print(
        f"locked {audit['factory']} {audit['knobs'] or '(no knobs)'}: recall "
        f"{audit['measured_recall']:.4f} {state} target {args.target_recall}",
        markup=False,
    )
    return 0 if audit["target_met"] else 1


def cmd_eval_recall(args: argparse.Namespace) -> int:
    from codeintel_assets.core.schemas import EVAL_POOL, write_parquet
    from codeintel_assets.core.search import recorded_embedder
    from codeintel_assets.core.stages import BuildContext
    from codeintel_assets.core.stages.evaluation import evaluate_layout

    _at_least_one(k=args.k, k_factor=args.k_factor)
    target = _output_file(args.out) if args.out else None
    layout = lifecycle.current_layout(_layout(args.repo))
    manifest = lifecycle.read_version_manifest(layout)
    ctx = BuildContext.for_repo(args.repo, embedder=recorded_embedder(manifest))
    result = evaluate_layout(ctx, layout, k=args.k, k_factor=args.k_factor)
    if target is not None:
        write_parquet(result.pool, target, EVAL_POOL)
    if args.format == "json":
        _print_json(result.metrics)
    else:
        out.print(result.report_markdown, markup=False)
    return 0


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
    layout = _layout(args.repo)
    with lifecycle.publish_lock(layout):
        version, staged, reused = lifecycle.stage_version(layout)
    out.print(
        f"staged {version} at {staged.root}{' (already complete)' if reused else ''}", markup=False
    )
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from codeintel_assets.core.stages import BuildContext
    from codeintel_assets.core.stages.publish import publish

    outcome = publish(BuildContext.for_repo(args.repo))
    out.print(f"published {outcome.build_version} (previous: {outcome.previous})", markup=False)
    return 0


def cmd_faiss_export_idmap(args: argparse.Namespace) -> int:
    from codeintel_assets.core.stages.retrieval import export_idmap

    build = _layout(args.repo).build
    target = _output_file(args.out) if args.out else build.faiss_idmap
    table = export_idmap(build, target)
    out.print(f"wrote {table.num_rows} rows to {target}", markup=False)
    return 0


def cmd_refresh_idmap_join(args: argparse.Namespace) -> int:
    from codeintel_assets.core.catalog import refresh_idmap_join

    build = _layout(args.repo).build
    refreshed = refresh_idmap_join(build.catalog, build)
    state = "refreshed" if refreshed else "not refreshed (idmap checksum unchanged)"
    out.print(f"faiss_idmap_mat {state}", markup=False)
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    previous, current = lifecycle.rollback(_layout(args.repo), args.to)
    out.print(f"current: {previous} -> {current}", markup=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
