"""Per-file reuse: which files a per-file stage processes, and which of its rows it keeps.

A per-file stage (``ast_nodes``, ``cst_nodes``, ``chunks`` with ``node_to_chunk``,
``units``, the file metrics of ``modules``) makes each file's rows from that file alone;
what spans the repository (the SCIP symbols of chunks, the import graph and PageRank of
modules; BM25 and FAISS downstream) is rebuilt from the merged rows. Beside its outputs
such a stage writes a *file ledger* (``ledgers/<stage>.parquet``, schema ``FILE_LEDGER``):
one row per file it covers, with the *signature* of what that file's rows were made from
and the file's diagnostic, and in the file's metadata the stage's *basis* — its code
version, its config and the bases of the ledgers it builds on.

The next run keeps the rows of every file whose signature is unchanged, provided the basis
is unchanged and the stage's outputs (the ledger among them) are the ones its stamp
recorded (``stamps.outputs_intact``: a crash between two writes never pairs one build's
ledger with another's table). It processes changed and added files and drops the rows of
files that left. Kept and new rows are merged in uri order, which is the order of a clean
build (the manifest is sorted by uri and every stage writes its rows file by file, in
order), so an incremental build writes the same bytes as a clean build of the same tree.

A signature is the file's content hash (xxh64 from the manifest) and language, combined
with the signatures upstream ledgers give the same file (``chunks`` builds on the file's AST and
CST rows, ``units`` on its chunks and CST rows). A file whose bytes changed between the
manifest and the read is recorded with the empty signature, which never matches: it is
processed again by the next run.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from codeintel_assets.core.checksums import atomic_path, xxh64_bytes, xxh64_json, xxh64_parts
from codeintel_assets.core.layout import RepoLayout
from codeintel_assets.core.schemas import FILE_LEDGER
from codeintel_assets.core.stamps import Stage, outputs_intact
from codeintel_assets.core.syntax import Diagnostic

STALE = ""  # the signature of rows that may match no manifest: never reused
OUTSIDE = "-"  # the part an upstream ledger gives a file it does not cover
_BASIS_KEY = b"codeintel.basis"


@dataclass(frozen=True)
class Ledger:
    """A stage's file ledger as read back: its basis and its rows (``FILE_LEDGER``)."""

    basis: str
    table: pa.Table

    def signatures(self) -> dict[str, str]:
        """Return the signature of every file, by uri."""
        return dict(
            zip(self.table["uri"].to_pylist(), self.table["signature"].to_pylist(), strict=True)
        )


def read_ledger(path: Path) -> Ledger | None:
    """Return the ledger at ``path``, or None when there is none (or it is not a ledger)."""
    if not path.is_file():
        return None
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid):
        return None
    basis = (table.schema.metadata or {}).get(_BASIS_KEY)
    if basis is None or table.schema.remove_metadata() != FILE_LEDGER:
        return None
    return Ledger(basis.decode(), table.replace_schema_metadata(None))


def upstream_ledger(path: Path) -> Ledger:
    """Return the ledger an upstream stage left at ``path`` (empty with basis '' when none):
    what a downstream stage combines into its own signatures and basis."""
    return read_ledger(path) or Ledger("", FILE_LEDGER.empty_table())


def manifest_hashes(manifest: pa.Table, languages: frozenset[str] | None = None) -> dict[str, str]:
    """Return the content hash of every manifest file (of ``languages`` when given), by uri."""
    return {uri: digest for uri, (digest, _) in _manifest_rows(manifest, languages).items()}


def manifest_signatures(
    manifest: pa.Table, languages: frozenset[str] | None = None
) -> dict[str, str]:
    """Return the signature of every manifest file (of ``languages`` when given), by uri:
    its content hash and its language (which decides how a file is parsed and chunked)."""
    rows = _manifest_rows(manifest, languages)
    return {uri: xxh64_parts([digest, lang]) for uri, (digest, lang) in rows.items()}


def _manifest_rows(
    manifest: pa.Table, languages: frozenset[str] | None
) -> dict[str, tuple[str, str]]:
    rows = zip(
        manifest["uri"].to_pylist(),
        manifest["lang"].to_pylist(),
        manifest["xxh64"].to_pylist(),
        strict=True,
    )
    return {
        uri: (digest, lang) for uri, lang, digest in rows if languages is None or lang in languages
    }


def combined_signatures(
    signatures: Mapping[str, str], *upstream: Mapping[str, str]
) -> dict[str, str]:
    """Return each file's signature combined with what ``upstream`` ledgers give it.

    A file an upstream ledger does not cover takes ``OUTSIDE`` from it; a stale part makes
    the whole signature stale.
    """
    out = {}
    for uri, signature in signatures.items():
        parts = [signature, *(ledger.get(uri, OUTSIDE) for ledger in upstream)]
        out[uri] = STALE if STALE in parts else xxh64_parts(parts)
    return out


