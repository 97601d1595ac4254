"""Score search on the external code-search benchmark (``../shared/benchmarks/semble/``).

Every repository of the benchmark is registered and built through the normal pipeline
(the Dagster graph of ``indexctl build``, the real default model, scip-python...), with
the benchmark root as its include glob so that result uris are the annotations' paths.
Then every question is searched in every mode — hybrid, dense and bm25 as ``indexctl
search`` ranks them (whole units; a result's lines are its unit's), and ``baseline``:
the ranking before units (RRF of FAISS chunks and BM25 over chunks) over the same
published artifacts, in the same run — and scored with NDCG@10 exactly as the
benchmark's README says:

* chunk protocol (what a user sees): the top 10 results as returned; a result matches
  a target when the paths match and, for a target with a span, the lines overlap;
  a position holding the first match of one or more targets has gain 1;
* file level (how the file-level tools were scored): the de-duplicated file list of
  the results, spans ignored.

It prints, per repository and per category, our figures beside the published ones of
the other tools, then the mean over repositories, and writes every query's ranked list
to ``benchmarks/out/external.json``.

Run: ``python benchmarks/bench_external.py [--semble DIR] [--data DIR] [--repos a,b]
[--modes dense] [--backend onnx]`` (``--modes dense``: dense only; ``--backend``: what runs
the embedding model, recorded in each build).
The data folder keeps the builds (and the embedding cache) between runs; a rebuild of an
unchanged repository does no work.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq

from codeintel_assets.core import faiss_store, registry
from codeintel_assets.core.embedding import BACKENDS, DEFAULT_BACKEND, embedding_text
from codeintel_assets.core.fusion import rrf
from codeintel_assets.core.layout import PROJECT_ROOT
from codeintel_assets.core.lexical import build_bm25
from codeintel_assets.core.search import MODES, CodeIndex
from codeintel_assets.resources import CodeintelResource
from codeintel_assets.runner import build_repository

SEMBLE = PROJECT_ROOT.parent / "shared" / "benchmarks" / "semble"
OUT = Path(__file__).resolve().parent / "out"
K = 10
PEERS = ("semble", "coderankembed-hybrid", "ck", "gitnexus", "codegraph", "ripgrep")
CATEGORIES = ("semantic", "architecture", "symbol")


@dataclass(frozen=True)
class Target:
    path: str
    start_line: int | None = None
    end_line: int | None = None


@dataclass(frozen=True)
class Hit:
    uri: str
    start_line: int
    end_line: int


def same_path(a: str, b: str) -> bool:
    """Paths match when equal or when one ends with ``/`` + the other (the README's rule)."""
    return a == b or a.endswith("/" + b) or b.endswith("/" + a)


def matches(hit: Hit, target: Target) -> bool:
    if not same_path(hit.uri, target.path):
        return False
    if target.start_line is None:
        return True
    return hit.start_line <= target.end_line and target.start_line <= hit.end_line


def ndcg_at_10(hits: list[Hit], targets: list[Target]) -> float:
    """Return NDCG@10 of ``hits`` (as returned, no de-duplication) against ``targets``."""
    found: set[int] = set()
    dcg = 0.0
    for position, hit in enumerate(hits[:K], start=1):
        new = {i for i, t in enumerate(targets) if i not in found and matches(hit, t)}
        if new:
            found |= new
            dcg += 1.0 / math.log2(position + 1)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(K, len(targets)) + 1))
    return dcg / ideal if ideal else 0.0


def file_level(hits: list[Hit]) -> list[Hit]:
    """Return the de-duplicated file list of ``hits`` (spans dropped), in order."""
    seen: list[str] = []
    for hit in hits:
        if hit.uri not in seen:
            seen.append(hit.uri)
    return [Hit(uri, 0, 0) for uri in seen]


def file_targets(targets: list[Target]) -> list[Target]:
    unique = list(dict.fromkeys(t.path for t in targets))
    return [Target(path) for path in unique]


