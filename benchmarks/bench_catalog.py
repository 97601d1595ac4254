"""Catalog hydration benchmark: synthetic chunks, real Parquet, real DuckDB.

Hydrating 200 ids (input order kept) is the catalog's invariant: at most 6 ms warm and
12 ms cold. This script measures, in one run and on the same data, the path
``CatalogReader.hydrate`` takes and the alternatives it was chosen from:

* ``hydrate`` (kept): each id's page of ``chunk_pages`` (``id >> page_shift``), the pages
  looked up with one list parameter, ``page = ANY(?)`` (an index scan of the pages'
  small index), each row found in its page's string and all parsed at once; filters
  applied to the rows by the same compiled globs;
* the same pages looked up with an IN-list of bound parameters (the kept path until
  ``page = ANY(?)``);
* the former kept path, in a copy of the catalog without ``chunk_pages``: ``id = ANY(?)``
  answered by an index scan of ``chunks_mat``, reading the default fields from
  ``hydration_row`` (one JSON array per chunk), filters in SQL;
* the same IN-list reading each column (the former ``hydrate``), in this file and in a
  copy of ``chunks_mat`` in the former layout (256 KB blocks, no ``hydration_row``);
* the seed's ``UNNEST(?) WITH ORDINALITY`` join (a full scan of ``chunks_mat``);
* ``id = ANY(?::BIGINT[])`` reading each column (one list parameter: DuckDB 2.0 folds it
  into an IN filter and scans the index);
* row numbers first: ids to row numbers with ``searchsorted`` over the id column read
  when the reader opens, then ``rowid = ANY(?)``;
* the same IN-list with DuckDB's index scan turned off: a scan of the id-sorted table
  that row-group zonemaps prune;
* the IN-list over a copy of ``chunks_mat`` with DuckDB's automatic compression;
* the Parquet views (no materialized tables), and the opt-in joins and filters.

Warm: one open reader, each option once per round, each on its own 200 random ids
(drawn alike, so one option's rows are not in the CPU caches for the next), rounds
interleaved and each starting one option further (so load, and the wake of the slowest
options, hit every option alike); the median and the fastest round are printed. Twice:
first with rows the reader has not read before, then after every block of the tables
and of their id index was read into DuckDB's buffer pool (the invariant's "warm").

Cold: a fresh Python process (``duckdb`` and the catalog package imported before the
clock starts) opens the catalog (``open``: connect, check, look the tables up) and
hydrates 200 ids once (``first query``): no page of the file has been read by that
process before ``open``, and none of the rows' pages before the first query. Twice:
with the file's pages in the OS page cache (as right after a publish), and with them
dropped (``posix_fadvise(POSIX_FADV_DONTNEED)`` on every file before the process
starts, so every page the query needs comes from the disk); 200 random 4 KB reads of
the same cold file are printed as the disk's own floor.

    python benchmarks/bench_catalog.py [--chunks 100000] [--dim 384] [--runs 30]
        [--cold-runs 15] [--root DIR | --data DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
sys.path.insert(0, str(PROJECT))

from codeintel_assets.core import schemas  # noqa: E402
from codeintel_assets.core.catalog import (  # noqa: E402
    CHUNK_COLUMNS,
    HYDRATION_COLUMNS,
    CatalogReader,
    ChunkFilter,
    build_catalog,
    query,
)
from codeintel_assets.core.catalog.catalog import CHUNK_PAGES, HYDRATION_ROW_FIELDS  # noqa: E402
from codeintel_assets.core.layout import ArtifactLayout  # noqa: E402

FORMER_KEPT = "hydrate without chunk_pages (chunks_mat, hydration_row: the former kept path)"
PAGES_IN_LIST = "chunk_pages looked up with an IN-list (the kept path until page = ANY)"
TARGET_WARM_MS = 6.0
TARGET_COLD_MS = 12.0
K = 200
LANGS = ("python", "javascript", "typescript", "markdown")
EXTS = ("py", "js", "ts", "md")
COLUMNS = ", ".join(f"c.{c}" for c in HYDRATION_COLUMNS)

_COLD_SCRIPT = """
import json, sys, time
import duckdb
from codeintel_assets.core.catalog import CatalogReader, ChunkFilter
from pathlib import Path
ids, mode = json.loads(sys.argv[2]), sys.argv[3]
if mode == "pages_in_list":
    sys.path.insert(0, sys.argv[4])
    from bench_catalog import pages_in_list
