"""The asset factory: one partitioned Dagster asset per row of the stage table.

Each asset's key, upstream deps, code version, group, kinds and description come from
its ``Stage`` row (``core.stages.STAGES``); its body builds the partition's context,
runs the stage and reports the result (``materialize_result``). Everything downstream of
``repo_manifest`` follows its inputs (``AutomationCondition.eager()``).
"""

import inspect

import dagster as dg

from codeintel_assets.assets.metadata import materialize_result
from codeintel_assets.automation import DOWNSTREAM
from codeintel_assets.core.stamps import Stage
from codeintel_assets.partitions import REPOS
from codeintel_assets.resources import CodeintelResource


def stage_asset(stage: Stage) -> dg.AssetsDefinition:
    """Return the asset that materializes ``stage`` for one repository partition."""

    @dg.asset(
        name=stage.name,
        deps=list(stage.inputs),
        code_version=stage.code_version,
        group_name=stage.group,
        kinds=set(stage.kinds) or None,
        description=inspect.cleandoc(stage.run.__doc__ or ""),
        partitions_def=REPOS,
        automation_condition=DOWNSTREAM if stage.inputs else None,
    )
    def _asset(context: dg.AssetExecutionContext, codeintel: CodeintelResource):
        ctx = codeintel.build_context(context.partition_key)
        outputs = stage.outputs(ctx.layout.build)
        # The first output, when a Parquet table, shows its schema and a preview.
        table = outputs[0] if outputs and outputs[0].suffix == ".parquet" else None
        return materialize_result(stage.run(ctx, stage), table)

    return _asset
