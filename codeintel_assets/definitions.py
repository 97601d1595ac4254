"""The code location: assembles assets, checks and resources; nothing else."""

import dagster as dg

from codeintel_assets.assets import ALL_ASSETS
from codeintel_assets.checks import ALL_CHECKS
from codeintel_assets.resources import CodeintelResource
from codeintel_assets.schedules import ALL_SCHEDULES
from codeintel_assets.sensors import ALL_SENSORS

defs = dg.Definitions(
    assets=ALL_ASSETS,
    asset_checks=ALL_CHECKS,
    sensors=ALL_SENSORS,
    schedules=ALL_SCHEDULES,
    resources={"codeintel": CodeintelResource()},
)
