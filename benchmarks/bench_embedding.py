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

Each option embeds the sample once per round after a warm-up batch, in ``--repeat``
rounds; the figure is the median chunks/s, with the mean 1-minute load average over its
runs. Quality: mean and
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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Option:
    label: str
    backend: str = TORCH
    batch: int = 64
    batching: str = "tokens"  # "st": sentence-transformers' own (sorted by characters)
    threads: int | None = None  # torch intra-op threads (None: torch's default)
    interop: int | None = None  # torch inter-op threads
    bf16: bool = False  # torch bf16 autocast

    @property
    def backend_vectors(self) -> bool:
        """Whether the option computes its backend's vectors (batching and threads change
        the order of work, not the arithmetic of a text)."""
        return not self.bf16


OPTIONS = {
    "today": Option("today: torch, sentence-transformers batches", batching="st"),
    "torch": Option("torch, token-sorted batches"),
    "torch-b16": Option("torch, token-sorted, batch 16", batch=16),
    "torch-b32": Option("torch, token-sorted, batch 32", batch=32),
    "torch-b128": Option("torch, token-sorted, batch 128", batch=128),
    "torch-1thread": Option("torch, 1 intra-op thread", threads=1),
    "torch-1interop": Option("torch, 1 inter-op thread", interop=1),
    "torch-bf16": Option("torch, bf16 autocast (measured, not offered)", bf16=True),
    "onnx": Option("onnx: ONNX Runtime fp32", ONNX),
    "openvino": Option("openvino: OpenVINO fp32", OPENVINO),
    "onnx-int8": Option("onnx-int8: ONNX Runtime, int8 weights (opt-in)", ONNX_INT8),
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


def measure(option: str, texts: list[str], vectors_out: Path) -> dict:
    """Embed ``texts`` once with ``option`` (after a warm-up batch); save the vectors;
    return chunks/s, the mean 1-minute load average over the run and the load time."""
    chosen = OPTIONS[option]
    import torch

    if chosen.interop is not None:
        torch.set_num_interop_threads(chosen.interop)  # only possible before any parallel work
    if chosen.threads is not None:
        torch.set_num_threads(chosen.threads)
    started = time.perf_counter()
    if chosen.backend == TORCH:
        embedder = SentenceTransformerEmbedder(device="cpu", batch_size=chosen.batch)
    else:
        embedder = ExportedEmbedder(chosen.backend, batch_size=chosen.batch, exports=EXPORTS)
    loaded = time.perf_counter() - started

    def embed(chunk: list[str]) -> np.ndarray:
        if chosen.batching == "st":
            return embedder.model.encode(
                chunk, batch_size=chosen.batch, normalize_embeddings=True, show_progress_bar=False
            )
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=chosen.bf16):
            return embedder.embed(chunk)

    embed(texts[:WARMUP])
    before = os.getloadavg()[0]
    started = time.perf_counter()
    vectors = embed(texts)
    rate = len(texts) / (time.perf_counter() - started)
    np.save(vectors_out, np.asarray(vectors, dtype=np.float32))
    return {
        "chunks_per_s": rate,
        "load": (before + os.getloadavg()[0]) / 2,
        "load_seconds": loaded,
        "threads": torch.get_num_threads(),
        "model_id": embedder.model_id,
    }


