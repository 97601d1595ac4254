"""The real graph, materialized by Dagster on a generated repository, then searched."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from codeintel_assets.core import lifecycle, registry
from codeintel_assets.core.catalog import ChunkFilter
from codeintel_assets.core.embedding import DEFAULT_BACKEND
from codeintel_assets.core.layout import RepoLayout
from codeintel_assets.core.search import CodeIndex, recorded_embedder
from codeintel_assets_tests.support import materialize_repo

pytestmark = pytest.mark.integration


def metadata_of(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    events = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in events[-1].metadata.items()}


@pytest.fixture
def registered(fixture_repo: Path, data_dir: Path) -> str:
    registry.add_repo(registry.RepoConfig(name="fx", path=str(fixture_repo)))
    return "fx"


def test_graph_materializes_publishes_and_searches(registered: str, data_dir: Path):
    result = materialize_repo(registered)
    assert result.success
    assert all(ev.passed for ev in result.get_asset_check_evaluations())

    layout = RepoLayout(data_dir, registered)
    chunks = pq.read_table(layout.build.chunks)
    assert chunks.num_rows == metadata_of(result, "chunks")["chunks"] > 5
    assert chunks.schema.field("embedding").type.list_size == 64
    assert -1 not in chunks.column("id").to_pylist()
    assert metadata_of(result, "chunks")["over_budget"] == 0
    assert metadata_of(result, "repo_manifest")["files"] == 6

    version = lifecycle.current_version_or_none(layout)
    assert version is not None
    manifest = json.loads(layout.version(version).version_manifest.read_text())
    paths = {a["path"] for a in manifest["artifacts"]}
    assert {
        "vectors/chunks/chunks.parquet",
        "faiss/chunks.faiss",
        "faiss/faiss_idmap.parquet",
    } <= paths
    chunk_entry = next(a for a in manifest["artifacts"] if a["path"].endswith("chunks.parquet"))
    assert chunk_entry["rows"] == chunks.num_rows

    with CodeIndex.open(registered) as index:
        hits = index.search("build faiss index vectors ids", k=3)
        assert hits[0].uri == "pkg/vectors.py"
        assert "build_faiss_index" in index.catalog.get_chunk_by_id(hits[0].chunk_id)["content"]
        assert [h.rank for h in hits] == [1, 2, 3]
        assert hits[0].score >= hits[1].score >= hits[2].score
        only_js = index.search("greet counter", k=5, filters=ChunkFilter(languages=["javascript"]))
        assert only_js and {h.lang for h in only_js} == {"javascript"}
        no_py = index.search("vector", k=20, filters=ChunkFilter(exclude_globs=["*.py"]))
        assert no_py and not any(h.uri.endswith(".py") for h in no_py)


def test_second_build_skips_every_stage_with_same_versions(registered: str, data_dir: Path):
    first = materialize_repo(registered)
    second = materialize_repo(registered)
    for asset in (
        "repo_manifest",
        "chunks",
        "faiss_index",
        "faiss_idmap",
        "duckdb_catalog",
        "published_index",
    ):
        before, after = metadata_of(first, asset), metadata_of(second, asset)
        assert after["codeintel/ran"] is False, asset
        assert after["data_version"] == before["data_version"], asset


@pytest.mark.model
def test_default_model_finds_the_function_that_builds_the_index(registered: str, data_dir: Path):
    result = materialize_repo(registered, embedder="sentence-transformers")
    assert result.success
    assert metadata_of(result, "chunks")["dim"] == 384
    with CodeIndex.open(registered) as index:
        hits = index.search("build the faiss index", k=3)
        assert any(
            "def build_faiss_index" in (h.preview or "") or h.uri == "pkg/vectors.py" for h in hits
        )
        assert "all-MiniLM-L6-v2" in index.manifest["embedder"]["model_id"]
        # The backend that ran the model is recorded, so queries are embedded the same way.
        assert index.manifest["embedder"]["backend"] == DEFAULT_BACKEND
        assert recorded_embedder(index.manifest).backend == DEFAULT_BACKEND
        assert metadata_of(result, "chunks")["embedder"]["backend"] == DEFAULT_BACKEND


def test_repository_without_python_still_publishes(tmp_path: Path, data_dir: Path):
    from codeintel_assets_tests.support import FIXTURE_FILES, write_fixture_repo

    files = {k: v for k, v in FIXTURE_FILES.items() if not k.endswith(".py")}
    repo = write_fixture_repo(tmp_path / "nopy", files)
    registry.add_repo(registry.RepoConfig(name="nopy", path=str(repo)))
    result = materialize_repo("nopy")
    assert result.success
    scip = metadata_of(result, "scip_index")
    assert scip["ok"] == "False" and "no Python files" in scip["reason"]
    assert metadata_of(result, "scip_occurrences")["rows"] == 0
    assert metadata_of(result, "chunks")["chunks"] > 0
    with CodeIndex.open("nopy") as index:
        assert index.search("greet counter", k=1)[0].uri == "web/app.js"


def test_clean_build_check_catches_a_stale_vector_and_a_wrong_chunk(
    registered: str, data_dir: Path
):
    import numpy as np
    import pyarrow as pa

    from codeintel_assets.core.context import BuildContext
    from codeintel_assets.core.embedding import EmbedderSpec
    from codeintel_assets.core.schemas import write_parquet
    from codeintel_assets.core.validation import check_chunks_match_clean_build

    assert materialize_repo(registered).success
    ctx = BuildContext.for_repo(registered, embedder=EmbedderSpec(kind="hashing"))
    assert check_chunks_match_clean_build(ctx).passed
    path = ctx.layout.build.chunks
    table = pq.read_table(path)
    vectors = np.stack(table.column("embedding").to_numpy(zero_copy_only=False))
    vectors[0] = -vectors[0]
    hashes = table.column("content_hash").to_pylist()
    hashes[1] = "0" * 16
    broken = table.set_column(
        table.schema.get_field_index("embedding"),
        "embedding",
        pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1).astype("float32")), 64),
    ).set_column(table.schema.get_field_index("content_hash"), "content_hash", pa.array(hashes))
    write_parquet(broken, path)
    outcome = check_chunks_match_clean_build(ctx)
    assert not outcome.passed
    assert "differ from a clean chunking" in outcome.detail
    assert "sampled vectors differ" in outcome.detail
