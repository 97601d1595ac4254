"""Loading the default embedder: today's path (sentence-transformers, torch) against the
lean path (tokenizers + numpy), both running the same OpenVINO export, in one run.

Every round starts one fresh process per path, alternating, so a change of machine load
falls on both: each times ``load_embedder`` of the default spec (the lean path) or
``ExportedEmbedder`` on the same export (today's), then embedding one text, then the
throughput on a seeded sample of real chunks (standard-library packages chunked by the
project's chunker, path + name headers as the build embeds them) after a warm-up batch.
Figures are medians over the rounds; the vectors of the two paths are compared (mean and
minimum cosine).

    .venv/bin/python benchmarks/bench_embedder_load.py [--rounds 5] [--sample 400]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STARTED = time.perf_counter()  # before any import the paths differ in

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codeintel_assets.core.layout import DATA_ENV  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
DATA = OUT / "embedder-load"  # a data root whose model cache holds the export
PATHS = ("today", "lean")
WARMUP = 32


def measure(path: str, texts: list[str], vectors_out: Path) -> dict:
    """Load the default embedder by ``path`` in this (fresh) process, embed one text, then
    ``texts``; save their vectors; return the seconds and the chunks/s."""
    before_load = time.perf_counter()
    from codeintel_assets.core import embedding

    if path == "lean":
        embedder = embedding.load_embedder(embedding.EmbedderSpec())
    else:
        embedder = embedding.ExportedEmbedder(embedding.DEFAULT_BACKEND)
    loaded = time.perf_counter()
    embedder.embed(["def build_faiss_index(vectors): ..."])
    first, first_wall = time.perf_counter(), time.time()
    embedder.embed(texts[:WARMUP])
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    vectors = embedder.embed(texts)
    rate = len(texts) / (time.perf_counter() - started)
    np.save(vectors_out, vectors)
    return {
        "kind": type(embedder).__name__,
        "model_id": embedder.model_id,
        "torch_imported": "torch" in sys.modules,
        "imports_seconds": before_load - STARTED,
        "load_seconds": loaded - before_load,
        "load_and_one_seconds": first - before_load,
        "first_vector_at": first_wall,
        "chunks_per_s": rate,
        "load": (load_before + os.getloadavg()[0]) / 2,
    }


def run_path(path: str, texts_file: Path, vectors_out: Path) -> dict:
    """Measure ``path`` in a fresh child process; return its figures, with the seconds from
    starting it to its first vector (interpreter start, imports, load, one text)."""
    env = {**os.environ, DATA_ENV: str(DATA)}
    started = time.time()
    child = subprocess.run(
        [sys.executable, __file__, "--child", path, "--texts", str(texts_file)]
        + ["--vectors", str(vectors_out)],
        capture_output=True,
        text=True,
        env=env,
    )
    if child.returncode != 0:
        raise SystemExit(f"path {path} failed:\n{child.stderr[-3000:]}")
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    return {**figures, "process_seconds": figures["first_vector_at"] - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sample", type=int, default=400, help="chunks embedded per process")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--texts", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--vectors", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        texts = json.loads(args.texts.read_text(encoding="utf-8"))
        print(json.dumps(measure(args.child, texts, args.vectors)))
        return

    from bench_embedding import sample_texts
    from corpus import DEFAULT_PACKAGES

    from codeintel_assets.core.embedding import DEFAULT_BACKEND, exported_embedder

    os.environ[DATA_ENV] = str(DATA)
    exported_embedder(DEFAULT_BACKEND)  # makes the export once, if missing
    texts, lines, chunks = sample_texts(DEFAULT_PACKAGES, args.sample, args.seed)
    print(f"corpus: {lines} lines, {chunks} chunks, {len(texts)} sampled; {os.cpu_count()} CPUs")
    runs: dict[str, list[dict]] = {path: [] for path in PATHS}
    vectors: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        texts_file = Path(tmp) / "texts.json"
        texts_file.write_text(json.dumps(texts), encoding="utf-8")
        for round_ in range(1, args.rounds + 1):
            # Alternate which path goes first, so neither always follows the other.
            for path in PATHS if round_ % 2 else PATHS[::-1]:
                out = Path(tmp) / f"{path}.npy"
                run = run_path(path, texts_file, out)
                runs[path].append(run)
                vectors[path] = np.load(out)
                print(f"  round {round_}, {path} ({run['kind']}): load + one text "
                      f"{run['load_and_one_seconds']:.2f} s, process start to first vector "
                      f"{run['process_seconds']:.2f} s, {run['chunks_per_s']:.1f} chunks/s "
                      f"(load {run['load']:.2f})")  # fmt: skip
    assert {r["model_id"] for r in runs["today"] + runs["lean"]} == {runs["today"][0]["model_id"]}
    cosine = np.sum(vectors["today"] * vectors["lean"], axis=1)
    print(f"\nmedian of {args.rounds} rounds (model id {runs['lean'][0]['model_id']}):")
    for path in PATHS:
        median = {
            key: statistics.median(r[key] for r in runs[path])
            for key in ("load_and_one_seconds", "process_seconds", "chunks_per_s", "load")
        }
        print(f"  {path}: load + one text {median['load_and_one_seconds']:.2f} s, process "
              f"start to first vector {median['process_seconds']:.2f} s, "
              f"{median['chunks_per_s']:.1f} chunks/s, torch imported: "
              f"{runs[path][0]['torch_imported']} (load average {median['load']:.2f})")  # fmt: skip
    print(f"  cosine lean to today: mean {cosine.mean():.7f}, min {cosine.min():.7f}; "
          f"max abs difference {np.abs(vectors['today'] - vectors['lean']).max():.2e}")  # fmt: skip


if __name__ == "__main__":
    main()
