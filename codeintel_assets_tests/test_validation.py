"""The catalog checks count their problems exactly, with examples, in one pass when they pass."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from codeintel_assets.core.layout import ArtifactLayout
from codeintel_assets.core.validation import EXAMPLES, check_no_orphan_nodes


def catalog_with_orphans(root: Path, ast_orphans: int, cst_orphans: int) -> ArtifactLayout:
    """Return a build area whose catalog has node tables with that many orphan nodes."""
    layout = ArtifactLayout(root)
    layout.catalog.parent.mkdir(parents=True)
    with duckdb.connect(str(layout.catalog)) as con:
        for table, orphans in (("ast_nodes", ast_orphans), ("cst_nodes", cst_orphans)):
            con.execute(f"CREATE TABLE {table} (uri VARCHAR, node_id BIGINT, parent_id BIGINT)")
            # A root, a child of it, then orphans whose parents do not exist.
            rows = [("a.py", 1, None), ("a.py", 2, 1)]
            rows += [("b.py", 100 + i, 900 + i) for i in range(orphans)]
            con.executemany(f"INSERT INTO {table} VALUES (?, ?, ?)", rows)
    return layout


@pytest.mark.parametrize(
    ("ast_orphans", "cst_orphans"),
    [(0, 0), (1, 0), (2, 2), (EXAMPLES, 0), (3, EXAMPLES), (40, 17)],
)
def test_a_check_counts_every_problem_and_shows_a_few(
    tmp_path: Path, ast_orphans: int, cst_orphans: int
):
    outcome = check_no_orphan_nodes(catalog_with_orphans(tmp_path, ast_orphans, cst_orphans))
    total = ast_orphans + cst_orphans
    assert outcome.metadata["problems"] == total
    assert outcome.passed is (total == 0)
    assert outcome.detail.startswith(f"{total} orphan nodes")
    shown = min(total, 3)
    assert outcome.detail.count("'b.py'") == shown