def run_option(option: str, texts_file: Path, vectors_out: Path) -> dict:
    """Measure one run of ``option`` in a child process; return its figures."""
    child = subprocess.run(
        [sys.executable, __file__, "--child", option, "--texts", str(texts_file)]
        + ["--vectors", str(vectors_out)],
        capture_output=True,
        text=True,
    )
    if child.returncode != 0:
        raise SystemExit(f"option {option} failed:\n{child.stderr[-3000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def cosines(vectors: np.ndarray, baseline: np.ndarray) -> tuple[float, float]:
    """Return the mean and minimum row-wise cosine of two sets of unit vectors."""
    values = np.sum(vectors * baseline, axis=1)
    return float(values.mean()), float(values.min())


def dense_ndcg(
    backends: list[str], semble: Path, data: Path, repos: list[str] | None
) -> dict[str, dict[str, float]]:
    """Return {backend: {repo: dense NDCG@10 (chunk protocol), "mean": ...}} on the external
    benchmark, each backend building every repository (or ``repos``) through the pipeline
    in ``data``."""
    import bench_external
    import dagster as dg

    from codeintel_assets.resources import CodeintelResource

    os.environ["CODEINTEL_DATA"] = str(data)
    specs = json.loads((semble / "repos.json").read_text(encoding="utf-8"))
    specs = [s for s in specs if repos is None or s["name"] in repos]
    instance = dg.DagsterInstance.ephemeral()
    scores: dict[str, dict[str, float]] = {}
    for backend in backends:
        resource = CodeintelResource(data_root=str(data), backend=backend)
        scores[backend] = {}
        for spec in specs:
            seconds = bench_external.build(spec, semble, data, resource, instance)
            annotations = semble / "annotations" / f"{spec['name']}.json"
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
    parser.add_argument("--options", default=None, help=f"a subset of: {','.join(OPTIONS)}")
    parser.add_argument("--external", action="store_true", help="dense NDCG@10 per backend")
    parser.add_argument("--semble", type=Path, default=None, help="the external benchmark")
    parser.add_argument("--data", type=Path, default=None, help="builds of --external, kept")
    parser.add_argument("--repos", default=None, help="--external on these repositories only")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--texts", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--vectors", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        texts = json.loads(args.texts.read_text(encoding="utf-8"))
        print(json.dumps(measure(args.child, texts, args.vectors)))
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
    # Rounds: every option once, then again, so a change of load falls on all of them.
    runs: dict[str, list[dict]] = {option: [] for option in options}
    vectors: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        texts_file = Path(tmp) / "texts.json"
        texts_file.write_text(json.dumps(texts), encoding="utf-8")
        for round_ in range(1, args.repeat + 1):
            for option in options:
                out = Path(tmp) / f"{option}.npy"
                runs[option].append(run_option(option, texts_file, out))
                vectors[option] = np.load(out)
                run = runs[option][-1]
                print(f"  round {round_}, {OPTIONS[option].label}: "
                      f"{run['chunks_per_s']:.1f} chunks/s (load {run['load']:.2f})")  # fmt: skip
    figures = {
        option: {
            "chunks_per_s": statistics.median(r["chunks_per_s"] for r in per_run),
            "load": statistics.mean(r["load"] for r in per_run),
            "cosine": cosines(vectors[option], vectors[BASELINE]),
            "runs": per_run,
        }
        for option, per_run in runs.items()
    }

    ndcg = {}
    if args.external:
        backends = list(dict.fromkeys(OPTIONS[o].backend for o in options))
        data = (args.data or Path(tempfile.mkdtemp(prefix="codeintel-embed-"))).resolve()
        repos = args.repos.split(",") if args.repos else None
        import bench_external

        semble = args.semble or bench_external.SEMBLE
        ndcg = dense_ndcg([TORCH] + [b for b in backends if b != TORCH], semble, data, repos)

    base = figures[BASELINE]["chunks_per_s"]
    print(
        "\n| option | chunks/s (median) | × today | load (1 min) | cosine to today: mean / min "
        "| dense NDCG@10 (mean over repos) |"
    )
    print("|---|---|---|---|---|---|")
    for option in options:
        f = figures[option]
        chosen = OPTIONS[option]
        score = ndcg.get(chosen.backend, {}).get("mean") if chosen.backend_vectors else None
        cell = f"{score:.3f}" if score is not None else "-"
        print(
            f"| {chosen.label} | {f['chunks_per_s']:.1f} | {f['chunks_per_s'] / base:.2f} | "
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
