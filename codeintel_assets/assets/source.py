"""Source layer: the files of a repository that are indexed."""

import dagster as dg

from codeintel_assets.assets.metadata import materialize_result
from codeintel_assets.core.stages.source import stage_repo_manifest
from codeintel_assets.core.stamps import CODE_VERSIONS
from codeintel_assets.partitions import REPOS
from codeintel_assets.resources import CodeintelResource


@dg.asset(
    partitions_def=REPOS,
    group_name="source",
    code_version=CODE_VERSIONS["repo_manifest"],
    kinds={"parquet"},
)
def repo_manifest(context: dg.AssetExecutionContext, codeintel: CodeintelResource):
    """The indexed files (path, language, size, xxh64, git blob) and the counted skips.

    Its data version is the checksum of the manifest, so an unchanged tree changes nothing.
    """
    ctx = codeintel.build_context(context.partition_key)
    return materialize_result(stage_repo_manifest(ctx), ctx.layout.build.repo_manifest)
