"""Time each stage of a full build on a real corpus (standard-library packages).

Prints seconds and rows per stage, embedding throughput (chunks/s) and the share of
wall time spent outside embedding.

    .venv/bin/python benchmarks/bench_build.py [--packages json email ...] [--embedder hashing]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import stdlib_corpus  # noqa: E402

from codeintel_assets.core.context import BuildContext  # noqa: E402
from codeintel_assets.core.embedding import EmbedderSpec, load_embedder  # noqa: E402
from codeintel_assets.core.registry import RepoConfig  # noqa: E402
from codeintel_assets.core.stages import STAGES  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", nargs="+", default=["json", "email", "http", "logging"])
    parser.add_argument("--embedder", default="sentence-transformers")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        lines = stdlib_corpus(root / "corpus", tuple(args.packages))
        spec = EmbedderSpec(kind=args.embedder)
        started = time.perf_counter()
        load_embedder(spec)
        load_seconds = time.perf_counter() - started
        ctx = BuildContext(
            repo=RepoConfig(name="bench", path=str(root / "corpus")),
            embedder=spec,
            root=root / "data",
        )
        # The build without the evaluation layer (the index a search needs), in table order.
        stages = [stage for stage in STAGES if stage.group != "evaluation"]
        print(f"corpus: {', '.join(args.packages)} — {lines} lines of Python")
        print(f"embedder: {args.embedder} (model load {load_seconds:.1f}s, not counted)")
        print(f"{'stage':<18}{'seconds':>9}  rows")
        total = 0.0
        embed_seconds = 0.0
        embedded = 0
        for stage in stages:
            result = stage.run(ctx, stage)
            total += result.seconds
            rows = result.metadata.get("rows", result.metadata.get("chunks", "-"))
            print(f"{stage.name:<18}{result.seconds:>9.2f}  {rows}")
            if stage.name == "chunks":
                embed_seconds = result.metadata["embed_seconds"]
                embedded = result.metadata["embedded"]
        print(f"{'total':<18}{total:>9.2f}")
        print(
            f"embedding: {embedded} chunks in {embed_seconds:.1f}s = "
            f"{embedded / max(embed_seconds, 1e-9):.1f} chunks/s"
        )
        print(f"share of wall time outside embedding: {(total - embed_seconds) / total:.1%}")


if __name__ == "__main__":
    main()
