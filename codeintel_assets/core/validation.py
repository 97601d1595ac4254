"""Validations that guard publishing; the Dagster asset checks and the CLI share them.

Each function takes an ``ArtifactLayout`` (the build area or a staged version) and
returns a ``CheckOutcome``; ``validate_version`` runs the blocking ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np

from codeintel_assets.core import faiss_store
from codeintel_assets.core.layout import ArtifactLayout

ROUND_TRIP_SAMPLE = 64


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    detail: str
    metadata: dict[str, Any] = field(default_factory=dict)


def check_chunks_not_empty(layout: ArtifactLayout) -> CheckOutcome:
    """``v_chunks`` in the layout's catalog has at least one row."""
    with duckdb.connect(str(layout.catalog), read_only=True) as con:
        count = con.execute("SELECT count(*) FROM v_chunks").fetchone()[0]
    return CheckOutcome(
        "v_chunks_not_empty", count > 0, f"v_chunks has {count} rows", {"rows": int(count)}
    )


def check_faiss_round_trip(layout: ArtifactLayout, sample: int = ROUND_TRIP_SAMPLE) -> CheckOutcome:
    """Sampled FAISS ids hydrate through the catalog to the same chunk id, uri and vector."""
    index = faiss_store.read_index(layout.faiss_index())
    ids = faiss_store.index_ids(index)
    if len(ids) == 0:
        return CheckOutcome("faiss_round_trip", False, "the FAISS index is empty")
    rng = np.random.default_rng(0)
    picked = rng.choice(ids, size=min(sample, len(ids)), replace=False).tolist()
    with duckdb.connect(str(layout.catalog), read_only=True) as con:
        rows = con.execute(
            "SELECT faiss_id, chunk_id, uri FROM v_faiss_join "
            "WHERE faiss_id IN (SELECT UNNEST(?::BIGINT[]))",
            [picked],
        ).fetchall()
        chunks = {
            row[0]: (row[1], row[2])
            for row in con.execute(
                "SELECT id, uri, embedding FROM v_chunks WHERE id IN (SELECT UNNEST(?::BIGINT[]))",
                [picked],
            ).fetchall()
        }
    problems = []
    found = {row[0]: row for row in rows}
    for faiss_id in picked:
        row = found.get(faiss_id)
        if row is None:
            problems.append(f"faiss id {faiss_id} has no chunk in v_faiss_join")
            continue
        _, chunk_id, uri = row
        chunk_uri, embedding = chunks.get(chunk_id, (None, None))
        if chunk_id != faiss_id or chunk_uri != uri:
            problems.append(f"faiss id {faiss_id} hydrates to chunk {chunk_id} {uri!r}")
        elif not np.allclose(index.reconstruct(int(faiss_id)), np.asarray(embedding), atol=1e-5):
            problems.append(f"faiss id {faiss_id}: stored vector differs from the chunk embedding")
    detail = f"{len(picked) - len(problems)}/{len(picked)} sampled ids round-trip"
    if problems:
        detail += ": " + "; ".join(problems[:5])
    return CheckOutcome(
        "faiss_round_trip",
        not problems,
        detail,
        {"sampled": len(picked), "failures": len(problems)},
    )


BLOCKING_CHECKS = (check_chunks_not_empty, check_faiss_round_trip)


def validate_version(layout: ArtifactLayout) -> list[str]:
    """Run the blocking checks; return the failure messages (empty when all pass)."""
    failures = []
    for check in BLOCKING_CHECKS:
        try:
            outcome = check(layout)
        except (duckdb.Error, OSError, RuntimeError) as exc:
            failures.append(f"{check.__name__}: {exc}")
            continue
        if not outcome.passed:
            failures.append(f"{outcome.name}: {outcome.detail}")
    return failures
