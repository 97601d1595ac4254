"""The code location: assembles assets, checks and resources; nothing else."""

import dagster as dg

from codeintel_assets.assets import catalog, chunks, publish, source, structure, vectors
from codeintel_assets.checks import ALL_CHECKS
from codeintel_assets.resources import CodeintelResource

ALL_ASSETS = dg.load_assets_from_modules([source, structure, chunks, vectors, catalog, publish])

defs = dg.Definitions(
    assets=ALL_ASSETS,
    asset_checks=ALL_CHECKS,
    resources={"codeintel": CodeintelResource()},
)
