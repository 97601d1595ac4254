"""Benchmark the syntax tables and modules on a copy of standard-library packages.

Copies email, json, http, asyncio, logging, unittest and xml of the running Python
into a temporary repository and prints lines, rows/s of ``ast_nodes`` and
``cst_nodes``, the time of ``node_to_chunk`` (against 40-line window chunks) and of
``modules``. Run: ``python benchmarks/bench_syntax.py``.
"""

from __future__ import annotations

import shutil
import sysconfig
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from codeintel_assets.core.checksums import signed_xxh64
from codeintel_assets.core.modules import modules_table
from codeintel_assets.core.syntax import ast_nodes_table, cst_nodes_table, node_to_chunk_table

PACKAGES = ("email", "json", "http", "asyncio", "logging", "unittest", "xml")
WINDOW_LINES = 40


def copy_corpus(target: Path) -> list[tuple[str, str, bytes]]:
    """Copy the packages under ``target``; return their ``.py`` files as (uri, lang, bytes)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for package in PACKAGES:
        shutil.copytree(stdlib / package, target / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return [
        (path.relative_to(target).as_posix(), "python", path.read_bytes())
        for path in sorted(target.rglob("*.py"))
    ]


def window_chunks(files: list[tuple[str, str, bytes]]) -> pa.Table:
    """Return byte ranges of consecutive 40-line windows of every file (a stand-in chunker)."""
    ids, uris, starts, ends = [], [], [], []
    for uri, _, data in files:
        offsets = [0]
        for line in data.splitlines(keepends=True):
            offsets.append(offsets[-1] + len(line))
        for first in range(0, max(len(offsets) - 1, 1), WINDOW_LINES):
            start, end = offsets[first], offsets[min(first + WINDOW_LINES, len(offsets) - 1)]
            ids.append(signed_xxh64("bench", uri, start, end))
            uris.append(uri)
            starts.append(start)
            ends.append(end)
    return pa.table({"id": ids, "uri": uris, "start_byte": starts, "end_byte": ends})


def timed(label: str, rows: int, seconds: float) -> None:
    print(f"{label:<14} {rows:>9,} rows  {seconds:7.2f} s  {rows / seconds:>10,.0f} rows/s")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        files = copy_corpus(Path(tmp))
    lines = sum(data.count(b"\n") for _, _, data in files)
    print(f"corpus: {len(files)} files, {lines:,} lines, "
          f"{sum(len(d) for _, _, d in files) / 1e6:.1f} MB ({', '.join(PACKAGES)})")

    start = time.perf_counter()
    ast_table, ast_problems = ast_nodes_table("bench", [(u, d) for u, _, d in files])
    timed("ast_nodes", ast_table.num_rows, time.perf_counter() - start)

    start = time.perf_counter()
    cst_table, cst_problems = cst_nodes_table("bench", files)
    timed("cst_nodes", cst_table.num_rows, time.perf_counter() - start)
    print(f"diagnostics: ast {len(ast_problems)}, cst {len(cst_problems)}; "
          f"rows per line: ast {ast_table.num_rows / lines:.2f}, "
          f"cst {cst_table.num_rows / lines:.2f}")

    chunks = window_chunks(files)
    start = time.perf_counter()
    mapping = node_to_chunk_table(cst_table, chunks)
    seconds = time.perf_counter() - start
    print(f"node_to_chunk  {mapping.num_rows:>9,} rows  {seconds:7.2f} s  "
          f"(cst nodes x {chunks.num_rows:,} window chunks)")

    start = time.perf_counter()
    modules, _ = modules_table(files, chunks)
    seconds = time.perf_counter() - start
    edges = sum(modules.column("out_deg").to_pylist())
    print(f"modules        {modules.num_rows:>9,} rows  {seconds:7.2f} s  ({edges} import edges)")


if __name__ == "__main__":
    main()
