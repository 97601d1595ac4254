"""The DuckDB catalog: view DDL (``views.sql``), the builder and the read-only query API."""

from codeintel_assets.core.catalog.catalog import (
    MATERIALIZED_TABLES,
    SOURCE_NAMES,
    CatalogStatus,
    MaterializedStatus,
    SourceStatus,
    ViewStatus,
    build_catalog,
    catalog_status,
    ensure_views,
    load_view_definitions,
    materialize_if_changed,
    refresh_idmap_join,
    register_parquet,
)
from codeintel_assets.core.catalog.query import (
    CHUNK_COLUMNS,
    HYDRATION_COLUMNS,
    CatalogReader,
    ChunkFilter,
    Hydration,
    HydrationSource,
    hydrate_rows,
)

__all__ = [
    "CHUNK_COLUMNS",
    "HYDRATION_COLUMNS",
    "MATERIALIZED_TABLES",
    "SOURCE_NAMES",
    "CatalogReader",
    "CatalogStatus",
    "ChunkFilter",
    "Hydration",
    "HydrationSource",
    "MaterializedStatus",
    "SourceStatus",
    "ViewStatus",
    "build_catalog",
    "catalog_status",
    "ensure_views",
    "hydrate_rows",
    "load_view_definitions",
    "materialize_if_changed",
    "refresh_idmap_join",
    "register_parquet",
]
