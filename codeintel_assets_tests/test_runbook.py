"""The operator runbook as written: file-based ``indexctl`` forms, run through the console script.

One real build of the fixture repository (real scip-python, FAISS, DuckDB; the hashing
embedder) serves every test. Files an operator would copy elsewhere (the index, the
catalog, the exports) are copied into an ``ops`` folder, so the build area stays as built.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb
import faiss
import numpy as np
import pyarrow.parquet as pq
import pytest

from codeintel_assets.core import faiss_store, lifecycle, registry
from codeintel_assets.core.checksums import xxh64_file
from codeintel_assets.core.chunk_table import read_chunk_vectors
from codeintel_assets.core.layout import RepoLayout
from codeintel_assets_tests.support import materialize_partition, write_fixture_repo

INDEXCTL = Path(sys.executable).parent / "indexctl"


@dataclass(frozen=True)
class Built:
    base: Path
    data: Path
    repo: RepoLayout

    @property
    def published(self):
        return lifecycle.current_layout(self.repo)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    base = tmp_path_factory.mktemp("runbook")
    data = base / "data"
    source = write_fixture_repo(base / "fixture")
    registry.add_repo(registry.RepoConfig(name="fx", path=str(source)), root=data)
    assert materialize_partition("fx", data_root=data).success
    return Built(base, data, RepoLayout(data, "fx"))


@pytest.fixture
def ops(built: Built, tmp_path: Path) -> Path:
    """An operator's folder: copies of the published index (with its sidecar) and of the
    build's catalog (no materialized id map yet), plus an IVF index (HNSW quantizer) and an
    HNSW index over the same chunk vectors."""
    folder = tmp_path / "ops"
    folder.mkdir()
    version = built.published
    shutil.copy(version.faiss_index(), folder / "chunks.faiss")
    shutil.copy(version.faiss_audit(), folder / "chunks.audit.json")
    for name in ("code.duckdb", "code2.duckdb"):
        shutil.copy(built.repo.build.catalog, folder / name)
    ids, vectors = read_chunk_vectors(version.chunks)
    for name, factory in (("ivf", "IVF4_HNSW8,Flat"), ("hnsw", "IDMap2,HNSW8")):
        faiss_store.write_index(
            faiss_store.build_index(ids, vectors, factory), folder / f"{name}.faiss"
        )
    return folder


def indexctl(built: Built, *args: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CODEINTEL_DATA": str(built.data)}
    return subprocess.run(
        [str(INDEXCTL), *map(str, args)], capture_output=True, text=True, env=env, timeout=300
    )


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1, done
    assert len(lines) == 1 and lines[0].startswith("indexctl: error:"), done.stderr
    return lines[0]


def chunk_count(built: Built) -> int:
    return pq.ParquetFile(built.published.chunks).metadata.num_rows


def meta(catalog: Path) -> tuple[str, int]:
    with duckdb.connect(str(catalog), read_only=True) as con:
        checksum, rows = con.execute(
            "SELECT checksum, row_count FROM faiss_idmap_mat_meta"
        ).fetchone()
    return checksum, rows


def test_every_runbook_command_on_files(built: Built, ops: Path) -> None:
    n = chunk_count(built)
    audit = json.loads((ops / "chunks.audit.json").read_text())

    # export-idmap --index F --out F --duckdb F
    out = ok(
        indexctl(
            built,
            "export-idmap",
            "--index",
            ops / "chunks.faiss",
            "--out",
            ops / "faiss_idmap.parquet",
            "--duckdb",
            ops / "code.duckdb",
        )
    )
    assert f"wrote {n} rows" in out and "faiss_idmap_mat refreshed" in out
    idmap = pq.read_table(ops / "faiss_idmap.parquet")
    assert idmap.column_names == ["faiss_row", "faiss_id", "index_name", "build_version", "ts"]
    assert idmap.num_rows == n
    assert idmap.column("faiss_row").to_pylist() == list(range(n))
    assert set(idmap.column("index_name").to_pylist()) == {"chunks"}
    assert set(idmap.column("build_version").to_pylist()) == {audit["build_version"]}
    assert meta(ops / "code.duckdb") == (xxh64_file(ops / "faiss_idmap.parquet"), n)
    with duckdb.connect(str(ops / "code.duckdb"), read_only=True) as con:
        joined = con.execute("SELECT count(*) FROM faiss_idmap_mat JOIN v_chunks ON id = chunk_id")
        assert joined.fetchone()[0] == n

    # faiss export-idmap --index F --out F
    out = ok(
        indexctl(
            built,
            "faiss",
            "export-idmap",
            "--index",
            ops / "chunks.faiss",
            "--out",
            ops / "idmap2.parquet",
        )
    )
    assert pq.read_table(ops / "idmap2.parquet").equals(idmap)

    # duckdb refresh-idmap-join --db F --idmap F: refreshed, then the checksum guard holds
    refresh = ("duckdb", "refresh-idmap-join", "--db", ops / "code2.duckdb", "--idmap")
    out = ok(indexctl(built, *refresh, ops / "idmap2.parquet"))
    checksum = xxh64_file(ops / "idmap2.parquet")
    assert f"faiss_idmap_mat refreshed: {n} rows, checksum {checksum}" in out
    before = xxh64_file(ops / "code2.duckdb")
    second = json.loads(ok(indexctl(built, *refresh, ops / "idmap2.parquet", "--format", "json")))
    assert second == {"refreshed": False, "rows": n, "checksum": checksum, "state": "unchanged"}
    assert "unchanged" in ok(indexctl(built, *refresh, ops / "idmap2.parquet"))
    assert xxh64_file(ops / "code2.duckdb") == before  # nothing written

    # tune --index F with explicit knobs: an operator's lock in the sidecar beside the index
    lock = ("--nprobe", 2, "--ef-search", 128, "--k-factor", 2.0)  # the runbook's knobs
    ok(indexctl(built, "tune", "--index", ops / "ivf.faiss", *lock))
    ivf = json.loads((ops / "ivf.audit.json").read_text())
    assert ivf["knobs"] == "nprobe=2,quantizer_efSearch=128" and ivf["k_factor"] == 2.0
    assert ivf["locked_by"] == "operator" and ivf["metric"] == "inner_product"
    assert ivf["ntotal"] == n
    assert ivf["dim"] == pq.read_schema(built.published.chunks).field("embedding").type.list_size
    assert ivf["index_xxh64"] == xxh64_file(ops / "ivf.faiss")
    assert ivf["factory"] == ivf["index_type"] == "IndexIVFFlat"
    assert 0.0 <= ivf["measured_recall"] <= 1.0 and ivf["latency_ms"] > 0
    assert [p["knobs"] for p in ivf["sweep"]] == [ivf["knobs"]]
    ok(indexctl(built, "tune", "--index", ops / "hnsw.faiss", "--ef-search", 128))
    hnsw = json.loads((ops / "hnsw.audit.json").read_text())
    assert hnsw["knobs"] == "efSearch=128" and hnsw["index_type"] == "IndexIDMap2/IndexHNSWFlat"
    ok(indexctl(built, "tune", "--index", ops / "chunks.faiss", "--k-factor", 2.0))
    flat = json.loads((ops / "chunks.audit.json").read_text())
    assert flat["knobs"] == "" and flat["measured_recall"] == 1.0
    assert flat["factory"] == "IDMap2,Flat" and flat["build_version"] == audit["build_version"]
    # Without knobs: the sweep, cheapest point reaching the target.
    ok(indexctl(built, "tune", "--index", ops / "ivf.faiss", "--target-recall", 0.99))
    swept = json.loads((ops / "ivf.audit.json").read_text())
    assert swept["locked_by"] == "sweep" and swept["sweep"][0]["knobs"] == "nprobe=1"
    assert swept["target_met"] and swept["measured_recall"] >= 0.99

    # eval recall --duckdb F --index F --k 10 --k-factor 2.0 --out F
    out = ok(
        indexctl(
            built,
            "eval",
            "recall",
            "--duckdb",
            ops / "code.duckdb",
            "--index",
            ops / "chunks.faiss",
            "--k",
            10,
            "--k-factor",
            2.0,
            "--out",
            ops / "pool.parquet",
            "--format",
            "json",
        )
    )
    metrics = json.loads(out)
    assert metrics["ann_recall"] == 1.0 and metrics["queries"] == min(200, n)
    pool = pq.read_table(ops / "pool.parquet")
    assert set(pool.column("source").to_pylist()) == {"faiss", "oracle"}
    per_source = pool.group_by(["query_id", "source"]).aggregate([("rank", "max")]).to_pylist()
    assert {r["source"]: r["rank_max"] for r in per_source} == {
        "faiss": min(20, n),
        "oracle": min(10, n),
    }
    # Query vectors from a file (NPY and Parquet), searched at the IVF's locked knobs.
    queries = read_chunk_vectors(built.published.chunks)[1][:5]
    np.save(ops / "queries.npy", queries)
    base = ("eval", "recall", "--duckdb", ops / "code.duckdb", "--index", ops / "ivf.faiss")
    metrics = json.loads(
        ok(indexctl(built, *base, "--queries", ops / "queries.npy", "--format", "json"))
    )
    assert metrics["queries"] == 5 and metrics["knobs"] == swept["knobs"]
    pq.write_table(pq.read_table(built.published.chunks).slice(0, 3), ops / "queries.parquet")
    metrics = json.loads(
        ok(indexctl(built, *base, "--queries", ops / "queries.parquet", "--format", "json"))
    )
    assert metrics["queries"] == 3

    # stage --modules F --symbol-graph F --scip F --ast F --cst F, then publish
    version = built.published
    modules = version.modules_jsonl.read_text().splitlines()
    extra = {"module_id": "operator.extra", "uri_prefix": "extra/", "language": "python"}
    (ops / "modules.jsonl").write_text("\n".join([*modules, json.dumps(extra)]) + "\n")
    graph = json.loads(version.symbol_graph_json.read_text())
    graph["edges"] = graph["edges"][1:]
    (ops / "symbol_graph.json").write_text(json.dumps(graph))
    for name, source in (
        ("index.scip", version.scip_index),
        ("ast_nodes.parquet", version.ast_nodes),
        ("cst_nodes.parquet", version.cst_nodes),
    ):
        shutil.copy(source, ops / name)
    previous = lifecycle.current_version_or_none(built.repo)
    out = ok(
        indexctl(
            built,
            "stage",
            "--repo",
            "fx",
            "--modules",
            ops / "modules.jsonl",
            "--symbol-graph",
            ops / "symbol_graph.json",
            "--scip",
            ops / "index.scip",
            "--ast",
            ops / "ast_nodes.parquet",
            "--cst",
            ops / "cst_nodes.parquet",
        )
    )
    assert f"modules: {len(modules) + 1} rows" in out
    assert f"symbol_edges: {len(graph['edges'])} rows" in out
    staged = lifecycle.staged_version_or_none(built.repo)
    assert staged is not None and staged != previous
    assert built.repo.version(staged).modules_parquet.exists()
    assert not built.repo.version(staged).catalog.exists()  # publish builds it
    out = ok(indexctl(built, "publish", "--repo", "fx"))
    assert f"published {staged} (previous: {previous})" in out
    assert lifecycle.current_version_or_none(built.repo) == staged
    assert lifecycle.staged_version_or_none(built.repo) is None
    with duckdb.connect(str(built.published.catalog), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM modules").fetchone()[0] == len(modules) + 1
        assert con.execute(
            "SELECT count(*) FROM modules WHERE module_id = 'operator.extra'"
        ).fetchone() == (1,)
        assert con.execute("SELECT count(*) FROM symbol_edges").fetchone()[0] == len(graph["edges"])
        built_occurrences = pq.ParquetFile(version.scip_occurrences).metadata.num_rows
        assert con.execute("SELECT count(*) FROM scip_occurrences").fetchone()[0] == (
            built_occurrences
        )
    # The build area is untouched: its modules still are the built ones.
    assert pq.ParquetFile(built.repo.build.modules_parquet).metadata.num_rows == len(modules)


def test_bad_input_is_one_line_and_writes_nothing(built: Built, ops: Path) -> None:
    (ops / "notes.faiss").write_text("not an index\n")
    catalog_sum = xxh64_file(ops / "code.duckdb")

    # A file that is not a FAISS index.
    done = indexctl(built, "export-idmap", "--index", ops / "notes.faiss", "--out", ops / "x.pq")
    assert "not a FAISS index" in one_line_error(done) and "notes.faiss" in done.stderr
    done = indexctl(built, "tune", "--index", ops / "notes.faiss", "--nprobe", 4)
    assert "not a FAISS index" in one_line_error(done)
    faiss.write_index(faiss.IndexFlatIP(4), str(ops / "plain.faiss"))
    done = indexctl(built, "export-idmap", "--index", ops / "plain.faiss", "--out", ops / "x.pq")
    assert "plain.faiss: index keeps no ids" in one_line_error(done)
    assert not (ops / "x.pq").exists() and not (ops / "notes.audit.json").exists()

    # An index whose ids do not match the catalog.
    ids, vectors = read_chunk_vectors(built.published.chunks)
    faiss_store.write_index(faiss_store.build_index(ids[1:] + 7, vectors[1:]), ops / "other.faiss")
    done = indexctl(
        built,
        "export-idmap",
        "--index",
        ops / "other.faiss",
        "--out",
        ops / "y.parquet",
        "--duckdb",
        ops / "code.duckdb",
    )
    assert "does not match catalog" in one_line_error(done)
    base = ("eval", "recall", "--duckdb", ops / "code.duckdb")
    done = indexctl(built, *base, "--index", ops / "other.faiss", "--out", ops / "p.parquet")
    assert "does not match catalog" in one_line_error(done)
    faiss_store.export_idmap(ops / "other.faiss", ops / "other_idmap.parquet")
    done = indexctl(
        built,
        "duckdb",
        "refresh-idmap-join",
        "--db",
        ops / "code.duckdb",
        "--idmap",
        ops / "other_idmap.parquet",
    )
    assert "id map" in one_line_error(done) and "does not match catalog" in done.stderr
    assert not (ops / "y.parquet").exists() and not (ops / "p.parquet").exists()
    assert xxh64_file(ops / "code.duckdb") == catalog_sum

    # A knob the family does not have.
    (ops / "chunks.audit.json").unlink()
    done = indexctl(built, "tune", "--index", ops / "chunks.faiss", "--nprobe", 8)
    assert "has no nprobe" in one_line_error(done)
    done = indexctl(built, "tune", "--index", ops / "chunks.faiss", "--ef-search", 64)
    assert "has no efSearch" in one_line_error(done)
    done = indexctl(built, "tune", "--index", ops / "hnsw.faiss", "--nprobe", 2)
    assert "has no nprobe" in one_line_error(done)
    assert not (ops / "chunks.audit.json").exists() and not (ops / "hnsw.audit.json").exists()

    # Both --repo and --index; half of a file form.
    done = indexctl(built, "tune", "--repo", "fx", "--index", ops / "ivf.faiss", "--nprobe", 2)
    assert "either --repo or --index F, not both" in one_line_error(done)
    done = indexctl(
        built, "export-idmap", "--repo", "fx", "--index", ops / "ivf.faiss", "--out", ops / "z.pq"
    )
    assert "not both" in one_line_error(done)
    done = indexctl(built, "eval", "recall", "--duckdb", ops / "code.duckdb")
    assert "--duckdb F --index F together" in one_line_error(done)
    assert not (ops / "ivf.audit.json").exists() and not (ops / "z.pq").exists()

    # Ranges, and output folders that do not exist.
    pool = ("--index", ops / "chunks.faiss", "--out", ops / "p.parquet")
    for args, message in (
        (("--k", 0), "--k must be ≥ 1, got 0"),
        (("--k-factor", 0.5), "--k-factor must be ≥ 1, got 0.5"),
    ):
        assert message in one_line_error(indexctl(built, *base, *pool, *args))
    tune = ("tune", "--index", ops / "ivf.faiss")
    assert "in (0, 1]" in one_line_error(indexctl(built, *tune, "--target-recall", 1.5))
    assert "in (0, 1]" in one_line_error(indexctl(built, *tune, "--target-recall", 0))
    assert "--nprobe must be > 0" in one_line_error(indexctl(built, *tune, "--nprobe", 0))
    missing = ops / "missing" / "idmap.parquet"
    done = indexctl(built, "faiss", "export-idmap", "--index", ops / "ivf.faiss", "--out", missing)
    assert "does not exist" in one_line_error(done)
    assert not missing.parent.exists() and not (ops / "p.parquet").exists()

    # Staging a malformed file: the reader's error (as for `repo add`), nothing staged.
    (ops / "modules.jsonl").write_text('{"module_id": "m", "uri_prefix": 3, "language": "py"}\n')
    versions = sorted(p.name for p in built.repo.versions_dir.iterdir())
    done = indexctl(built, "stage", "--repo", "fx", "--modules", ops / "modules.jsonl")
    assert "line 1: field 'uri_prefix' must be a string" in one_line_error(done)
    assert sorted(p.name for p in built.repo.versions_dir.iterdir()) == versions
    assert lifecycle.staged_version_or_none(built.repo) is None
    assert not list(built.repo.repo_dir.glob(".given.*"))
