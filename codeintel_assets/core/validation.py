"""Validations that guard publishing; the Dagster asset checks and the CLI share them.

Each function takes an ``ArtifactLayout`` (the build area or a staged version) and
returns a ``CheckOutcome``; ``validate_version`` runs the blocking ones.

A passed check of the costly ones (``PROVEN_CHECKS``) leaves a proof: the xxh64 of every
file it read, of its catalog's view definitions and of the code that checked. The same
check of another layout (a published version: hard links of the build's files, or
copies) with the same checksums is that proof, not a second run (``run_proven``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.parquet as pq

from codeintel_assets.core import faiss_store
from codeintel_assets.core.catalog import catalog as catalog_build
from codeintel_assets.core.checksums import write_json_atomic, xxh64_file, xxh64_json, xxh64_text
from codeintel_assets.core.chunk_table import chunk_repository, embedding_texts
from codeintel_assets.core.embedding import load_embedder
from codeintel_assets.core.grammars import SYNTAX_LANGUAGES
from codeintel_assets.core.layout import ArtifactLayout
from codeintel_assets.core.scip.incremental import scip_job
from codeintel_assets.core.scip.recheck import compare_with_full_pass
from codeintel_assets.core.stamps import read_stamp
from codeintel_assets.core.syntax import ast_nodes_table, cst_nodes_table, node_to_chunk_table

if TYPE_CHECKING:
    from codeintel_assets.core.context import BuildContext

ROUND_TRIP_SAMPLE = 64


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    detail: str
    metadata: dict[str, Any] = field(default_factory=dict)


def check_chunks_not_empty(layout: ArtifactLayout) -> CheckOutcome:
    """``v_chunks`` in the layout's catalog has at least one row."""
    with duckdb.connect(str(layout.catalog), read_only=True) as con:
        count = con.execute("SELECT count(*) FROM v_chunks").fetchone()[0]
    return CheckOutcome(
        "v_chunks_not_empty", count > 0, f"v_chunks has {count} rows", {"rows": int(count)}
    )


def check_faiss_round_trip(layout: ArtifactLayout, sample: int = ROUND_TRIP_SAMPLE) -> CheckOutcome:
    """The FAISS index holds exactly the catalog's chunk ids (no stale id, none missing: an
    index updated in place must), and sampled ids hydrate through the catalog to the same
    chunk id, uri and vector."""
    index = faiss_store.read_index(layout.faiss_index())
    ids = faiss_store.index_ids(index)
    if len(ids) == 0:
        return CheckOutcome("faiss_round_trip", False, "the FAISS index is empty")
    rng = np.random.default_rng(0)
    picked = rng.choice(ids, size=min(sample, len(ids)), replace=False).tolist()
    with duckdb.connect(str(layout.catalog), read_only=True) as con:
        chunk_ids = con.execute("SELECT id FROM v_chunks").fetchnumpy()["id"].astype(np.int64)
        rows = con.execute(
            "SELECT faiss_id, chunk_id, uri FROM v_faiss_join "
            "WHERE faiss_id IN (SELECT UNNEST(?::BIGINT[]))",
            [picked],
        ).fetchall()
        chunks = {
            row[0]: (row[1], row[2])
            for row in con.execute(
                "SELECT id, uri, embedding FROM v_chunks WHERE id IN (SELECT UNNEST(?::BIGINT[]))",
                [picked],
            ).fetchall()
        }
    problems = _id_set_problems(ids, chunk_ids)
    found = {row[0]: row for row in rows}
    for faiss_id in picked:
        row = found.get(faiss_id)
        if row is None:
            problems.append(f"faiss id {faiss_id} has no chunk in v_faiss_join")
            continue
        _, chunk_id, uri = row
        chunk_uri, embedding = chunks.get(chunk_id, (None, None))
        if chunk_id != faiss_id or chunk_uri != uri:
            problems.append(f"faiss id {faiss_id} hydrates to chunk {chunk_id} {uri!r}")
        elif not np.allclose(index.reconstruct(int(faiss_id)), np.asarray(embedding), atol=1e-5):
            problems.append(f"faiss id {faiss_id}: stored vector differs from the chunk embedding")
    detail = (
        f"{len(picked)} sampled ids hydrated; the index's {len(ids)} ids checked against "
        f"{len(chunk_ids)} chunks"
    )
    if problems:
        detail += ": " + "; ".join(problems[:5])
    return CheckOutcome(
        "faiss_round_trip",
        not problems,
        detail,
        {"sampled": len(picked), "failures": len(problems)},
    )


