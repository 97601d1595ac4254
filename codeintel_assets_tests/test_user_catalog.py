"""A user's own Dagster asset reads a published catalog through the read-only resource."""

from __future__ import annotations

import runpy
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from codeintel_assets.resources import published_catalog

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "user_assets.py"


def test_the_example_asset_queries_the_published_catalog(published: str, data_dir: Path):
    example = runpy.run_path(str(EXAMPLE))
    resource = published_catalog(published, str(data_dir))
    result = dg.materialize([example["chunks_per_module"]], resources={"catalog": resource})
    assert result.success
    metadata = result.asset_materializations_for_node("chunks_per_module")[0].metadata
    top = metadata["top_modules"].value
    with resource.get_connection() as conn:
        expected = conn.execute(
            "SELECT module_id, count(*) FROM v_chunk_modules GROUP BY module_id "
            "ORDER BY 2 DESC, 1 LIMIT 5"
        ).fetchall()
        chunks = conn.execute("SELECT count(*) FROM v_chunks").fetchone()[0]
        # Read-only: a user's asset cannot change the published catalog.
        with pytest.raises(duckdb.Error, match="read-only"):
            conn.execute("CREATE TABLE scratch AS SELECT 1")
    assert top == dict(expected) and sum(top.values()) <= chunks and chunks > 0


def test_the_resource_follows_current(published: str, data_dir: Path):
    database = Path(published_catalog(published, str(data_dir)).database)
    assert database.parent.parent.name == "current" and database.is_file()
