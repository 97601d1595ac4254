"""The asset graph: one asset per row of the stage table, in build order."""

from codeintel_assets.assets.factory import stage_asset
from codeintel_assets.core.stages import STAGES

ALL_ASSETS = [stage_asset(stage) for stage in STAGES]