def _id_set_problems(index_ids: np.ndarray, chunk_ids: np.ndarray) -> list[str]:
    """Return one line per way the index's ids differ from the chunk ids (duplicates, stale
    ids, missing ids), each with an example."""
    # Equal sets of distinct ids (the passing case) are proved by one sort of each.
    ordered = np.sort(chunk_ids)
    if np.array_equal(np.sort(index_ids), ordered) and not (ordered[1:] == ordered[:-1]).any():
        return []
    problems = []
    if len(np.unique(index_ids)) != len(index_ids):
        problems.append(f"the index holds {len(index_ids) - len(np.unique(index_ids))} ids twice")
    stale = np.setdiff1d(index_ids, chunk_ids)
    missing = np.setdiff1d(chunk_ids, index_ids)
    if len(stale):
        problems.append(f"{len(stale)} index ids are no chunk (e.g. {stale[0]})")
    if len(missing):
        problems.append(f"{len(missing)} chunks are not in the index (e.g. {missing[0]})")
    return problems


def check_ann_recall(layout: ArtifactLayout) -> CheckOutcome:
    """ANN recall@k against exact search, measured at the locked operating point, meets its
    target (both recorded in the FAISS audit sidecar by tune-then-lock)."""
    audit = json.loads(layout.faiss_audit().read_text(encoding="utf-8"))
    recall, target = audit.get("measured_recall"), audit.get("target_recall")
    if recall is None or target is None:
        return CheckOutcome("ann_recall", False, "the FAISS audit records no measured recall")
    passed = recall >= target
    detail = (
        f"recall@{audit.get('recall_k')} = {recall:.4f} vs target {target} "
        f"({audit.get('factory')}, knobs {audit.get('knobs') or 'none'})"
    )
    return CheckOutcome("ann_recall", passed, detail, {"recall": recall, "target": target})


CLEAN_SAMPLE = 8
# The files of the rotating slice an ordinary build re-chunks (about; at least one slice).
ROTATION_FILES = 32


@dataclass(frozen=True)
class CheckedFiles:
    """The files a ``chunks_match_clean_build`` check re-chunks, and why those."""

    mode: str  # full | sampled
    uris: list[str]  # in manifest (uri) order
    of: int  # the manifest's files
    touched: frozenset[str]  # files the chunks stage chunked afresh while it reused others
    slice: str  # the rotating slice checked, e.g. '3/14' (sampled mode)
    reason: str

    def metadata(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "files_checked": len(self.uris),
            "files": self.of,
            "files_chunked_this_build": len(self.touched),
            "rotation_slice": self.slice,
            "mode_reason": self.reason,
        }


