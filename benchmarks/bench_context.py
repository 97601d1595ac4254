"""Does the embedded text's header (file path + qualified name) help dense retrieval?

Chunks a real corpus (standard-library packages) once, embeds every chunk twice with
the real model — with the header ``"<uri> <qualified name>\\n"`` (what the pipeline
does) and with the code alone — and prints dense recall@10 / MRR@10 per query style
for both, on the same synthetic queries.

    .venv/bin/python benchmarks/bench_context.py [--packages json logging ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import stdlib_corpus  # noqa: E402

from codeintel_assets.core import faiss_store  # noqa: E402
from codeintel_assets.core.chunk_table import chunk_repository  # noqa: E402
from codeintel_assets.core.embedding import SentenceTransformerEmbedder, embedding_text  # noqa: E402
from codeintel_assets.core.manifest import build_manifest  # noqa: E402
from codeintel_assets.core.queries import synthetic_queries  # noqa: E402

K = 10


def dense_scores(index, embedder, queries) -> dict[str, tuple[float, float]]:
    vectors = embedder.embed([q.text for q in queries])
    hits = faiss_store.search(index, vectors, K)
    by_style: dict[str, list[tuple[float, float]]] = {}
    for query, ids in zip(queries, hits.ids, strict=True):
        ranks = [r for r, i in enumerate(ids.tolist(), 1) if i in set(query.positives)]
        first = min(ranks) if ranks else None
        by_style.setdefault(query.style, []).append(
            (1.0 if first else 0.0, 1.0 / first if first else 0.0)
        )
        by_style.setdefault("all", []).append(by_style[query.style][-1])
    return {style: tuple(np.mean(v, axis=0)) for style, v in by_style.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", nargs="+", default=["json", "logging", "http"])
    args = parser.parse_args()
    embedder = SentenceTransformerEmbedder()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "corpus"
        lines = stdlib_corpus(root, tuple(args.packages), git=False)
        manifest = build_manifest(root).files
        chunks, _ = chunk_repository("bench", root, manifest, embedder)
    table = pa.table(
        {
            "id": [c.id for c in chunks],
            "uri": [c.uri for c in chunks],
            "start_line": [c.start_line for c in chunks],
            "end_line": [c.end_line for c in chunks],
            "start_byte": [c.start_byte for c in chunks],
            "content": [c.content for c in chunks],
            "lang": [c.lang for c in chunks],
        }
    )
    queries = synthetic_queries(None, None, table, count=300, seed=0)
    ids = np.array([c.id for c in chunks], dtype=np.int64)
    print(
        f"corpus: {', '.join(args.packages)} — {lines} lines, {len(chunks)} chunks, "
        f"{len(queries)} queries"
    )
    variants = {
        "header (path + name)": [embedding_text(c.uri, c.name, c.content) for c in chunks],
        "code only": [c.content for c in chunks],
    }
    print(f"{'variant':<22}{'style':<8}{'recall@10':>10}{'MRR@10':>9}")
    for name, texts in variants.items():
        index = faiss_store.build_index(ids, embedder.embed(texts), "IDMap2,Flat")
        for style, (recall, mrr) in sorted(dense_scores(index, embedder, queries).items()):
            print(f"{name:<22}{style:<8}{recall:>10.3f}{mrr:>9.3f}")


if __name__ == "__main__":
    main()