t0, c0 = time.perf_counter(), time.process_time()
with CatalogReader(Path(sys.argv[1])) as reader:
    t1, c1 = time.perf_counter(), time.process_time()
    if mode == "ids":
        rows = reader.hydrate(ids, columns=("id",))
    elif mode == "pages_in_list":
        rows = pages_in_list(reader, ids)
    elif mode == "filter":
        keep = ChunkFilter(include_globs=["pkg1*/**"], exclude_globs=["*.md"])
        rows = reader.hydrate(ids, filters=keep)
        ids = [r["id"] for r in rows]
    else:
        rows = reader.hydrate(ids, join_modules=mode == "joins", join_faiss=mode == "joins")
    t2, c2 = time.perf_counter(), time.process_time()
    assert [r["id"] for r in rows] == ids
times = {"open": (t1 - t0, c1 - c0), "query": (t2 - t1, c2 - c1)}
print(json.dumps({name: [1e3 * v for v in pair] for name, pair in times.items()}))
"""


def write_synthetic(layout: ArtifactLayout, n: int, dim: int, seed: int = 0) -> None:
    """Write n chunks (20 per file, 200 directories), modules, an id map and one SCIP
    definition per chunk."""
    rng = np.random.default_rng(seed)
    files = max(1, n // 20)
    dirs = [f"pkg{i}/sub{j}" for i in range(20) for j in range(10)]
    file_uris = [f"{dirs[i % len(dirs)]}/mod_{i}.{EXTS[i % 4]}" for i in range(files)]
    file_of = np.arange(n) // 20 % files
    uris = [file_uris[i] for i in file_of]
    # Chunk ids are signed xxh64 hashes: uniform over all of int64 (chunk_pages relies on it).
    ids = np.unique(rng.integers(-(2**63), 2**63 - 1, int(n * 1.01) + 16, dtype=np.int64))
    ids = rng.permutation(ids)[:n]
    words = np.array(["def", "return", "self", "value", "for", "in", "if", "import", "data"])
    base = " ".join(words[rng.integers(0, len(words), 250)])
    content = [f"# chunk {k}\n{base[(k * 7) % 400 :]}" for k in range(n)]
    start = (np.arange(n) % 20) * 30 + 1
    emb = rng.standard_normal((n, dim), dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    symbols = [f"py {u}/f{k}()." for k, u in enumerate(uris)]
    table = pa.table(
        {
            "id": ids,
            "uri": uris,
            "start_line": start.astype(np.int32),
            "end_line": (start + 29).astype(np.int32),
            "start_byte": start * 40,
            "end_byte": start * 40 + 1200,
            "preview": [c[:240] for c in content],
            "content": content,
            "lang": [LANGS[i % 4] for i in file_of],
            "content_hash": [f"{k:016x}" for k in range(n)],
            "symbols": [[s, f"py {u}/value."] for s, u in zip(symbols, uris, strict=True)],
            "kind": ["function"] * n,
            "name": [f"f{k}" for k in range(n)],
            "token_count": np.full(n, 120, np.int32),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), dim),
        }
    )
    schemas.write_parquet(table, layout.chunks, schemas.chunk_schema(dim))
    prefixes = sorted({d.split("/")[0] + "/" for d in dirs} | {d + "/" for d in dirs})
    modules = {name: [0] * len(prefixes) for name in schemas.MODULES.names}
    modules.update(
        module_id=[p.rstrip("/").replace("/", ".") for p in prefixes],
        uri_prefix=prefixes,
        language=["python"] * len(prefixes),
        doc_cov=[0.0] * len(prefixes),
        centrality=[0.0] * len(prefixes),
    )
    schemas.write_parquet(pa.table(modules), layout.modules_parquet, schemas.MODULES)
    idmap = pa.table(
        {
            "faiss_row": np.arange(n, dtype=np.int64),
            "faiss_id": ids,
            "index_name": ["chunks"] * n,
            "build_version": ["bench"] * n,
            "ts": pa.array(np.zeros(n, dtype=np.int64), pa.timestamp("us", tz="UTC")),
        }
    )
    schemas.write_parquet(idmap, layout.faiss_idmap, schemas.FAISS_IDMAP)
    zeros = np.zeros(n, np.int32)
    defs = pa.table(
        {
            "symbol": symbols,
            "uri": uris,
            "role": ["def"] * n,
            "roles": np.ones(n, np.int32),
            "start_line": (start + 1).astype(np.int32),
            "start_char": zeros,
            "end_line": (start + 1).astype(np.int32),
            "end_char": np.full(n, 5, np.int32),
            "enclosing_start_line": start.astype(np.int32),
            "enclosing_end_line": (start + 28).astype(np.int32),
        }
    )
    schemas.write_parquet(defs, layout.scip_occurrences, schemas.SCIP_OCCURRENCES)


def copy_in_former_layout(catalog: Path, target: Path) -> None:
    """Write ``chunks_mat`` again into ``target`` as it was before ``hydration_row``:
    256 KB blocks, the same columns (hydrated strings uncompressed), the id index."""
    with duckdb.connect(str(target), config={"default_block_size": "262144"}) as con:
        con.execute("ATTACH ? AS src (READ_ONLY)", [str(catalog)])
        con.execute(f"CREATE TABLE chunks_mat ({_former_columns(con)})")
        con.execute(
            "INSERT INTO chunks_mat BY NAME "
            "SELECT * EXCLUDE (hydration_row) FROM src.chunks_mat ORDER BY id"
        )
        con.execute("CREATE INDEX idx_chunks_mat_id ON chunks_mat (id)")
        con.execute("DETACH src")
        con.execute("CHECKPOINT")


def _former_columns(con: duckdb.DuckDBPyConnection) -> str:
    """The column list of ``src.chunks_mat`` without ``hydration_row``, each column stored
    as it is there (uncompressed where that table has it uncompressed)."""
    rows = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() "
        "WHERE database_name = 'src' AND table_name = 'chunks_mat' "
        "AND column_name <> 'hydration_row' ORDER BY column_index"
    ).fetchall()
    uncompressed = {
        name
        for (name,) in con.execute(
            "SELECT DISTINCT column_name FROM pragma_storage_info('src.chunks_mat') "
            "WHERE compression = 'Uncompressed' AND segment_type <> 'VALIDITY'"
        ).fetchall()
    }
    return ", ".join(
        f"{name} {kind}" + (" USING COMPRESSION uncompressed" if name in uncompressed else "")
        for name, kind in rows
    )


def copy_without_pages(catalog: Path, target: Path) -> None:
    """Copy ``catalog`` to ``target`` without ``chunk_pages``: its reader hydrates from
    ``chunks_mat`` (the former kept path)."""
    shutil.copyfile(catalog, target)
    with duckdb.connect(str(target)) as con:
        con.execute("DROP TABLE chunk_pages")
        con.execute("DROP TABLE chunk_pages_meta")
        con.execute("CHECKPOINT")


def copy_with_automatic_compression(catalog: Path, target: Path) -> None:
    """Write ``chunks_mat`` again into ``target`` with DuckDB's automatic compression."""
    with duckdb.connect(str(target)) as con:
        con.execute("ATTACH ? AS src (READ_ONLY)", [str(catalog)])
        con.execute(
            "CREATE TABLE chunks_auto AS "
            "SELECT * EXCLUDE (hydration_row) FROM src.chunks_mat ORDER BY id"
        )
        con.execute("CREATE INDEX idx_chunks_auto_id ON chunks_auto (id)")
        con.execute("DETACH src")
        con.execute("CHECKPOINT")


