"""Embedding throughput on CPU: every option against today's path, in one run.

Chunks a real corpus (standard-library packages) with the project's chunker, takes a
seeded sample of the chunks' embedded texts (path + name header, as the build embeds
them), and embeds it with each option in its own process (so thread settings do not
leak from one option into the next):

* ``today``: what the build did before this benchmark — torch fp32, sentence-transformers'
  own batching (sorted by characters), batch 64, torch's default threads;
* torch with batches sorted by token count (what ``SentenceTransformerEmbedder.embed``
  does now), at batch sizes 16 / 32 / 64 / 128, with one intra-op thread, with one
  inter-op thread, and under bf16 autocast (the CPU's AMX; measured, not offered);
* the same weights exported to ONNX locally and run by ONNX Runtime (``onnx``), by
  OpenVINO in fp32 (``openvino``), and ONNX Runtime with int8 weights (``onnx-int8``,
  opt-in only).

Each option embeds the sample ``--repeat`` times after a warm-up batch; the figure is
the median chunks/s, with the 1-minute load average around it. Quality: mean and
minimum cosine of each option's vectors to today's. With ``--external``, each backend
also builds the six repositories of ``../shared/benchmarks/semble/`` through the
pipeline and is scored dense-only (NDCG@10, chunk protocol, mean over repositories) —
the gate a new default has to pass: mean cosine >= 0.99 and dense NDCG@10 within 0.01
of torch's.

    .venv/bin/python benchmarks/bench_embedding.py [--sample 2000] [--repeat 2] [--external]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import DEFAULT_PACKAGES, stdlib_corpus  # noqa: E402

from codeintel_assets.core.chunk_table import chunk_repository, embedding_texts  # noqa: E402
from codeintel_assets.core.embedding import (  # noqa: E402
    DEFAULT_BACKEND,
    ONNX,
    ONNX_INT8,
    OPENVINO,
    TORCH,
    ExportedEmbedder,
    SentenceTransformerEmbedder,
)
from codeintel_assets.core.manifest import build_manifest  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
EXPORTS = OUT / "models"  # the local ONNX exports, made once from the local weights
WARMUP = 64

# name -> (backend, batch size, how batches are formed, torch intra-op threads,
# torch inter-op threads, bf16 autocast)
OPTIONS: dict[str, tuple[str, int, str, int | None, int | None, bool]] = {
    "today (torch, sentence-transformers batches)": (TORCH, 64, "st", None, None, False),
    "torch, token-sorted batches": (TORCH, 64, "tokens", None, None, False),
    "torch, token-sorted, batch 16": (TORCH, 16, "tokens", None, None, False),
    "torch, token-sorted, batch 32": (TORCH, 32, "tokens", None, None, False),
    "torch, token-sorted, batch 128": (TORCH, 128, "tokens", None, None, False),
    "torch, 1 intra-op thread": (TORCH, 64, "tokens", 1, None, False),
    "torch, 1 inter-op thread": (TORCH, 64, "tokens", None, 1, False),
    "torch, bf16 autocast": (TORCH, 64, "tokens", None, None, True),
    "onnx (ONNX Runtime fp32)": (ONNX, 64, "tokens", None, None, False),
    "openvino (fp32)": (OPENVINO, 64, "tokens", None, None, False),
    "onnx-int8 (opt-in)": (ONNX_INT8, 64, "tokens", None, None, False),
}
BASELINE = next(iter(OPTIONS))


def sample_texts(packages: tuple[str, ...], size: int, seed: int) -> tuple[list[str], int, int]:
    """Return ``size`` embedded texts sampled from the corpus's chunks, its line count and
    its chunk count."""
    embedder = SentenceTransformerEmbedder()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "corpus"
        lines = stdlib_corpus(root, packages, git=False)
        chunks, _ = chunk_repository("bench", root, build_manifest(root).files, embedder)
    texts, _ = embedding_texts(chunks, embedder)
    return random.Random(seed).sample(texts, min(size, len(texts))), lines, len(chunks)


def measure(option: str, texts: list[str], repeat: int, vectors_out: Path) -> dict:
    """Embed ``texts`` with ``option`` ``repeat`` times; save the vectors; return the figures."""
    backend, batch, batching, threads, interop, bf16 = OPTIONS[option]
    import torch

    if interop is not None:
        torch.set_num_interop_threads(interop)  # only possible before any parallel work
    if threads is not None:
        torch.set_num_threads(threads)
    started = time.perf_counter()
    if backend == TORCH:
        embedder = SentenceTransformerEmbedder(device="cpu", batch_size=batch)
    else:
        embedder = ExportedEmbedder(backend, batch_size=batch, exports=EXPORTS)
    loaded = time.perf_counter() - started

    def embed(chunk: list[str]) -> np.ndarray:
        if batching == "st":
            return embedder.model.encode(
                chunk, batch_size=batch, normalize_embeddings=True, show_progress_bar=False
            )
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return embedder.embed(chunk)

    embed(texts[:WARMUP])
    rates, loads = [], []
    for _ in range(repeat):
        before = os.getloadavg()[0]
        started = time.perf_counter()
        vectors = embed(texts)
        rates.append(len(texts) / (time.perf_counter() - started))
        loads.append((before + os.getloadavg()[0]) / 2)
    np.save(vectors_out, np.asarray(vectors, dtype=np.float32))
    return {
        "chunks_per_s": statistics.median(rates),
        "runs": rates,
        "load": statistics.mean(loads),
        "load_seconds": loaded,
        "threads": torch.get_num_threads(),
        "model_id": embedder.model_id,
    }


def run_option(option: str, texts_file: Path, repeat: int, vectors_out: Path) -> dict:
    """Measure ``option`` in a child process; return its figures."""
    child = subprocess.run(
        [sys.executable, __file__, "--child", option, "--texts", str(texts_file)]
        + ["--repeat", str(repeat), "--vectors", str(vectors_out)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(child.stdout.strip().splitlines()[-1])


def cosines(vectors: np.ndarray, baseline: np.ndarray) -> tuple[float, float]:
    """Return the mean and minimum row-wise cosine of two sets of unit vectors."""
    values = np.sum(vectors * baseline, axis=1)
    return float(values.mean()), float(values.min())


def dense_ndcg(backends: list[str], data: Path) -> dict[str, dict[str, float]]:
    """Return {backend: {repo: dense NDCG@10 (chunk protocol), "mean": ...}} on the external
    benchmark, each backend building every repository through the pipeline in ``data``."""
    import bench_external
    import dagster as dg

    from codeintel_assets.resources import CodeintelResource

    os.environ["CODEINTEL_DATA"] = str(data)
    specs = json.loads((bench_external.SEMBLE / "repos.json").read_text(encoding="utf-8"))
    instance = dg.DagsterInstance.ephemeral()
    scores: dict[str, dict[str, float]] = {}
    for backend in backends:
        resource = CodeintelResource(data_root=str(data), backend=backend)
        scores[backend] = {}
        for spec in specs:
            seconds = bench_external.build(spec, bench_external.SEMBLE, data, resource, instance)
            annotations = bench_external.SEMBLE / "annotations" / f"{spec['name']}.json"
            queries = json.loads(annotations.read_text(encoding="utf-8"))
            found = bench_external.run_queries(f"ext-{spec['name']}", data, queries, ["dense"])
            value = bench_external.mean([q["chunk"] for q in found["dense"]])
            scores[backend][spec["name"]] = value
            print(f"  {backend} {spec['name']}: dense {value:.3f} (built in {seconds:.0f} s)")
        scores[backend]["mean"] = bench_external.mean(list(scores[backend].values()))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", nargs="+", default=list(DEFAULT_PACKAGES))
    parser.add_argument("--sample", type=int, default=2000, help="chunks embedded per option")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--options", default=None, help="comma-separated subset of the options")
    parser.add_argument("--external", action="store_true", help="dense NDCG@10 per backend")
    parser.add_argument("--data", type=Path, default=None, help="builds of --external, kept")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--texts", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--vectors", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        texts = json.loads(args.texts.read_text(encoding="utf-8"))
        print(json.dumps(measure(args.child, texts, args.repeat, args.vectors)))
        return

    options = args.options.split(",") if args.options else list(OPTIONS)
    if BASELINE not in options:
        options.insert(0, BASELINE)
    texts, lines, chunks = sample_texts(tuple(args.packages), args.sample, args.seed)
    print(
        f"corpus: {', '.join(args.packages)} — {lines} lines, {chunks} chunks; "
        f"{len(texts)} sampled, {args.repeat} runs per option, {os.cpu_count()} CPUs"
    )
    OUT.mkdir(exist_ok=True)
    figures: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        texts_file = Path(tmp) / "texts.json"
        texts_file.write_text(json.dumps(texts), encoding="utf-8")
        vectors: dict[str, np.ndarray] = {}
        for option in options:
            out = Path(tmp) / f"{len(vectors)}.npy"
            figures[option] = run_option(option, texts_file, args.repeat, out)
            vectors[option] = np.load(out)
            runs = ", ".join(f"{r:.1f}" for r in figures[option]["runs"])
            print(f"  {option}: {runs} chunks/s (load {figures[option]['load']:.2f})")
    for option in options:
        figures[option]["cosine"] = cosines(vectors[option], vectors[BASELINE])

    ndcg = {}
    if args.external:
        backends = list(dict.fromkeys(OPTIONS[o][0] for o in options if OPTIONS[o][2] == "tokens"))
        data = (args.data or Path(tempfile.mkdtemp(prefix="codeintel-embed-"))).resolve()
        ndcg = dense_ndcg([TORCH] + [b for b in backends if b != TORCH], data)

    base = figures[BASELINE]["chunks_per_s"]
    print(
        "\n| option | chunks/s (median) | × today | load (1 min) | cosine to today: mean / min "
        "| dense NDCG@10 (mean of 6 repos) |"
    )
    print("|---|---|---|---|---|---|")
    for option in options:
        f = figures[option]
        backend, _, batching, _, _, bf16 = OPTIONS[option]
        same_vectors = batching == "tokens" and not bf16
        score = ndcg.get(backend, {}).get("mean") if same_vectors else None
        cell = f"{score:.3f}" if score is not None else "-"
        print(
            f"| {option} | {f['chunks_per_s']:.1f} | {f['chunks_per_s'] / base:.2f} | "
            f"{f['load']:.2f} | {f['cosine'][0]:.5f} / {f['cosine'][1]:.5f} | {cell} |"
        )
    if ndcg:
        torch_mean = ndcg[TORCH]["mean"]
        for backend, per_repo in ndcg.items():
            repos = ", ".join(f"{r} {v:.3f}" for r, v in per_repo.items() if r != "mean")
            print(f"dense NDCG@10 {backend}: {per_repo['mean']:.3f} "
                  f"(Δ {per_repo['mean'] - torch_mean:+.3f}; {repos})")  # fmt: skip
    print(f"default backend: {DEFAULT_BACKEND}")
    (OUT / "embedding.json").write_text(
        json.dumps({"figures": figures, "ndcg": ndcg}, indent=1), encoding="utf-8"
    )


if __name__ == "__main__":
    main()
