"""The catalog fixture: every artifact the catalog reads, in the exact schemas, small.

Shared by the catalog view and query tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from codeintel_assets.core import schemas
from codeintel_assets.core.checksums import signed_xxh64
from codeintel_assets.core.layout import ArtifactLayout

DIM = 8
REPO = "fixture"
# (uri, start_line, end_line, lang, symbols) of the fixture chunks.
CHUNK_ROWS = [
    ("pkg/__init__.py", 1, 3, "python", []),
    ("pkg/core.py", 1, 10, "python", ["py pkg/core.py/load().", "py pkg/core.py/Store#"]),
    ("pkg/core.py", 11, 30, "python", ["py pkg/core.py/Store#", "py pkg/core.py/Store#save()."]),
    ("pkg/sub/deep.py", 1, 8, "python", ["py pkg/sub/deep.py/walk()."]),
    ("docs/guide.md", 1, 40, "markdown", None),
    ("weird/it's 100%_done.py", 1, 2, "python", ["py weird/it's 100%_done.py/x."]),
    ("lib/a_b.py", 1, 5, "python", []),
    ("lib/axb.py", 1, 5, "python", []),
    ("top.js", 1, 12, "javascript", ["js top.js/main()."]),
]


def chunk_id(uri: str, start_line: int) -> int:
    """The fixture's stable chunk id (same recipe as the producers: signed xxh64)."""
    return signed_xxh64(REPO, uri, start_line * 100, start_line * 100 + 50)


def chunk_table(rows: list[tuple], salt: str = "") -> pa.Table:
    """Return the chunks of ``rows`` in the exact chunk schema (embeddings of DIM)."""
    rng = np.random.default_rng(7)
    emb = rng.standard_normal((len(rows), DIM)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    contents = [f"content of {uri} {start}{salt}" for uri, start, *_ in rows]
    return pa.table(
        {
            "id": [chunk_id(uri, start) for uri, start, *_ in rows],
            "uri": [r[0] for r in rows],
            "start_line": [r[1] for r in rows],
            "end_line": [r[2] for r in rows],
            "start_byte": [r[1] * 100 for r in rows],
            "end_byte": [r[1] * 100 + 50 for r in rows],
            "preview": [c[:240] for c in contents],
            "content": contents,
            "lang": [r[3] for r in rows],
            "content_hash": [None if r[0].endswith(".md") else f"h{i}" for i, r in enumerate(rows)],
            "symbols": [r[4] for r in rows],
            "kind": ["function"] * len(rows),
            "name": [None] * len(rows),
            "token_count": [10] * len(rows),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), DIM),
        }
    )


def idmap_table(ids: list[int], build_version: str = "v1") -> pa.Table:
    """Return an id map with one row per id (row = position)."""
    return pa.table(
        {
            "faiss_row": list(range(len(ids))),
            "faiss_id": ids,
            "index_name": ["chunks"] * len(ids),
            "build_version": [build_version] * len(ids),
            "ts": pa.array([0] * len(ids), pa.timestamp("us", tz="UTC")),
        }
    )


EVAL_POOL_ROWS = [
    ("q1", "faiss", 1, 11, 0.9),
    ("q1", "faiss", 2, 12, 0.8),
    ("q1", "faiss", 3, 13, 0.7),
    ("q1", "bm25", 1, 12, 5.0),
    ("q2", "faiss", 5, 11, 0.1),
]


def build_fixture_layout(root: Path, *, with_eval_pool: bool = True) -> ArtifactLayout:
    """Write every artifact the catalog reads under ``root`` and return its layout."""
    layout = ArtifactLayout(root)
    schemas.write_parquet(chunk_table(CHUNK_ROWS), layout.chunks, schemas.chunk_schema(DIM))
    ids = [chunk_id(uri, start) for uri, start, *_ in CHUNK_ROWS]
    # Every chunk but the last one (top.js) is in the FAISS index.
    schemas.write_parquet(idmap_table(ids[:-1]), layout.faiss_idmap, schemas.FAISS_IDMAP)
    modules = [
        ("pkg", "pkg/", "python"),
        ("pkg.sub", "pkg/sub/", "python"),
        ("docs", "docs/", "markdown"),
        ("weird", "weird/", "python"),
        ("lib", "lib/", "python"),
    ]
    schemas.write_parquet(
        pa.table(
            {
                "module_id": [m[0] for m in modules],
                "uri_prefix": [m[1] for m in modules],
                "language": [m[2] for m in modules],
                **{
                    name: [1] * len(modules)
                    for name in (
                        "size_loc",
                        "cyclomatic",
                        "in_deg",
                        "out_deg",
                        "file_count",
                        "def_count",
                        "chunk_count",
                    )
                },
                "doc_cov": [0.5] * len(modules),
                "centrality": [0.2] * len(modules),
            }
        ),
        layout.modules_parquet,
        schemas.MODULES,
    )
    occurrences = [
        # symbol, uri, role, 0-based start line
        ("py pkg/core.py/load().", "pkg/core.py", "def", 1),
        ("py pkg/core.py/Store#", "pkg/core.py", "def", 12),
        ("py pkg/core.py/Store#save().", "pkg/core.py", "def", 14),
        ("py pkg/core.py/Store#", "pkg/core.py", "ref", 3),
        ("py pkg/sub/deep.py/walk().", "pkg/sub/deep.py", "def", 0),
    ]
    schemas.write_parquet(
        pa.table(
            {
                "symbol": [o[0] for o in occurrences],
                "uri": [o[1] for o in occurrences],
                "role": [o[2] for o in occurrences],
                "roles": [1 if o[2] == "def" else 0 for o in occurrences],
                "start_line": [o[3] for o in occurrences],
                "start_char": [4] * len(occurrences),
                "end_line": [o[3] for o in occurrences],
                "end_char": [9] * len(occurrences),
                "enclosing_start_line": [None] * len(occurrences),
                "enclosing_end_line": [None] * len(occurrences),
            }
        ),
        layout.scip_occurrences,
        schemas.SCIP_OCCURRENCES,
    )
    edges = [
        (
            "py pkg/core.py/load().",
            "py pkg/core.py/Store#",
            "reference",
            2,
            "pkg/core.py",
            "pkg/core.py",
        ),
        (
            "py pkg/sub/deep.py/walk().",
            "py pkg/core.py/load().",
            "call",
            1,
            "pkg/sub/deep.py",
            "pkg/core.py",
        ),
        ("py pkg/core.py/load().", "py json/loads().", "call", 3, "pkg/core.py", None),
    ]
    schemas.write_parquet(
        pa.table(
            {name: [e[i] for e in edges] for i, name in enumerate(schemas.SYMBOL_EDGES.names)}
        ),
        layout.symbol_edges,
        schemas.SYMBOL_EDGES,
    )
    if with_eval_pool:
        schemas.write_parquet(
            pa.table(
                {
                    name: [r[i] if i < len(r) else None for r in EVAL_POOL_ROWS]
                    for i, name in enumerate(schemas.EVAL_POOL.names)
                }
            ),
            layout.eval_pool,
            schemas.EVAL_POOL,
        )
    return layout