def load_targets(entry: dict) -> list[Target]:
    targets = []
    for item in entry.get("relevant", []) + entry.get("secondary", []):
        if isinstance(item, str):
            targets.append(Target(item))
        else:
            targets.append(Target(item["path"], item["start_line"], item["end_line"]))
    return targets


def build(
    spec: dict,
    semble: Path,
    data: Path,
    resource: CodeintelResource,
    instance: dg.DagsterInstance,
) -> float:
    """Register and build one benchmark repository; return the build's wall seconds."""
    name = f"ext-{spec['name']}"
    root = semble / "repos" / spec["name"]
    registry.add_repo(
        registry.RepoConfig(name=name, path=str(root), include=[f"{spec['benchmark_root']}/**"]),
        data,
    )
    started = time.perf_counter()
    report = build_repository(name, resource, instance=instance)
    if not report.success:
        raise SystemExit(f"build of {name} failed: {report.failures}")
    return time.perf_counter() - started


def chunk_baseline(index: CodeIndex):
    """Return a search function of the ranking before units, over the same published
    artifacts: reciprocal rank fusion of FAISS's chunks and BM25 over chunk texts (path,
    name and code), each 100 deep; the result is a chunk."""
    table = pq.read_table(index.layout.chunks, columns=["id", "uri", "start_line", "end_line",
                                                       "name", "content"])  # fmt: skip
    rows = {r["id"]: r for r in table.select(["id", "uri", "start_line", "end_line"]).to_pylist()}
    texts = [
        embedding_text(u, n, c)
        for u, n, c in zip(*(table[c].to_pylist() for c in ("uri", "name", "content")), strict=True)
    ]
    bm25 = build_bm25(table["id"].to_numpy(), texts)

    def search(query: str) -> list[Hit]:
        found = faiss_store.search(index.index, index.embedder.embed([query]), 100)
        dense = [(int(i), float(s)) for i, s in zip(found.ids[0], found.scores[0], strict=True)]
        fused = rrf({"dense": [d for d in dense if d[0] != -1], "bm25": bm25.search(query, 100)})
        return [
            Hit(rows[i]["uri"], rows[i]["start_line"], rows[i]["end_line"]) for i, _, _ in fused[:K]
        ]

    return search


