"""The periodic full pass: index a repository from scratch and compare the SCIP tables it
gives with the stored ones (which incremental updates made).

The tables are compared as multisets of rows: ``scip_occurrences``, ``scip_symbols`` and
``symbol_edges`` (re-derived from the fresh tables exactly as the ``symbol_edges`` stage
does). Nothing of the build is written: the full pass runs in a temporary folder.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from codeintel_assets.core.scip.incremental import ScipJob, ScipUpdate, update_scip_index
from codeintel_assets.core.scip.protobuf_reader import read_scip_protobuf
from codeintel_assets.core.scip.tables import occurrences_table, repo_text_reader, symbols_table
from codeintel_assets.core.symbols import python_syntax_sites, symbol_edges_table

TABLES = ("scip_occurrences", "scip_symbols", "symbol_edges")
_EXAMPLES = 3


@dataclass(frozen=True)
class TableDifference:
    """Rows of one table only the stored side has (``stale``) or only the fresh full pass
    has (``missing``), with a few examples of each."""

    table: str
    stored_rows: int
    fresh_rows: int
    stale: int = 0
    missing: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class FullPassComparison:
    """The outcome: ``ok`` is False when the full pass itself failed (``failure`` says
    why); ``differences`` has one entry per table."""

    ok: bool
    seconds: float
    documents: int
    differences: list[TableDifference]
    failure: str = ""

    @property
    def equal(self) -> bool:
        return self.ok and all(d.stale == d.missing == 0 for d in self.differences)


def full_pass_tables(
    job: ScipJob, scratch: Path
) -> tuple[dict[str, pa.Table] | None, ScipUpdate]:
    """Run a full pass of ``job`` into ``scratch``; return its three tables (None when the
    run failed) and the ``ScipUpdate``."""
    fresh = dataclasses.replace(
        job, output=scratch / "index.scip", state=scratch / "scip_state.json"
    )
    update = update_scip_index(fresh, force_full=True)
    if not update.ok:
        return None, update
    index = read_scip_protobuf(fresh.output)
    reader = repo_text_reader(job.repo_root)
    occurrences = occurrences_table(index, reader)
    symbols = symbols_table(index)
    sites = python_syntax_sites(sorted(set(occurrences.column("uri").to_pylist())), reader)
    edges = symbol_edges_table(occurrences, symbols, sites.calls, sites.import_lines)
    return {"scip_occurrences": occurrences, "scip_symbols": symbols, "symbol_edges": edges}, update


def compare_with_full_pass(job: ScipJob, stored: dict[str, pa.Table]) -> FullPassComparison:
    """Index ``job``'s tree from scratch and compare each of ``TABLES`` with ``stored``.

    Returns the comparison; never raises for an indexer problem (``ok`` is False then).
    """
    with tempfile.TemporaryDirectory(prefix="codeintel-full-pass-") as scratch:
        fresh, update = full_pass_tables(job, Path(scratch))
    if fresh is None:
        return FullPassComparison(False, update.seconds, 0, [], update.failure)
    differences = [_difference(name, stored[name], fresh[name]) for name in TABLES]
    return FullPassComparison(True, update.seconds, update.documents, differences)


def _difference(name: str, stored: pa.Table, fresh: pa.Table) -> TableDifference:
    have, want = _rows(stored), _rows(fresh)
    stale, missing = have - want, want - have
    return TableDifference(
        name,
        stored.num_rows,
        fresh.num_rows,
        sum(stale.values()),
        sum(missing.values()),
        {
            "stale": sorted(stale)[:_EXAMPLES],
            "missing": sorted(missing)[:_EXAMPLES],
        },
    )


def _rows(table: pa.Table) -> Counter[str]:
    return Counter(json.dumps(row, sort_keys=True, default=str) for row in table.to_pylist())
