"""The DuckDB catalog: view DDL (``views.sql``), the builder and the read-only query API."""

from codeintel_assets.core.catalog.catalog import (
    MATERIALIZED_TABLES,
    SOURCE_NAMES,
    CatalogStatus,
    IdmapRefresh,
    MaterializedStatus,
    SourceStatus,
    ViewStatus,
    build_catalog,
    catalog_status,
    ensure_views,
    load_view_definitions,
    materialize_if_changed,
    refresh_idmap_file,
    refresh_idmap_join,
    register_parquet,
)
from codeintel_assets.core.catalog.globs import PathFilter, compile_glob
from codeintel_assets.core.catalog.query import CatalogReader, ChunkFilter

__all__ = [
    "MATERIALIZED_TABLES",
    "SOURCE_NAMES",
    "CatalogReader",
    "CatalogStatus",
    "ChunkFilter",
    "IdmapRefresh",
    "MaterializedStatus",
    "PathFilter",
    "SourceStatus",
    "ViewStatus",
    "build_catalog",
    "catalog_status",
    "compile_glob",
    "ensure_views",
    "load_view_definitions",
    "materialize_if_changed",
    "refresh_idmap_file",
    "refresh_idmap_join",
    "register_parquet",
]