def run_queries(name: str, data: Path, queries: list[dict], modes: list[str]) -> dict:
    """Return {mode: [{query, category, chunk, file, hits}]} for one built repository
    (``baseline``: the chunk ranking of ``chunk_baseline``)."""
    results: dict[str, list[dict]] = {mode: [] for mode in modes}
    with CodeIndex.open(name, data) as index:
        baseline = chunk_baseline(index) if "baseline" in modes else None
        for entry in queries:
            targets = load_targets(entry)
            for mode in modes:
                if mode == "baseline":
                    hits = baseline(entry["query"])
                else:
                    found = index.search(entry["query"], k=K, mode=mode)
                    hits = [Hit(r.uri, r.start_line, r.end_line) for r in found]
                results[mode].append(
                    {
                        "query": entry["query"],
                        "category": entry["category"],
                        "chunk": ndcg_at_10(hits, targets),
                        "file": ndcg_at_10(file_level(hits), file_targets(targets)),
                        "hits": [f"{h.uri}:{h.start_line}-{h.end_line}" for h in hits],
                    }
                )
    return results


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def print_tables(scores: dict, published: dict, by_category: dict, modes: list[str]) -> None:
    peers = [p for p in PEERS if any(p in published.get(r, {}) for r in scores)]
    header = " | ".join([f"{m} chunk / file" for m in modes] + [f"{p}" for p in peers])
    print(f"\nNDCG@10 | repo | {header}")
    overall: dict[str, list[float]] = defaultdict(list)
    for repo, per_mode in scores.items():
        cells = []
        for mode in modes:
            chunk = mean([q["chunk"] for q in per_mode[mode]])
            file = mean([q["file"] for q in per_mode[mode]])
            overall[f"{mode}/chunk"].append(chunk)
            overall[f"{mode}/file"].append(file)
            cells.append(f"{chunk:.3f} / {file:.3f}")
        for peer in peers:
            value = published.get(repo, {}).get(peer)
            overall[peer].append(value if value is not None else float("nan"))
            cells.append(f"{value:.3f}" if value is not None else "-")
        print(f"| {repo} | " + " | ".join(cells) + " |")
    cells = [
        f"{mean(overall[f'{m}/chunk']):.3f} / {mean(overall[f'{m}/file']):.3f}" for m in modes
    ] + [f"{mean(overall[p]):.3f}" for p in peers]
    print("| **mean** | " + " | ".join(cells) + " |")

    print(
        "\nNDCG@10 by category (chunk protocol) | repo | category | "
        + " | ".join(modes)
        + " | semble | coderankembed-hybrid |"
    )
    for repo, per_mode in scores.items():
        for category in CATEGORIES:
            cells = []
            for mode in modes:
                values = [q["chunk"] for q in per_mode[mode] if q["category"] == category]
                cells.append(f"{mean(values):.3f} (n={len(values)})" if values else "-")
            for peer in ("semble", "coderankembed-hybrid"):
                value = by_category.get(repo, {}).get(peer, {}).get(category)
                cells.append(f"{value:.3f}" if value is not None else "-")
            print(f"| {repo} | {category} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--semble", type=Path, default=SEMBLE)
    parser.add_argument("--data", type=Path, default=None, help="kept between runs")
    parser.add_argument("--repos", default=None, help="comma-separated subset")
    parser.add_argument("--modes", default=",".join((*MODES, "baseline")))
    parser.add_argument("--embedder", default="sentence-transformers")
    parser.add_argument(
        "--backend", default=DEFAULT_BACKEND, help=f"what runs the model: {', '.join(BACKENDS)}"
    )
    args = parser.parse_args()
    data = (args.data or Path(tempfile.mkdtemp(prefix="codeintel-external-"))).resolve()
    data.mkdir(parents=True, exist_ok=True)
    os.environ["CODEINTEL_DATA"] = str(data)
    specs = json.loads((args.semble / "repos.json").read_text(encoding="utf-8"))
    if args.repos:
        wanted = set(args.repos.split(","))
        specs = [s for s in specs if s["name"] in wanted]
    modes = args.modes.split(",")
    resource = CodeintelResource(data_root=str(data), embedder=args.embedder, backend=args.backend)
    published = json.loads((args.semble / "published_ndcg10.json").read_text(encoding="utf-8"))
    by_category = json.loads(
        (args.semble / "published_ndcg10_by_category.json").read_text(encoding="utf-8")
    )
    # One instance for every build: its SQLite storage belongs to this thread.
    instance = dg.DagsterInstance.ephemeral()
    scores = {}
    for spec in specs:
        seconds = build(spec, args.semble, data, resource, instance)
        queries = json.loads(
            (args.semble / "annotations" / f"{spec['name']}.json").read_text(encoding="utf-8")
        )
        started = time.perf_counter()
        scores[spec["name"]] = run_queries(f"ext-{spec['name']}", data, queries, modes)
        searched = time.perf_counter() - started
        print(
            f"{spec['name']}: built in {seconds:.1f} s, {len(queries)} queries × "
            f"{len(modes)} modes searched in {searched:.1f} s"
        )
    print_tables(scores, published, by_category, modes)
    OUT.mkdir(exist_ok=True)
    (OUT / "external.json").write_text(json.dumps(scores, indent=1), encoding="utf-8")
    print(f"\nper-query lists: {OUT / 'external.json'} (data: {data})")


if __name__ == "__main__":
    main()