def files_to_check(ctx: BuildContext, manifest: pa.Table, full: bool = False) -> CheckedFiles:
    """Return the files the clean-chunking check re-chunks: every file when ``full``;
    otherwise the files the chunks stage chunked afresh while it kept the others' chunks
    (the rows reuse merged) plus one rotating slice of the rest.

    Files fall into slices by their uri's hash (about ``ROTATION_FILES`` a slice); the
    manifest's checksum picks the slice, so successive builds of a changing tree check
    every file in turn. A stage that listed no files (a first build, reuse off, or too
    many to list: ``stages.retrieval.MAX_LISTED_FILES``) made every chunk as a clean
    build does (the slice is enough), or is checked whole.
    """
    uris = manifest["uri"].to_pylist()
    if full:
        return CheckedFiles("full", uris, len(uris), frozenset(), "all", "asked for a full check")
    stamp = read_stamp(ctx.layout, "chunks") or {}
    metadata = stamp.get("metadata", {})
    listed = metadata.get("chunked_uris")
    if metadata.get("reuse") == "reused" and not isinstance(listed, list):
        reason = "too many files were chunked with reuse to list them"
        return CheckedFiles("full", uris, len(uris), frozenset(uris), "all", reason)
    chunked = frozenset(listed or [])
    slices = max(1, len(uris) // ROTATION_FILES)
    picked = int(xxh64_file(ctx.layout.build.repo_manifest), 16) % slices
    chosen = [uri for uri in uris if uri in chunked or int(xxh64_text(uri), 16) % slices == picked]
    reason = "the files chunked with reuse this build and a rotating slice"
    return CheckedFiles(
        "sampled" if slices > 1 else "full",
        chosen,
        len(uris),
        chunked,
        f"{picked + 1}/{slices}",
        reason if slices > 1 else "one slice holds every file",
    )


def check_chunks_match_clean_build(ctx: BuildContext) -> CheckOutcome:
    """Incremental ≡ clean, on the files a build's reuse touched and a rotating slice of
    the others (``files_to_check``): re-chunking them from scratch gives the stored chunk
    ids and content hashes, a sample of their chunks embedded afresh (no cache) gives the
    stored vectors, and a sample of them parsed afresh gives their stored AST, CST and
    node→chunk rows (which a build may have kept from an earlier one, ``core.reuse``).
    Every stored chunk belongs to a manifest file, in (uri, start byte) order.

    Files edited since the build (bytes no longer match the manifest) are left out.
    """
    return chunks_match_clean_build(ctx, full=False)


def check_all_chunks_match_clean_build(ctx: BuildContext) -> CheckOutcome:
    """``check_chunks_match_clean_build`` over every file of the manifest (the nightly
    re-check, and a build run with the tag ``codeintel/full_check``)."""
    return chunks_match_clean_build(ctx, full=True)


def chunks_match_clean_build(ctx: BuildContext, full: bool) -> CheckOutcome:
    """Return the outcome of the clean-chunking check, over every file when ``full``."""
    layout = ctx.layout.build
    manifest = pq.read_table(layout.repo_manifest)
    checked = files_to_check(ctx, manifest, full)
    hashes = dict(zip(manifest["uri"].to_pylist(), manifest["xxh64"].to_pylist(), strict=True))
    unchanged = [
        uri
        for uri in checked.uris
        if (ctx.repo.root / uri).is_file() and xxh64_file(ctx.repo.root / uri) == hashes[uri]
    ]
    wanted = pa.array(unchanged, pa.string())
    keep = pa.compute.is_in(manifest.column("uri"), wanted)
    embedder = load_embedder(ctx.embedder)
    clean, _ = chunk_repository(
        ctx.repo.name, ctx.repo.root, manifest.filter(keep), embedder, ctx.chunk_tokens
    )
    every = pq.read_table(layout.chunks, columns=["uri", "start_byte"])
    # Filter first: Arrow's filtered read decodes every embedding (1.3-2.8 s against 0.7 s
    # for 2,229 of the standard library's 157,920 chunks).
    stored = _stored_rows(
        layout.chunks, "uri", unchanged, ["id", "uri", "content_hash", "embedding"]
    )
    expected = [(c.id, c.content_hash) for c in clean]
    actual = list(
        zip(stored.column("id").to_pylist(), stored.column("content_hash").to_pylist(), strict=True)
    )
    problems = _misplaced_chunks(every, manifest)
    if expected != actual:
        problems.append(
            f"{len(set(expected) ^ set(actual))} chunks differ from a clean chunking "
            f"({len(actual)} stored, {len(expected)} clean)"
        )
    by_id = {c.id: c for c in clean}
    rng = np.random.default_rng(0)
    rows = rng.choice(stored.num_rows, size=min(CLEAN_SAMPLE, stored.num_rows), replace=False)
    sample = [by_id[i] for i in stored.column("id").take(pa.array(rows)).to_pylist() if i in by_id]
    texts, _ = embedding_texts(sample, embedder)
    fresh = embedder.embed(texts)
    vectors = dict(
        zip(stored.column("id").to_pylist(), stored.column("embedding").to_pylist(), strict=True)
    )
    drift = [
        c.id
        for c, v in zip(sample, fresh, strict=True)
        if not np.allclose(np.asarray(vectors[c.id]), v, atol=1e-4)
    ]
    if drift:
        problems.append(
            f"{len(drift)} of {len(sample)} sampled vectors differ from a fresh embedding"
        )
    parsed = _sampled_files(ctx, manifest, unchanged, checked.touched)
    problems += _syntax_rows_differ(ctx, parsed)
    scope = (
        f"{len(unchanged)} unchanged files"
        if checked.mode == "full"
        else f"{len(unchanged)} unchanged files ({len(checked.touched)} chunked with "
        f"reuse this build, slice {checked.slice}) of {checked.of}"
    )
    detail = "; ".join(problems) or (
        f"{len(actual)} chunks of {scope} match a clean chunking; "
        f"{len(sample)} sampled vectors match a fresh embedding; the syntax rows of "
        f"{len(parsed)} sampled files match a fresh parse"
    )
    return CheckOutcome(
        "chunks_match_clean_build",
        not problems,
        detail,
        {
            "chunks": len(actual),
            "sampled": len(sample),
            "files_parsed": len(parsed),
            **checked.metadata(),
            "files_unchanged": len(unchanged),
        },
    )


def _misplaced_chunks(chunks: pa.Table, manifest: pa.Table) -> list[str]:
    """Return the problems of the whole chunk table read cheaply (uri and start byte): rows
    of files the manifest no longer has (a delete reuse missed), rows out of order."""
    problems = []
    stray = pa.compute.invert(pa.compute.is_in(chunks["uri"], manifest["uri"]))
    count = pa.compute.sum(stray.cast(pa.int64())).as_py() or 0
    if count:
        problems.append(f"{count} chunks belong to files the manifest does not list")
    order = pa.compute.sort_indices(
        chunks, sort_keys=[("uri", "ascending"), ("start_byte", "ascending")]
    )
    if (order.to_numpy() != np.arange(chunks.num_rows)).any():
        problems.append("the chunks are not in (uri, start byte) order")
    return problems


def _sampled_files(
    ctx: BuildContext, manifest: pa.Table, unchanged: list[str], first: frozenset[str]
) -> list[tuple[str, str, bytes]]:
    """Return (uri, lang, bytes) of up to ``CLEAN_SAMPLE`` of the checked unchanged files
    with a syntax tree, ``first`` (the files reuse touched) before a sample of the rest,
    in uri order."""
    langs = dict(zip(manifest["uri"].to_pylist(), manifest["lang"].to_pylist(), strict=True))
    candidates = [uri for uri in unchanged if langs[uri] in SYNTAX_LANGUAGES]
    touched = [uri for uri in candidates if uri in first][:CLEAN_SAMPLE]
    rest = [uri for uri in candidates if uri not in first]
    rng = np.random.default_rng(1)
    size = min(CLEAN_SAMPLE - len(touched), len(rest))
    picked = rng.choice(len(rest), size=size, replace=False)
    uris = sorted([*touched, *(rest[i] for i in picked)])
    return [(uri, langs[uri], (ctx.repo.root / uri).read_bytes()) for uri in uris]


def _syntax_rows_differ(ctx: BuildContext, files: list[tuple[str, str, bytes]]) -> list[str]:
    """Return the problems found parsing ``files`` afresh: AST, CST and node→chunk rows that
    differ from the stored ones."""
    layout = ctx.layout.build
    if not files:
        return []
    uris = [uri for uri, _, _ in files]
    python = [(uri, data) for uri, lang, data in files if lang == "python"]
    fresh = {
        "AST": (layout.ast_nodes, ast_nodes_table(ctx.repo.name, python)[0]),
        "CST": (layout.cst_nodes, cst_nodes_table(ctx.repo.name, files)[0]),
    }
    problems = []
    for name, (path, table) in fresh.items():
        stored = _stored_rows(path, "uri", uris) if path.exists() else None
        if stored is None or not stored.cast(table.schema).equals(table):
            problems.append(f"the {name} rows of {len(files)} sampled files differ from a parse")
    chunks = _stored_rows(layout.chunks, "uri", uris, ["id", "uri", "start_byte", "end_byte"])
    nodes = pa.concat_tables([table for _, table in fresh.values()])
    expected = node_to_chunk_table(nodes, chunks)
    stored_map = None
    if layout.node_to_chunk.exists():
        stored_map = _stored_rows(layout.node_to_chunk, "chunk_id", chunks["id"].to_pylist())
    if stored_map is None or not stored_map.cast(expected.schema).equals(expected):
        problems.append(f"the node→chunk rows of {len(files)} sampled files differ")
    return problems


def _stored_rows(
    path: Path, column: str, values: list, columns: list[str] | None = None
) -> pa.Table:
    """Return the rows of the Parquet file ``path`` whose ``column`` is in ``values``, in
    file order. DuckDB reads the filter column first and decodes only the rows it keeps
    (a few files of a table of millions of rows: ~5x faster than Arrow's filtered read)."""
    if not values:
        schema = pq.read_schema(path)
        return (
            schema if columns is None else pa.schema([schema.field(c) for c in columns])
        ).empty_table()
    # ``column`` and ``columns`` are this module's constants, never input.
    selected = ", ".join(f'"{c}"' for c in columns) if columns else "* EXCLUDE (file_row_number)"
    with duckdb.connect() as con:
        # Ordered by the row's number in the file: DuckDB keeps insertion order through a
        # scan, not through the semi join of several row groups read on several threads.
        return con.sql(
            f"SELECT {selected} FROM read_parquet($path, file_row_number = true) "
            f'WHERE "{column}" IN (SELECT UNNEST($values)) ORDER BY file_row_number',
            params={"path": str(path), "values": values},
        ).to_arrow_table()


# Problem rows a check's detail shows.
EXAMPLES = 5


def _count(layout: ArtifactLayout, sql: str) -> tuple[int, list[tuple]]:
    """Run a problem-finding query on the catalog: (number of problems, a few examples).

    The examples' query answers a passing check alone (fewer rows than asked for are all
    of them); only a failing one is counted, by a second pass.
    """
    # ``sql`` is one of the constant queries below; no value is ever pasted in.
    with duckdb.connect(str(layout.catalog), read_only=True) as con:
        rows = con.execute("SELECT * FROM (" + sql + ") LIMIT " + str(EXAMPLES)).fetchall()
        if len(rows) < EXAMPLES:
            return len(rows), rows
        total = con.execute("SELECT count(*) FROM (" + sql + ")").fetchone()[0]
    return int(total), rows


# Chunk symbols whose SCIP occurrence is not in the same file inside the chunk's lines
# (occurrence lines are 0-based, chunk lines 1-based).
# The rows of ``v_chunk_symbols`` with their chunk's file and lines from the same scan, and
# an anti join: 2.5x faster than NOT EXISTS over the view joined with ``v_chunks``.
_STRAY_CHUNK_SYMBOLS = """
    SELECT cs.chunk_id, cs.symbol FROM (
        SELECT id AS chunk_id, uri, start_line, end_line, unnest(symbols) AS symbol
        FROM v_chunks) cs
    ANTI JOIN scip_occurrences o
        ON o.symbol = cs.symbol AND o.uri = cs.uri
       AND o.start_line + 1 BETWEEN cs.start_line AND cs.end_line
"""

# Chunks with no module, or whose module's uri_prefix does not prefix the chunk's uri.
_CHUNKS_WITHOUT_MODULE = """
    SELECT c.id, c.uri, cm.module_id FROM v_chunks c
    LEFT JOIN v_chunk_modules cm ON cm.chunk_id = c.id
    LEFT JOIN modules m ON m.module_id = cm.module_id
    WHERE m.module_id IS NULL OR NOT starts_with(c.uri, m.uri_prefix)
"""

# Syntax nodes whose parent_id names no node of the same table.
_ORPHAN_NODES = """
    SELECT n.uri, n.node_id, n.parent_id FROM {table} n
    WHERE n.parent_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM {table} p WHERE p.node_id = n.parent_id)
"""

# Edge endpoints that carry a uri but have no definition occurrence in that file.
_UNDEFINED_EDGE_ENDPOINTS = """
    SELECT e.src_symbol AS symbol, e.src_uri AS uri FROM symbol_edges e
    WHERE e.src_uri IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM scip_occurrences o
        WHERE o.symbol = e.src_symbol AND o.uri = e.src_uri AND o.role = 'def')
    UNION ALL
    SELECT e.dst_symbol, e.dst_uri FROM symbol_edges e
    WHERE e.dst_uri IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM scip_occurrences o
        WHERE o.symbol = e.dst_symbol AND o.uri = e.dst_uri AND o.role = 'def')
"""


def _problems(name: str, layout: ArtifactLayout, sql: str, what: str) -> CheckOutcome:
    total, examples = _count(layout, sql)
    detail = f"{total} {what}" + (f", e.g. {examples[:3]}" if total else "")
    return CheckOutcome(name, total == 0, detail, {"problems": total})


def check_chunk_symbols_in_occurrences(layout: ArtifactLayout) -> CheckOutcome:
    """Every chunk symbol occurs in ``scip_occurrences`` in the chunk's file and lines."""
    return _problems(
        "chunk_symbols_in_scip", layout, _STRAY_CHUNK_SYMBOLS, "chunk symbols without occurrence"
    )


def check_chunks_map_to_modules(layout: ArtifactLayout) -> CheckOutcome:
    """Every chunk maps to a module whose ``uri_prefix`` prefixes its uri."""
    return _problems(
        "chunks_map_to_modules", layout, _CHUNKS_WITHOUT_MODULE, "chunks without a module"
    )


def check_no_orphan_nodes(layout: ArtifactLayout) -> CheckOutcome:
    """No AST or CST node names a parent that does not exist."""
    sql = " UNION ALL ".join(_ORPHAN_NODES.format(table=t) for t in ("ast_nodes", "cst_nodes"))
    return _problems("no_orphan_syntax_nodes", layout, sql, "orphan nodes")


def check_edge_endpoints_defined(layout: ArtifactLayout) -> CheckOutcome:
    """Every symbol-edge endpoint with a uri is defined there in ``scip_occurrences``."""
    return _problems(
        "edge_endpoints_defined", layout, _UNDEFINED_EDGE_ENDPOINTS, "undefined edge endpoints"
    )


BLOCKING_CHECKS = (
    check_ann_recall,
    check_chunks_not_empty,
    check_faiss_round_trip,
    check_chunk_symbols_in_occurrences,
    check_chunks_map_to_modules,
)


Check = Callable[[ArtifactLayout], CheckOutcome]

# The costly checks that leave proofs, each with the catalog sources it reads (besides its
# catalog's view definitions and this code); ``faiss_index`` is the FAISS index file.
PROVEN_CHECKS: dict[Check, tuple[str, ...]] = {
    check_faiss_round_trip: ("faiss_index", "chunks", "faiss_idmap"),
    check_chunk_symbols_in_occurrences: ("chunks", "scip_occurrences"),
}
# What decides a check's outcome besides its inputs: this module, the catalog's builder
# and views, the FAISS reader.
_CHECK_CODE = ("validation.py", "catalog/catalog.py", "catalog/views.sql", "faiss_store.py")


@functools.cache
def _code_checksum() -> str:
    core = Path(__file__).parent
    return xxh64_json({name: xxh64_file(core / name) for name in _CHECK_CODE})


def proof_inputs(check: Check, layout: ArtifactLayout) -> dict[str, str | None]:
    """Return what a proof of ``check`` on ``layout`` is keyed by: the xxh64 of each file it
    reads (None: absent), of the catalog's view definitions and of the checking code."""
    sources = PROVEN_CHECKS[check]
    inputs = catalog_build.source_checksums(layout, tuple(s for s in sources if s != "faiss_index"))
    if "faiss_index" in sources:
        index = layout.faiss_index()
        inputs["faiss_index"] = xxh64_file(index) if index.is_file() else None
    inputs["catalog_definitions"] = catalog_build.definitions_checksum(layout)
    inputs["code"] = _code_checksum()
    return inputs


def run_proven(check: Check, layout: ArtifactLayout, proofs: Path | None) -> CheckOutcome:
    """Return the outcome of ``check`` on ``layout``: the proof kept in the folder ``proofs``
    when one was left on the same inputs (``proof_inputs``), else a run of the check; a
    pass leaves a proof when its inputs did not change while it ran.

    A check not in ``PROVEN_CHECKS``, no ``proofs`` folder, or an absent input: a run.
    """
    if proofs is None or check not in PROVEN_CHECKS:
        return check(layout)
    inputs = proof_inputs(check, layout)
    known = None not in inputs.values()
    path = proofs / f"{check.__name__}.json"
    proof = _read_proof(path)
    if known and proof is not None and proof["inputs"] == inputs:
        return CheckOutcome(
            proof["name"],
            True,
            proof["detail"] + " (proved on files of the same checksums)",
            {**proof["metadata"], "proved_before": True},
        )
    outcome = check(layout)
    if outcome.passed and known and proof_inputs(check, layout) == inputs:
        proofs.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, {"inputs": inputs, **dataclasses.asdict(outcome)})
    return outcome