def sql_options(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, Callable]:
    """The alternatives to ``hydrate`` over ``table``, each returning rows in input order."""
    sorted_ids = con.execute(f"SELECT id FROM {table} ORDER BY rowid").fetchnumpy()["id"]

    def in_order(ids: list[int], rows: list[tuple]) -> list[tuple]:
        by_id = {row[0]: row for row in rows}
        return [by_id[i] for i in ids if i in by_id]

    def ordinality(ids: list[int]) -> list[tuple]:
        sql = (
            f"SELECT {COLUMNS} FROM unnest(?::BIGINT[]) WITH ORDINALITY AS r(req_id, ord) "
            f"JOIN {table} AS c ON c.id = r.req_id ORDER BY r.ord"
        )
        return con.execute(sql, [ids]).fetchall()

    def in_list(ids: list[int]) -> list[tuple]:
        sql = f"SELECT {COLUMNS} FROM {table} AS c WHERE c.id IN ({', '.join('?' * len(ids))})"
        return in_order(ids, con.execute(sql, ids).fetchall())

    def any_list(ids: list[int]) -> list[tuple]:
        sql = f"SELECT {COLUMNS} FROM {table} AS c WHERE c.id = ANY(?::BIGINT[])"
        return in_order(ids, con.execute(sql, [ids]).fetchall())

    def row_numbers(ids: list[int]) -> list[tuple]:
        wanted = np.asarray(ids, dtype=np.int64)
        pos = np.minimum(np.searchsorted(sorted_ids, wanted), len(sorted_ids) - 1)
        rows = pos[sorted_ids[pos] == wanted].tolist()
        sql = f"SELECT {COLUMNS} FROM {table} AS c WHERE c.rowid = ANY(?::BIGINT[])"
        return in_order(ids, con.execute(sql, [rows]).fetchall())

    return {
        "UNNEST WITH ORDINALITY join (the seed's query)": ordinality,
        "IN-list reading each column (the former hydrate)": in_list,
        "id = ANY(list parameter)": any_list,
        "row numbers first (searchsorted), rowid = ANY": row_numbers,
    }


