"""Is a refactoring behaviour-preserving? The digest of a clean build, and two digests compared.

``--tree DIR --out F``: registers DIR in a fresh data root, materializes the whole graph
through Dagster (ephemeral instance, the deterministic hashing embedder), and writes to
``F`` what a clean build produced: every chunk id with its span and the checksum of its
vector, the FAISS top 10 of the first 50 chunk vectors (ids and scores), search results
in every mode for a few queries, the row count of every table and view of the published
catalog, and the content checksum of every published Parquet table (wall-clock columns
left out). Only public surfaces
are used (registry, Dagster definitions, ``CodeIndex``, the files under ``current/``), so
the same script digests an old checkout (``PYTHONPATH=old``) and a new one.

``--compare A B``: prints each part that differs, or ``identical``; exits 1 on a difference.

    PYTHONPATH=OLD python benchmarks/clean_build_digest.py --tree T --out before.json
    PYTHONPATH=NEW python benchmarks/clean_build_digest.py --tree T --out after.json
    python benchmarks/clean_build_digest.py --compare before.json after.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

QUERIES = ("build the index", "parse_config", "checksum of a file", "self.search(query, k)")
SAMPLE_VECTORS = 50


def digest_build(tree: Path) -> dict:
    """Return the digest of a clean build of ``tree`` (see the module docstring)."""
    import dagster as dg
    import duckdb
    import faiss
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    import xxhash

    from codeintel_assets.checks import ALL_CHECKS
    from codeintel_assets.core import registry
    from codeintel_assets.core.search import CodeIndex
    from codeintel_assets.definitions import ALL_ASSETS
    from codeintel_assets.partitions import REPOS
    from codeintel_assets.resources import CodeintelResource

    data = Path(tempfile.mkdtemp(prefix="digest-"))
    os.environ["CODEINTEL_DATA"] = str(data)
    registry.add_repo(registry.RepoConfig(name="digest", path=str(tree)), data)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(REPOS.name, ["digest"])
    result = dg.materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        partition_key="digest",
        instance=instance,
        resources={"codeintel": CodeintelResource(data_root=str(data), embedder="hashing")},
        run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
    )
    if not result.success:
        raise SystemExit("build failed")
    current = (data / "digest" / "current").resolve()

    chunks = pq.read_table(next(current.rglob("chunks.parquet"))).sort_by("id")
    vectors = np.asarray(chunks.column("embedding").to_pylist(), dtype=np.float32)
    spans = chunks.select(["id", "uri", "start_byte", "end_byte"]).to_pylist()
    chunk_rows = [
        [*span.values(), xxhash.xxh64_hexdigest(vector.tobytes())]
        for span, vector in zip(spans, vectors, strict=True)
    ]

    index = faiss.read_index(str(next(current.rglob("chunks.faiss"))))
    scores, ids = index.search(vectors[:SAMPLE_VECTORS], 10)
    faiss_results = [
        [[int(i), round(float(s), 5)] for i, s in zip(row_ids, row_scores, strict=True)]
        for row_ids, row_scores in zip(ids, scores, strict=True)
    ]

    searches = {}
    with CodeIndex.open("digest", data) as code_index:
        for mode in ("dense", "bm25", "hybrid"):
            for query in QUERIES:
                hits = code_index.search(query, k=10, mode=mode)
                searches[f"{mode}: {query}"] = [[h.chunk_id, round(h.score, 6)] for h in hits]

    db = duckdb.connect(str(next(current.rglob("codeintel.duckdb"))), read_only=True)
    listed = db.execute("SELECT table_name FROM information_schema.tables").fetchall()
    names = [row[0] for row in listed]
    row_counts = {
        n: db.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0]
        for n in sorted(names)
        if not n.endswith("_meta") and n != "catalog_manifest"
    }
    db.close()

    tables = {}
    for path in sorted(current.rglob("*.parquet")):
        table = pq.read_table(path)
        # Wall-clock columns (the id map's ``ts``) differ between any two builds.
        stable = [f.name for f in table.schema if not pa.types.is_timestamp(f.type)]
        table = table.select(stable)
        tables[str(path.relative_to(current))] = {
            "rows": table.num_rows,
            "columns": table.column_names,
            "content": xxhash.xxh64_hexdigest(json.dumps(table.to_pylist(), default=str).encode()),
        }
    return {
        "chunks": chunk_rows,
        "faiss": faiss_results,
        "search": searches,
        "catalog_rows": row_counts,
        "tables": tables,
    }


def compare(before: dict, after: dict) -> list[str]:
    """Return one line per part of the digests that differs (empty when identical)."""
    lines = []
    for part in ("chunks", "faiss", "search", "catalog_rows"):
        if before[part] != after[part]:
            lines.append(f"{part} differ")
    for name in sorted(set(before["tables"]) | set(after["tables"])):
        if before["tables"].get(name) != after["tables"].get(name):
            old, new = before["tables"].get(name), after["tables"].get(name)
            lines.append(f"table {name}: {old} != {new}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    args = parser.parse_args()
    if args.compare:
        before, after = (json.loads(p.read_text()) for p in args.compare)
        differences = compare(before, after)
        print(
            f"{len(before['chunks'])} chunks, {len(before['catalog_rows'])} catalog relations, "
            f"{len(before['tables'])} tables, {len(before['search'])} searches compared"
        )
        print("\n".join(differences) or "identical")
        sys.exit(1 if differences else 0)
    if not args.tree or not args.out:
        parser.error("give --tree and --out, or --compare")
    args.out.write_text(json.dumps(digest_build(args.tree.resolve()), indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