def stage_basis(stage: Stage, config: Mapping[str, Any], *upstream: Ledger) -> str:
    """Return the basis of a stage's rows: its name, code version, config and the bases of
    the ledgers it builds on (any change of them and no row is reused)."""
    return xxh64_json(
        {
            "stage": stage.name,
            "code": stage.code_version,
            "cfg": dict(config),
            "up": [ledger.basis for ledger in upstream],
        }
    )


@dataclass
class FilePlan:
    """What a per-file stage does this run: the files whose rows it keeps, processes, drops."""

    basis: str
    signatures: dict[str, str]  # every file the stage covers now, by uri
    content: dict[str, str]  # the manifest's content hash of each file (to spot late edits)
    reused: frozenset[str]  # files whose previous rows are kept
    process: list[str]  # files (re)processed, sorted
    deleted: list[str]  # files of the previous ledger the stage no longer covers
    reason: str  # why rows were (not) reused: reused | first build | basis changed | disabled...
    previous: Ledger | None  # the previous ledger, when its rows are reused
    # Processed files whose bytes were not the manifest's when read.
    stale: set[str] = field(default_factory=set)

    def kept(self, table: pa.Table, uris: pa.Array | pa.ChunkedArray | None = None) -> pa.Table:
        """Return the rows of a previous table that belong to reused files.

        ``uris`` gives each row's file when the table has no ``uri`` column.
        """
        column = table["uri"] if uris is None else uris
        return table.filter(pc.is_in(column, value_set=pa.array(sorted(self.reused), pa.string())))

    def read(self, files: Iterable[tuple[str, str, bytes]]) -> Iterator[tuple[str, str, bytes]]:
        """Yield ``files`` (uri, lang, bytes), marking stale those whose bytes are not the
        manifest's (edited since the manifest was made)."""
        for uri, lang, data in files:
            if xxh64_bytes(data) != self.content.get(uri):
                self.stale.add(uri)
            yield uri, lang, data

    def ledger(self, diagnostics: Iterable[Diagnostic] = ()) -> pa.Table:
        """Return this run's ledger: reused files' previous rows and the processed files'
        signatures and diagnostics (one per file at most), in uri order."""
        found = {d.uri: d for d in diagnostics}
        previous = {}
        if self.previous is not None:
            previous = {row["uri"]: row for row in self.kept(self.previous.table).to_pylist()}
        rows = []
        for uri in sorted(self.signatures):
            if uri in previous:
                rows.append(previous[uri])
                continue
            problem = found.get(uri)
            rows.append(
                {
                    "uri": uri,
                    "signature": STALE if uri in self.stale else self.signatures[uri],
                    "reason": problem.reason if problem else None,
                    "detail": problem.detail if problem else None,
                }
            )
        return pa.Table.from_pylist(rows, schema=FILE_LEDGER)

    def metadata(self) -> dict[str, Any]:
        """Return the counts a stage reports: files reused, processed, deleted."""
        return {
            "files_reused": len(self.reused),
            "files_processed": len(self.process),
            "files_deleted": len(self.deleted),
            "reuse": self.reason,
        }


def plan_files(
    repo: RepoLayout,
    stage: Stage,
    ledger: Path,
    basis: str,
    signatures: Mapping[str, str],
    content: Mapping[str, str] | None = None,
    enabled: bool = True,
) -> FilePlan:
    """Return what ``stage`` does now for the files of ``signatures``, given its previous
    ledger at ``ledger``.

    ``content`` is the manifest's content hash of each file the stage reads
    (``FilePlan.read`` compares the bytes with it). With ``enabled`` false, or when the
    previous outputs are not intact or were made on another basis, every file is
    processed.
    """
    signatures = dict(sorted(signatures.items()))
    previous = read_ledger(ledger) if enabled else None
    if not enabled:
        reason = "disabled"
    elif previous is None:
        reason = "first build"
    elif previous.basis != basis:
        reason, previous = "basis changed", None
    elif not outputs_intact(repo, stage.name):
        reason, previous = "previous outputs not intact", None
    else:
        reason = "reused"
    before = previous.signatures() if previous is not None else {}
    reused = frozenset(
        uri
        for uri, signature in signatures.items()
        if signature != STALE and before.get(uri) == signature
    )
    return FilePlan(
        basis=basis,
        signatures=signatures,
        content=dict(content or {}),
        reused=reused,
        process=[uri for uri in signatures if uri not in reused],
        deleted=sorted(set(before) - set(signatures)),
        reason=reason,
        previous=previous,
    )