def interleaved(options: dict[str, Callable], ids: np.ndarray, runs: int, k: int) -> dict:
    """Return {name: (median ms, fastest ms, median CPU ms)}, each option once per round.

    Every round hydrates a fresh sample with each option (one sample per option),
    starting one option further each round. CPU ms is the process's
    CPU time (all threads) per call: less sensitive than wall time to other work on the
    machine, higher than it where DuckDB scans on several threads.
    """
    rng = np.random.default_rng(7)
    wall: dict[str, list[float]] = {name: [] for name in options}
    cpu: dict[str, list[float]] = {name: [] for name in options}
    for option in options.values():  # one warm-up each
        option(rng.choice(ids, k, replace=False).tolist())
    names = list(options)
    for run in range(runs):
        # Each option its own sample: rows one option read are not in the CPU caches
        # (nor DuckDB's buffer pool) for the next; the ids are drawn alike for all. Each
        # round starts one option further: the option after the slowest ones (their
        # allocations, evicted caches) is not the same one every round.
        for name in names[run % len(names) :] + names[: run % len(names)]:
            option = options[name]
            sample = rng.choice(ids, k, replace=False).tolist()
            started, started_cpu = time.perf_counter(), time.process_time()
            rows = option(sample)
            wall[name].append((time.perf_counter() - started) * 1e3)
            cpu[name].append((time.process_time() - started_cpu) * 1e3)
            assert rows is None or len(rows) == k, (name, len(rows))
    return {
        name: (statistics.median(wall[name]), min(wall[name]), statistics.median(cpu[name]))
        for name in options
    }


