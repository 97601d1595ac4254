"""Two repository partitions built at the same time by two Dagster runs (two `dagster
asset materialize` processes) share an instance and a data root, and each ends exactly
as it would built alone.

The runs use the in-process executor: a step process per asset (the multiprocess
executor, which ``benchmarks/bench_partitions.py`` measures) costs an interpreter start
each, minutes in all on a busy 2-core machine, and adds nothing to what is tested here —
two partitions writing at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from codeintel_assets.core import lifecycle, registry
from codeintel_assets.core.layout import RepoLayout
from codeintel_assets_tests.support import FIXTURE_FILES, materialize_partition, write_fixture_repo

pytestmark = pytest.mark.integration

OTHER_FILES = {
    "tools/__init__.py": '"""Other tools."""\n',
    "tools/report.py": (
        '"""Reports."""\n\n\ndef summarize(rows):\n    """Sum the values."""\n'
        "    return sum(value for _, value in rows)\n\n\n"
        "class Table:\n    def __init__(self):\n        self.rows = []\n\n"
        "    def add(self, row):\n        self.rows.append(row)\n"
        "        return summarize(self.rows)\n"
    ),
    "tools/cli.py": (
        "from tools.report import Table, summarize\n\n\ndef main(rows):\n"
        "    table = Table()\n    for row in rows:\n        table.add(row)\n"
        "    return summarize(table.rows)\n"
    ),
}
# Tables compared with a build of the same repository alone (wall-clock columns aside).
TABLES = ("chunks", "scip_occurrences", "units", "symbol_edges", "ast_nodes", "cst_nodes")
CONFIG = json.dumps(
    {
        "resources": {"codeintel": {"config": {"embedder": "hashing"}}},
        "execution": {"config": {"in_process": {}}},
    }
)


def _materialize_command(partition: str) -> list[str]:
    dagster = Path(sys.executable).parent / "dagster"
    return [str(dagster), "asset", "materialize", "--select", "*", "--partition", partition]


def test_two_partitions_build_concurrently_without_touching_each_other(
    tmp_path: Path, data_dir: Path, dagster_home: Path
):
    repos = {
        "alpha": write_fixture_repo(tmp_path / "alpha", FIXTURE_FILES),
        "beta": write_fixture_repo(tmp_path / "beta", OTHER_FILES),
    }
    for name, path in repos.items():
        registry.add_repo(registry.RepoConfig(name=name, path=str(path)))
    instance = dg.DagsterInstance.get()
    instance.add_dynamic_partitions("repos", list(repos))
    env = {**os.environ, "CODEINTEL_DATA": str(data_dir), "DAGSTER_HOME": str(dagster_home)}
    runs = [
        subprocess.Popen(
            [*_materialize_command(name), "-m", "codeintel_assets.definitions"]
            + ["--config-json", CONFIG],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in repos
    ]
    errors = [run.communicate(timeout=1800)[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [e[-3000:] for e in errors]

    records = instance.get_run_records()
    assert sorted(r.dagster_run.tags["dagster/partition"] for r in records) == sorted(repos)
    first, second = sorted(records, key=lambda r: r.start_time)
    # Both runs were going at once: the second started before the first ended.
    assert second.start_time < first.end_time
    for record in records:
        assert record.dagster_run.is_success

    alone = tmp_path / "alone"
    alone.mkdir()
    for name, path in repos.items():
        registry.add_repo(registry.RepoConfig(name=name, path=str(path)), alone)
        assert materialize_partition(name, alone).success
        built, reference = RepoLayout(data_dir, name), RepoLayout(alone, name)
        assert lifecycle.verify_version(lifecycle.current_layout(built)) == []
        uris = set(pq.read_table(built.build.chunks, columns=["uri"])["uri"].to_pylist())
        assert uris and uris <= {p.relative_to(path).as_posix() for p in path.rglob("*.*")}
        for table in TABLES:
            assert _table(built, table) == _table(reference, table), f"{name}: {table}"


def _table(layout: RepoLayout, name: str) -> list[dict]:
    """Return a table of the build as rows (the node/chunk/unit ids name the repository)."""
    return pq.read_table(getattr(layout.build, name)).to_pylist()
