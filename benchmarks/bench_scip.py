"""Benchmark the SCIP path on real code: scip-python, our decoder, the tables and edges.

The corpus is a copy of several standard-library packages of the running Python
(``email``, ``json``, ``http``, ``asyncio``, ``logging``, ``unittest``, ``xml``) in a
temporary directory. Prints line counts, scip-python wall time, decode rate and the
time to build ``scip_occurrences``, ``scip_symbols`` and ``symbol_edges``.

Run: ``python benchmarks/bench_scip.py [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from codeintel_assets.core.scip.indexer import run_scip_python
from codeintel_assets.core.scip.json_reader import read_scip_json, scip_json_from_index
from codeintel_assets.core.scip.tables import occurrences_table, repo_text_reader, symbols_table
from codeintel_assets.core.scip.wire import decode_scip_protobuf
from codeintel_assets.core.symbols import python_syntax_sites, symbol_edges_table

T = TypeVar("T")
PACKAGES = ("email", "json", "http", "asyncio", "logging", "unittest", "xml")


def build_corpus(target: Path) -> tuple[int, int]:
    """Copy the packages into ``target``; return (python files, lines)."""
    stdlib = Path(json.__file__).resolve().parent.parent
    for name in PACKAGES:
        shutil.copytree(stdlib / name, target / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    files = sorted(target.rglob("*.py"))
    lines = sum(len(f.read_bytes().splitlines()) for f in files)
    return len(files), lines


def timed(label: str, func: Callable[..., T], *args: object) -> tuple[T, float]:
    """Call ``func(*args)``, print its wall time, return (value, seconds)."""
    started = time.perf_counter()
    value = func(*args)
    seconds = time.perf_counter() - started
    print(f"{label:<34} {seconds:8.2f} s")
    return value, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", type=Path, help="build the corpus here and keep it")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-scip-"))
    corpus = work / "corpus"
    if corpus.exists():
        shutil.rmtree(corpus)
    corpus.mkdir(parents=True)
    files, lines = build_corpus(corpus)
    print(f"corpus: {', '.join(PACKAGES)}: {files} files, {lines} lines")

    output = work / "index.scip"
    result, _ = timed("scip-python index", run_scip_python, corpus, output, "bench", "0")
    if not result.ok:
        raise SystemExit(f"scip-python failed: {result.reason}\n{result.stderr_tail}")
    print(f"index.scip: {output.stat().st_size / 1e6:.1f} MB")

    index, decode_s = timed("decode index.scip (our decoder)", decode_scip_protobuf, output)
    count = index.occurrence_count
    print(f"  {len(index.documents)} documents, {count} occurrences, "
          f"{count / decode_s:,.0f} occurrences/s")

    json_path = work / "index.scip.json"
    json_path.write_text(json.dumps(scip_json_from_index(index)), encoding="utf-8")
    _, json_s = timed("read index.scip.json", read_scip_json, json_path)
    print(f"  {count / json_s:,.0f} occurrences/s")

    read_text = repo_text_reader(corpus)
    occurrences, occ_s = timed("occurrences_table", occurrences_table, index, read_text)
    print(f"  {occurrences.num_rows} rows, {occurrences.num_rows / occ_s:,.0f} rows/s")
    symbols, _ = timed("symbols_table", symbols_table, index)
    print(f"  {symbols.num_rows} rows")
    uris = sorted(set(occurrences["uri"].to_pylist()))
    sites, _ = timed("python_syntax_sites (ast)", python_syntax_sites, uris, read_text)
    print(f"  {len(sites.calls)} call sites, {len(sites.unparsed)} unparsed files")
    edges, _ = timed("symbol_edges_table", symbol_edges_table, occurrences, symbols,
                     sites.calls, sites.import_lines)
    kinds = edges.group_by("edge").aggregate([("weight", "sum")]).to_pylist()
    print(f"  {edges.num_rows} edges: "
          + ", ".join(f"{k['edge']}={k['weight_sum']}" for k in kinds))
    if args.keep is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
