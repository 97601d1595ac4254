"""Operator-given artifacts staged beside the built ones (``indexctl stage --modules F ...``).

Each given file is validated by the same reader the build uses when a repository
registers it (``repo add --modules-jsonl/--symbol-graph/--scip``): ``read_modules_jsonl``,
``read_symbol_graph_json``, ``decode_scip_file``; AST/CST Parquet files are checked
against their schema. The tables derived from them are written to a hidden folder under
the repository's data folder and linked into the staged version in place of the built
files, so ``publish`` builds that version's catalog over them. The build area itself is
never changed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from codeintel_assets.core import lifecycle
from codeintel_assets.core.checksums import atomic_path, write_json_atomic, write_text_atomic
from codeintel_assets.core.errors import BadInputError
from codeintel_assets.core.layout import ArtifactLayout, RepoLayout
from codeintel_assets.core.modules import modules_jsonl, read_modules_jsonl
from codeintel_assets.core.schemas import (
    AST_NODES,
    CST_NODES,
    MODULES,
    SCIP_OCCURRENCES,
    SCIP_SYMBOLS,
    SYMBOL_EDGES,
    write_parquet,
)
from codeintel_assets.core.scip import decode_scip_file
from codeintel_assets.core.scip.tables import occurrences_table, repo_text_reader, symbols_table
from codeintel_assets.core.symbols import read_symbol_graph_json, symbol_graph_json


@dataclass(frozen=True)
class GivenArtifacts:
    """The files an operator stages; None: keep the built one."""

    modules: Path | None = None  # modules.jsonl
    symbol_graph: Path | None = None  # symbol_graph.json
    scip: Path | None = None  # index.scip or index.scip.json
    ast: Path | None = None  # ast_nodes.parquet
    cst: Path | None = None  # cst_nodes.parquet

    def files(self) -> dict[str, Path]:
        """Return the given files by option name."""
        return {name: path for name, path in vars(self).items() if path is not None}


@dataclass(frozen=True)
class StagedVersion:
    """A staged version: its build version, layout, reuse, and rows of each given table."""

    build_version: str
    layout: ArtifactLayout
    reused: bool
    rows: dict[str, int]


def stage_given(repo: RepoLayout, repo_root: Path, given: GivenArtifacts) -> StagedVersion:
    """Validate ``given``, stage the build with them in place of the built files; return it.

    The staged version is the one the next ``indexctl publish`` publishes
    (``lifecycle.stage_for_publish``). Raises ``BadInputError`` naming the file, the record
    and the field when a given file is missing or malformed; nothing is staged then.
    """
    for name, path in given.files().items():
        if not path.is_file():
            raise BadInputError(f"--{name.replace('_', '-')} {path}: file not found")
    with lifecycle.publish_lock(repo), _scratch(repo) as scratch:
        replace, rows = _write_given(ArtifactLayout(scratch), repo_root, given)
        version, layout, reused = lifecycle.stage_for_publish(repo, replace)
    return StagedVersion(version, layout, reused, rows)


def _write_given(
    scratch: ArtifactLayout, repo_root: Path, given: GivenArtifacts
) -> tuple[dict[str, Path | None], dict[str, int]]:
    """Write the tables of the given files under ``scratch``; return (replacements, rows).

    Replacements map layout-relative paths to the file taking their place (None: leave out).
    """
    replace: dict[str, Path | None] = {}
    rows: dict[str, int] = {}

    def put(*files: Path) -> None:
        replace.update({file.relative_to(scratch.root).as_posix(): file for file in files})

    if given.modules is not None:
        table = read_modules_jsonl(given.modules)
        write_parquet(table, scratch.modules_parquet, MODULES)
        write_text_atomic(scratch.modules_jsonl, modules_jsonl(table))
        put(scratch.modules_parquet, scratch.modules_jsonl)
        rows["modules"] = table.num_rows
    if given.symbol_graph is not None:
        edges = read_symbol_graph_json(given.symbol_graph)
        write_parquet(edges, scratch.symbol_edges, SYMBOL_EDGES)
        write_json_atomic(scratch.symbol_graph_json, symbol_graph_json(edges))
        put(scratch.symbol_edges, scratch.symbol_graph_json)
        rows["symbol_edges"] = edges.num_rows
    if given.scip is not None:
        index = decode_scip_file(given.scip)
        occurrences = occurrences_table(index, repo_text_reader(repo_root))
        write_parquet(occurrences, scratch.scip_occurrences, SCIP_OCCURRENCES)
        write_parquet(symbols_table(index), scratch.scip_symbols, SCIP_SYMBOLS)
        is_json = given.scip.suffix.lower() == ".json"
        kept, dropped = (
            (scratch.scip_index_json, scratch.scip_index)
            if is_json
            else (scratch.scip_index, scratch.scip_index_json)
        )
        kept.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(kept) as tmp:
            shutil.copyfile(given.scip, tmp)
        put(scratch.scip_occurrences, scratch.scip_symbols, kept)
        # The built index of the other format would describe another tree: leave it out.
        replace[dropped.relative_to(scratch.root).as_posix()] = None
        rows["scip_occurrences"] = occurrences.num_rows
    for path, target, schema, name in (
        (given.ast, scratch.ast_nodes, AST_NODES, "ast_nodes"),
        (given.cst, scratch.cst_nodes, CST_NODES, "cst_nodes"),
    ):
        if path is not None:
            table = read_nodes_parquet(path, schema)
            write_parquet(table, target, schema)
            put(target)
            rows[name] = table.num_rows
    return replace, rows


def read_nodes_parquet(path: Path, schema: pa.Schema) -> pa.Table:
    """Return an AST/CST node table from a user's Parquet file, cast to ``schema``.

    Raises ``BadInputError`` naming the file and the column when it is not Parquet, lacks
    a column of ``schema`` or has one of another type.
    """
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise BadInputError(f"{path}: not a Parquet file ({exc})") from exc
    for field in schema:
        if field.name not in table.column_names:
            raise BadInputError(f"{path}: column '{field.name}' is missing")
        try:
            table.column(field.name).cast(field.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise BadInputError(
                f"{path}: column '{field.name}' must be {field.type}, "
                f"got {table.schema.field(field.name).type} ({exc})"
            ) from exc
    return table.select(schema.names).cast(schema)


@contextmanager
def _scratch(repo: RepoLayout) -> Iterator[Path]:
    """Yield a hidden folder under the repository's data folder, removed afterwards.

    Under the data folder, so staging hard-links its files instead of copying them.
    """
    folder = repo.repo_dir / f".given.{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