def merged_in_uri_order(
    kept: pa.Table,
    new: pa.Table,
    kept_uris: pa.Array | pa.ChunkedArray | None = None,
    new_uris: pa.Array | pa.ChunkedArray | None = None,
) -> pa.Table:
    """Return ``kept`` and ``new`` rows (same columns) in uri order, the rows of each file
    in their own order (a stable sort), with the schema of ``new``. ``*_uris`` give each
    row's file when the tables have no ``uri`` column."""
    # New rows carry the schema a clean build writes; rows read back from Parquet name list
    # children "element", not "item", and the file's bytes would differ.
    table = pa.concat_tables([kept.select(new.column_names).cast(new.schema), new])
    if kept_uris is None or new_uris is None:
        uris = table["uri"]
    else:
        uris = pa.chunked_array([*_chunks(kept_uris), *_chunks(new_uris)], type=pa.string())
    order = pc.sort_indices(pa.table({"uri": uris}), sort_keys=[("uri", "ascending")])
    return table.take(order).combine_chunks()


def merged_rows(
    plan: FilePlan,
    previous: Path,
    new: pa.Table,
    *,
    combine: bool = True,
    read: Callable[[Path], pa.Table] = pq.read_table,
) -> pa.Table:
    """Return the stage's table: the rows of reused files from its previous table at
    ``previous`` (read by ``read``) and the ``new`` rows of processed files, in uri order
    (``merged_by_file``)."""
    if not plan.reused:
        return new
    return merged_by_file(read(previous), new, plan.reused, combine=combine)


def merged_by_file(
    previous: pa.Table, new: pa.Table, reused: Collection[str], *, combine: bool = True
) -> pa.Table:
    """Return the rows of ``reused`` files from ``previous`` and every row of ``new``, in uri
    order, with the schema of ``new``: ``merged_in_uri_order(kept, new)``, without filtering
    or sorting rows.

    Both tables are written file by file in uri order (the rows of one file together), so
    the result is slices of the two tables: a one-file edit copies the table in three
    pieces, not row by row. A table not in that order is merged by sorting. The result is
    one chunk, as ``write_parquet`` needs; ``combine=False`` leaves the slices as chunks,
    for a ``schemas.ParquetStream``, which makes each row group one chunk itself (a copy of
    the whole table fewer).
    """
    kept = [run for run in _file_runs(previous["uri"]) if run[0] in reused]
    added = _file_runs(new["uri"])
    if not (_in_order(kept) and _in_order(added)):
        kept_rows = previous.filter(
            pc.is_in(previous["uri"], value_set=pa.array(sorted(reused), pa.string()))
        )
        return merged_in_uri_order(kept_rows, new)
    # Rows read back from Parquet name list children "element" (see merged_in_uri_order).
    sources = (previous.select(new.column_names).cast(new.schema), new)
    runs = sorted(
        [(uri, 0, start, end) for uri, start, end in kept]
        + [(uri, 1, start, end) for uri, start, end in added]
    )
    pieces: list[tuple[int, int, int]] = []  # (source, start, end), neighbours joined
    for _, source, start, end in runs:
        if pieces and pieces[-1][0] == source and pieces[-1][2] == start:
            pieces[-1] = (source, pieces[-1][1], end)
        else:
            pieces.append((source, start, end))
    slices = [sources[source].slice(start, end - start) for source, start, end in pieces]
    merged = pa.concat_tables([new.slice(0, 0), *slices])
    # One chunk, as the sorting merge gives: Parquet pages may end where chunks end.
    return merged.combine_chunks() if combine else merged


def _file_runs(uris: pa.Array | pa.ChunkedArray) -> list[tuple[str, int, int]]:
    """Return (uri, first row, end row) of each run of equal uris, in table order."""
    runs: list[tuple[str, int, int]] = []
    offset = 0
    # Chunk by chunk: combining a table's row groups would copy every string.
    for chunk in _chunks(uris):
        if len(chunk) == 0:
            continue
        encoded = pc.run_end_encode(chunk)
        ends = [offset + end for end in encoded.run_ends.to_pylist()]
        starts = [offset, *ends[:-1]]
        for uri, start, end in zip(encoded.values.to_pylist(), starts, ends, strict=True):
            if runs and runs[-1][0] == uri and runs[-1][2] == start:
                runs[-1] = (uri, runs[-1][1], end)  # a run across a chunk boundary
            else:
                runs.append((uri, start, end))
        offset += len(chunk)
    return runs


def _in_order(runs: list[tuple[str, int, int]]) -> bool:
    """Return whether runs of uris are strictly ascending (each file's rows together)."""
    return all(a[0] < b[0] for a, b in pairwise(runs))


def _chunks(array: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    return array.chunks if isinstance(array, pa.ChunkedArray) else [array]


def write_ledger(table: pa.Table, path: Path, basis: str) -> None:
    """Write a ledger atomically, its basis in the Parquet metadata."""
    table = table.select(FILE_LEDGER.names).cast(FILE_LEDGER)
    table = table.replace_schema_metadata({_BASIS_KEY: basis.encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", use_dictionary=True)


def ledger_diagnostics(ledger: pa.Table) -> list[Diagnostic]:
    """Return the diagnostics a ledger records, in uri order."""
    return [
        Diagnostic(row["uri"], row["reason"], row["detail"] or "")
        for row in ledger.to_pylist()
        if row["reason"] is not None
    ]
