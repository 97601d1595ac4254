"""The build stages of one repository, one module per layer, each behind its checksum gate.

One function per asset: it fingerprints its inputs, runs the domain code when
something changed, writes its artifacts atomically and returns a ``StageResult``
(ran or skipped, data version, metadata). The Dagster assets call these; nothing
here knows Dagster.
"""

from codeintel_assets.core.stages.context import BuildContext

__all__ = ["BuildContext"]
