"""The nightly schedule's job re-checks every repository without rebuilding anything."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from codeintel_assets.core.layout import RepoLayout
from codeintel_assets.partitions import REPOS
from codeintel_assets.resources import CodeintelResource
from codeintel_assets.schedules import RECHECK, SCIP_RECHECK, nightly_recheck, nightly_recheck_job

pytestmark = pytest.mark.integration


def recheck(name: str, data_dir: Path) -> tuple[int, list[dg.AssetCheckEvaluation]]:
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(REPOS.name, [name])
    resource = CodeintelResource(data_root=str(data_dir), embedder="hashing")
    result = nightly_recheck_job.execute_in_process(
        instance=instance, resources={"codeintel": resource}
    )
    assert result.success
    return result.output_for_node("recheck_repositories"), result.get_asset_check_evaluations()


def test_nightly_recheck_passes_on_a_clean_build_and_catches_a_stale_vector(
    published: str, data_dir: Path
):
    assert nightly_recheck.cron_schedule == "0 3 * * *"
    failed, evaluations = recheck(published, data_dir)
    assert failed == 0
    assert [(e.asset_check_key, e.partition, e.passed) for e in evaluations] == [
        (RECHECK, published, True),
        (SCIP_RECHECK, published, True),
    ]
    assert evaluations[1].metadata["checked"].value is True
    # A stored vector that no longer matches a fresh embedding of its text is caught.
    chunks_path = RepoLayout(data_dir, published).build.chunks
    table = pq.read_table(chunks_path)
    vectors = np.asarray(table.column("embedding").to_pylist(), dtype=np.float32)
    flipped = pa.array(list(-vectors), type=table.schema.field("embedding").type)
    column = table.schema.get_field_index("embedding")
    pq.write_table(table.set_column(column, "embedding", flipped), chunks_path)
    failed, evaluations = recheck(published, data_dir)
    assert failed == 1 and not evaluations[0].passed


def test_nightly_full_scip_pass_catches_a_wrong_stored_index(published: str, data_dir: Path):
    # A stored occurrence table an incremental update got wrong: one row lost, one moved.
    layout = RepoLayout(data_dir, published).build
    table = pq.read_table(layout.scip_occurrences)
    lines = table.column("start_line").to_pylist()
    lines[1] += 1
    column = table.schema.get_field_index("start_line")
    wrong = table.set_column(column, "start_line", pa.array(lines, pa.int32())).slice(1)
    pq.write_table(wrong, layout.scip_occurrences)
    failed, evaluations = recheck(published, data_dir)
    scip = {e.asset_check_key: e for e in evaluations}[SCIP_RECHECK]
    assert failed == 1 and not scip.passed
    assert scip.description.startswith("scip_occurrences: 1 stale and 2 missing rows")
    tables = scip.metadata["tables"].value
    assert tables["scip_occurrences"]["stale"] == 1 and tables["scip_occurrences"]["missing"] == 2
    assert tables["scip_symbols"]["missing"] == tables["symbol_edges"]["stale"] == 0