_PROOF_FIELDS = {"inputs": dict, "name": str, "detail": str, "metadata": dict}


def _read_proof(path: Path) -> dict[str, Any] | None:
    """Return a proof file's content; None when missing, unreadable or not a passed check."""
    try:
        proof = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(proof, dict) or proof.get("passed") is not True:
        return None
    if not all(isinstance(proof.get(key), kind) for key, kind in _PROOF_FIELDS.items()):
        return None
    return proof


def validate_version(layout: ArtifactLayout, proofs: Path | None = None) -> list[str]:
    """Run the blocking checks, taking the proofs left in the folder ``proofs``
    (``run_proven``); return the failure messages (empty when all pass)."""
    failures = []
    for check in BLOCKING_CHECKS:
        try:
            outcome = run_proven(check, layout, proofs)
        except (duckdb.Error, OSError, RuntimeError) as exc:
            failures.append(f"{check.__name__}: {exc}")
            continue
        if not outcome.passed:
            failures.append(f"{outcome.name}: {outcome.detail}")
    return failures


def check_scip_matches_full_pass(ctx: BuildContext) -> CheckOutcome:
    """Incremental SCIP ≡ a full pass: scip-python run from scratch (no stored index, no
    state) over the manifest's Python files gives the stored ``scip_occurrences``,
    ``scip_symbols`` and ``symbol_edges`` row for row.

    Not checked (and reported so) when the index was ingested, is missing, or a Python
    file changed since the build (the next build re-indexes it).
    """
    name = "scip_matches_full_pass"
    layout = ctx.layout.build
    job = scip_job(ctx)
    if ctx.repo.scip_index or not layout.scip_index.exists():
        detail = "not checked: no index made by scip-python"
        return CheckOutcome(name, True, detail, {"checked": False})
    edited = [
        uri
        for uri, digest in job.files.items()
        if not (ctx.repo.root / uri).is_file()
        or (digest != "empty" and xxh64_file(ctx.repo.root / uri) != digest)
    ]
    if edited:
        detail = f"not checked: {len(edited)} Python files changed since the build"
        return CheckOutcome(name, True, detail, {"checked": False, "edited": edited[:10]})
    stored = {
        "scip_occurrences": pq.read_table(layout.scip_occurrences),
        "scip_symbols": pq.read_table(layout.scip_symbols),
        "symbol_edges": pq.read_table(layout.symbol_edges),
    }
    comparison = compare_with_full_pass(job, stored)
    if not comparison.ok:
        detail = f"the full scip-python pass failed: {comparison.failure}"
        return CheckOutcome(name, False, detail, {"checked": True})
    tables = {d.table: dataclasses.asdict(d) for d in comparison.differences}
    wrong = [
        f"{d.table}: {d.stale} stale and {d.missing} missing rows"
        for d in comparison.differences
        if d.stale or d.missing
    ]
    detail = "; ".join(wrong) or (
        f"a full pass of {comparison.documents} documents gives the stored tables "
        f"({', '.join(f'{d.table} {d.stored_rows}' for d in comparison.differences)} rows)"
    )
    return CheckOutcome(
        name,
        comparison.equal,
        detail,
        {"checked": True, "full_pass_seconds": round(comparison.seconds, 2), "tables": tables},
    )