def load_into_buffer_pool(
    con: duckdb.DuckDBPyConnection, table: str, ids: np.ndarray, key: str = "id"
) -> None:
    """Read every block of ``table`` and of its index on ``key`` (all of ``ids``), so
    DuckDB holds them in memory."""
    columns = [
        name
        for (name,) in con.execute(
            "SELECT column_name FROM duckdb_columns() "
            "WHERE table_name = ? AND database_name = current_database()",
            [table],
        ).fetchall()
    ]
    con.execute(
        f"SELECT {', '.join(f'max(length({c}::VARCHAR))' for c in columns)} FROM {table}"
    ).fetchall()
    for start in range(0, len(ids), 2000):
        batch = ids[start : start + 2000].tolist()
        sql = f"SELECT count(*) FROM {table} WHERE {key} IN ({', '.join('?' * len(batch))})"
        con.execute(sql, batch).fetchall()


def drop_page_cache(root: Path) -> None:
    """Drop every file under ``root`` from the OS page cache (clean pages only)."""
    for path in root.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def cold(
    catalog: Path, ids: np.ndarray, runs: int, drop_root: Path | None, mode: str = "default"
) -> dict:
    """Return {"open"|"query": (median wall ms, fastest wall ms, median CPU ms)}.

    ``mode``: ``default`` hydrates the default columns, ``joins`` adds join_modules and
    join_faiss, ``ids`` asks for the id alone (the id index and the id column: what any
    layout of the rows reads at least)."""
    rng = np.random.default_rng(11)
    samples: dict[str, list[list[float]]] = {"open": [], "query": []}
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    for _ in range(runs):
        sample = json.dumps(rng.choice(ids, K, replace=False).tolist())
        if drop_root is not None:
            drop_page_cache(drop_root)
        out = subprocess.run(
            [sys.executable, "-c", _COLD_SCRIPT, str(catalog), sample, mode, str(HERE)],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        # The last line: DuckDB may print a progress bar before it on a slow query.
        for name, pair in json.loads(out.stdout.strip().splitlines()[-1]).items():
            samples[name].append(pair)
    return {
        name: (
            statistics.median(w for w, _ in pairs),
            min(w for w, _ in pairs),
            statistics.median(c for _, c in pairs),
        )
        for name, pairs in samples.items()
    }


def random_reads_ms(path: Path, reads: int = K, size: int = 4096) -> float:
    """Return the time of ``reads`` random ``size``-byte reads of ``path`` after a drop."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        blocks = max(1, path.stat().st_size // size)
        offsets = random.Random(3).sample(range(blocks), min(reads, blocks))
        started = time.perf_counter()
        for offset in offsets:
            os.pread(fd, size, offset * size)
        return (time.perf_counter() - started) * 1e3
    finally:
        os.close(fd)


def reader_options(
    reader: CatalogReader, former: CatalogReader, filters: dict[str, ChunkFilter]
) -> dict:
    options = {
        "hydrate (kept)": lambda ids: reader.hydrate(ids),
        f"{FORMER_KEPT}": lambda ids: former.hydrate(ids),
        PAGES_IN_LIST: lambda ids: pages_in_list(reader, ids),
        "hydrate, every column (+ content, symbols)": lambda ids: reader.hydrate(
            ids, columns=CHUNK_COLUMNS
        ),
        "hydrate + symbols (what search asks)": lambda ids: reader.hydrate(
            ids, columns=(*HYDRATION_COLUMNS, "symbols")
        ),
        "hydrate + join_modules": lambda ids: reader.hydrate(ids, join_modules=True),
        "hydrate + join_faiss": lambda ids: reader.hydrate(ids, join_faiss=True),
        "hydrate + join_modules + join_faiss": lambda ids: reader.hydrate(
            ids, join_modules=True, join_faiss=True
        ),
        "hydrate + join_symbols": lambda ids: reader.hydrate(ids, join_symbols=True),
    }
    for label, chunk_filter in filters.items():
        options[f"hydrate, filter {label}"] = unchecked(
            lambda ids, f=chunk_filter: reader.hydrate(ids, filters=f)
        )
        options[f"{FORMER_KEPT}, filter {label}"] = unchecked(
            lambda ids, f=chunk_filter: former.hydrate(ids, filters=f)
        )
    return options


def pages_in_list(reader: CatalogReader, ids: list[int]) -> list[dict]:
    """The default fields from ``chunk_pages`` with the pages looked up by an IN-list of
    bound parameters padded to a multiple of 16: the kept path until ``page = ANY(?)``."""
    shift = reader._page_shift
    pages = sorted({i >> shift for i in ids})
    pages += pages[-1:] * (-len(pages) % 16)
    sql = f"SELECT page, rows FROM {CHUNK_PAGES} WHERE page IN ({', '.join('?' * len(pages))})"
    text = dict(reader._con.execute(sql, pages).fetchall())
    found, lines = [], []
    for chunk_id in dict.fromkeys(ids):
        line = query._page_line(text.get(chunk_id >> shift), chunk_id)
        if line is not None:
            found.append(chunk_id)
            lines.append(line)
    parsed = json.loads(b"[" + b",".join(lines) + b"]")
    return [
        {"chunk_id": i, "id": i, **dict(zip(HYDRATION_ROW_FIELDS, values, strict=True))}
        for i, values in zip(found, parsed, strict=True)
    ]


def unchecked(option: Callable) -> Callable:
    """Return ``option`` answering None: its row count depends on a filter."""

    def run(ids: list[int]) -> None:
        option(ids)

    return run


def print_table(
    title: str, rows: list[tuple[str, float, float | None, float | None, float | None]]
) -> None:
    print(f"\n## {title} (load average {os.getloadavg()[0]:.1f})\n")
    print("| measure | median ms | fastest ms | CPU ms | target | met |")
    print("|---|---:|---:|---:|---:|---|")
    for name, median, fastest, cpu, target in rows:
        met = "" if target is None else ("yes" if median <= target else "NO")
        cells = ["" if v is None else f"{v:.2f}" for v in (fastest, cpu)]
        print(
            f"| {name} | {median:.2f} | {cells[0]} | {cells[1]} | "
            f"{'' if target is None else target} | {met} |"
        )


def prepare(
    data: Path, chunks: int, dim: int
) -> tuple[ArtifactLayout, ArtifactLayout, Path, Path, Path]:
    """Write the synthetic data and the five catalogs under ``data``, unless a run with
    the same ``chunks`` and ``dim`` prepared them there; return (Parquet-views layout,
    materialized layout, automatic-compression copy, former-layout copy, copy without
    ``chunk_pages``)."""
    views, mat = ArtifactLayout(data / "views"), ArtifactLayout(data / "mat")
    auto, former = data / "auto" / "auto.duckdb", data / "former" / "former.duckdb"
    unpaged = data / "unpaged" / "unpaged.duckdb"
    marker = data / "prepared.json"
    wanted = {"chunks": chunks, "dim": dim, "layout": "chunk_pages-v1", "ids": "int64"}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        print(f"reusing the catalogs of {data} ({chunks} chunks, dim {dim})")
        return views, mat, auto, former, unpaged
    for path in (views.root, mat.root, auto.parent, former.parent, unpaged.parent):
        shutil.rmtree(path, ignore_errors=True)
    started = time.perf_counter()
    write_synthetic(mat, chunks, dim)
    shutil.copytree(mat.root, views.root)
    print(
        f"synthetic data: {chunks} chunks, dim {dim}, "
        f"{mat.chunks.stat().st_size / 1e6:.0f} MB Parquet, "
        f"{time.perf_counter() - started:.1f} s"
    )
    started = time.perf_counter()
    build_catalog(views)
    print(f"Parquet views catalog: build {time.perf_counter() - started:.2f} s")
    started = time.perf_counter()
    build_catalog(mat, materialize=True)
    print(
        f"materialized catalog: build {time.perf_counter() - started:.2f} s, "
        f"{mat.catalog.stat().st_size / 1e6:.1f} MB"
    )
    auto.parent.mkdir(parents=True)
    copy_with_automatic_compression(mat.catalog, auto)
    print(f"chunks_mat with automatic compression: {auto.stat().st_size / 1e6:.1f} MB")
    former.parent.mkdir(parents=True)
    copy_in_former_layout(mat.catalog, former)
    print(f"chunks_mat in the former layout: {former.stat().st_size / 1e6:.1f} MB")
    unpaged.parent.mkdir(parents=True)
    copy_without_pages(mat.catalog, unpaged)
    with duckdb.connect(str(mat.catalog), read_only=True) as con:
        pages, shift, size = con.execute(
            "SELECT count(*), min(page_shift), avg(octet_length(rows)) FROM chunk_pages"
        ).fetchone()
    print(f"chunk_pages: {pages} pages (page_shift {shift}), {size:.0f} bytes a page")
    marker.write_text(json.dumps(wanted))
    return views, mat, auto, former, unpaged


def chunk_ids(catalog: Path) -> np.ndarray:
    """Return the ids of ``catalog``'s chunks, in id order."""
    with duckdb.connect(str(catalog), read_only=True) as con:
        return con.execute("SELECT id FROM chunks_mat ORDER BY id").fetchnumpy()["id"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--cold-runs", type=int, default=15)
    parser.add_argument("--root", type=Path, default=None, help="parent of the temp dir")
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="keep the catalogs here and reuse them in the next run (same --chunks, --dim)",
    )
    args = parser.parse_args()
    filters = {
        "glob pkg3/**": ChunkFilter(include_globs=["pkg3/**"]),
        "glob pkg1?/sub[0-4]/*.py": ChunkFilter(include_globs=["pkg1?/sub[0-4]/*.py"]),
        "glob {pkg1,pkg2}/** exclude *.md": ChunkFilter(
            include_globs=["{pkg1,pkg2}/**"], exclude_globs=["*.md"]
        ),
        "language python": ChunkFilter(languages=["python"]),
    }
    with contextlib.ExitStack() as stack:
        if args.data is None:
            data = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=args.root)))
        else:
            data = args.data
        views, mat, auto, former, unpaged = prepare(data, args.chunks, args.dim)
        ids = chunk_ids(mat.catalog)

        with (
            CatalogReader(mat.catalog) as reader,
            CatalogReader(views.catalog) as on_views,
            CatalogReader(unpaged) as former_kept,
        ):
            mat_con = duckdb.connect(str(mat.catalog), read_only=True)
            auto_con = duckdb.connect(str(auto), read_only=True)
            former_con = duckdb.connect(str(former), read_only=True)
            # The id-sorted table without its index: a scan that row-group zonemaps prune.
            # A copy of the file: the setting is global to a database instance, and
            # connections to one path share one.
            zonemap = data / "zonemap.duckdb"
            shutil.copyfile(mat.catalog, zonemap)
            zonemap_con = duckdb.connect(str(zonemap), read_only=True)
            zonemap_con.execute("SET index_scan_max_count = 0")
            zonemap_con.execute("SET index_scan_percentage = 0")
            plan = zonemap_con.execute(
                "EXPLAIN ANALYZE SELECT id FROM chunks_mat WHERE id IN (?, ?)", ids[:2].tolist()
            ).fetchall()[0][1]
            assert "Index Scan" not in plan, plan
            each_column = "IN-list reading each column (the former hydrate)"
            seed_join = "UNNEST WITH ORDINALITY join (the seed's query)"
            options = {
                **reader_options(reader, former_kept, filters),
                **{
                    f"{name}, chunks_mat": option
                    for name, option in sql_options(mat_con, "chunks_mat").items()
                },
                f"{each_column}, former layout (256 KB blocks)": sql_options(
                    former_con, "chunks_mat"
                )[each_column],
                f"{each_column}, index scan off (id zonemaps)": sql_options(
                    zonemap_con, "chunks_mat"
                )[each_column],
                "IN-list, chunks_mat with automatic compression": sql_options(
                    auto_con, "chunks_auto"
                )[each_column],
                "UNNEST WITH ORDINALITY join, automatic compression": sql_options(
                    auto_con, "chunks_auto"
                )[seed_join],
                "hydrate over the Parquet views (no chunks_mat)": lambda s: on_views.hydrate(s),
            }
            first_read = interleaved(options, ids, args.runs, K)
            for con, table in ((mat_con, "chunks_mat"), (former_con, "chunks_mat")):
                load_into_buffer_pool(con, table, ids)
            # The readers' own connections: the pages and their index, and the copy's table.
            (shift,) = mat_con.execute("SELECT min(page_shift) FROM chunk_pages").fetchone()
            pages = np.unique(ids >> shift)
            load_into_buffer_pool(reader._con, "chunk_pages", pages, key="page")
            load_into_buffer_pool(reader._con, "chunks_mat", ids)
            load_into_buffer_pool(former_kept._con, "chunks_mat", ids)
            load_into_buffer_pool(auto_con, "chunks_auto", ids)
            warm = interleaved(options, ids, args.runs, K)
            combined = ChunkFilter(
                include_globs=["pkg1*/**"],
                exclude_globs=["*.md"],
                languages=["python", "typescript"],
            )
            filter_1000 = interleaved(
                {
                    "filter_ids 1000 ids, glob + exclude + languages": unchecked(
                        lambda s: reader.filter_ids(s, combined)
                    ),
                    f"filter_ids 1000 ids, {FORMER_KEPT}": unchecked(
                        lambda s: former_kept.filter_ids(s, combined)
                    ),
                },
                ids,
                args.runs,
                1000,
            )
            former_con.close()
            zonemap_con.close()
            auto_con.close()
            mat_con.close()
        print_table(
            f"warm reader, rows not read before: {K} random ids of {args.chunks}",
            [(name, *figures, None) for name, figures in first_read.items()],
        )
        rows = [
            (name, median, fastest, cpu, TARGET_WARM_MS if name == "hydrate (kept)" else None)
            for name, (median, fastest, cpu) in {**warm, **filter_1000}.items()
        ]
        print_table(
            f"warm: tables and id index in DuckDB's buffer pool, {K} random ids of {args.chunks}",
            rows,
        )
        if not args.cold_runs:
            return

        cold_rows = []
        for label, catalog, root in (
            ("materialized", mat.catalog, mat.root),
            ("without chunk_pages (the former kept path)", unpaged, unpaged.parent),
            ("former layout (256 KB blocks, no hydration_row)", former, former.parent),
            ("Parquet views", views.catalog, views.root),
        ):
            for cache, drop_root in (("page cache warm", None), ("page cache dropped", root)):
                measured = cold(catalog, ids, args.cold_runs, drop_root)
                target = TARGET_COLD_MS if cache == "page cache warm" else None
                cold_rows += [
                    (f"{label}: first query, {cache}", *measured["query"], target),
                    (f"{label}: open, {cache}", *measured["open"], None),
                ]
        for mode, label in (
            ("filter", "first query, filter {pkg1*/**} minus *.md"),
            ("joins", "first query + join_modules + join_faiss"),
            ("ids", "first query, the ids alone"),
            ("pages_in_list", "first query, chunk_pages looked up with an IN-list"),
        ):
            for name, catalog in (("materialized", mat.catalog), ("without chunk_pages", unpaged)):
                if mode == "pages_in_list" and catalog == unpaged:
                    continue
                measured = cold(catalog, ids, args.cold_runs, None, mode)
                cold_rows.append((f"{name}: {label}, page cache warm", *measured["query"], None))
        cold_rows.append(
            (
                f"disk floor: {K} random 4 KB reads of the dropped catalog file",
                random_reads_ms(mat.catalog),
                None,
                None,
                None,
            )
        )
        cold_rows = [
            (*row[:4], row[4] if row[0].startswith("materialized") else None) for row in cold_rows
        ]
        print_table("cold: a fresh process, nothing of the catalog read yet", cold_rows)


if __name__ == "__main__":
    main()
