"""A user's own Dagster asset over a published codeintel catalog.

Load it beside the code location (``dagster dev -f examples/user_assets.py``) with
``CODEINTEL_REPO`` naming a published repository; the asset counts chunks per module
from ``v_chunk_modules`` through a read-only ``DuckDBResource``.
"""

import os

import dagster as dg
from dagster_duckdb import DuckDBResource

from codeintel_assets.resources import published_catalog


@dg.asset
def chunks_per_module(catalog: DuckDBResource) -> dg.MaterializeResult:
    """The five modules with the most chunks in the published index."""
    with catalog.get_connection() as conn:
        rows = conn.execute(
            "SELECT module_id, count(*) AS chunks FROM v_chunk_modules "
            "GROUP BY module_id ORDER BY chunks DESC, module_id LIMIT 5"
        ).fetchall()
    return dg.MaterializeResult(
        metadata={"top_modules": dg.MetadataValue.json(dict(rows)), "modules": len(rows)}
    )


defs = dg.Definitions(
    assets=[chunks_per_module],
    resources={"catalog": published_catalog(os.environ.get("CODEINTEL_REPO", "codeintel"))},
)
