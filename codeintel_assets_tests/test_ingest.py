"""A repository may bring its own SCIP index, modules.jsonl and symbol_graph.json."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from codeintel_assets.core.context import BuildContext
from codeintel_assets.core.embedding import EmbedderSpec
from codeintel_assets.core.errors import BadInputError
from codeintel_assets.core.registry import RepoConfig
from codeintel_assets.core.scip import decode_scip_file
from codeintel_assets.core.scip.indexer import run_scip_python
from codeintel_assets.core.scip.json_reader import scip_json_from_index
from codeintel_assets.core.stages import run_named

HASHING = EmbedderSpec(kind="hashing")


def context(repo: Path, root: Path, **given: str) -> BuildContext:
    return BuildContext(RepoConfig(name="given", path=str(repo), **given), HASHING, root=root)


@pytest.fixture(scope="module")
def own_index(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A fixture repository and the index scip-python made of it."""
    from codeintel_assets_tests.support import write_fixture_repo

    repo = write_fixture_repo(tmp_path_factory.mktemp("ingest") / "repo")
    output = repo.parent / "index.scip"
    run = run_scip_python(repo, output, project_name="given", project_version="1")
    assert run.ok, run.reason
    return repo, output


def occurrences_from(ctx: BuildContext) -> list[dict]:
    run_named(ctx, "repo_manifest")
    result = run_named(ctx, "scip_index")
    assert result.metadata["source"].startswith("ingested")
    run_named(ctx, "scip_occurrences")
    return pq.read_table(ctx.layout.build.scip_occurrences).to_pylist()


def test_given_protobuf_and_json_index_give_the_same_occurrences(own_index, tmp_path: Path):
    repo, index_path = own_index
    json_path = tmp_path / "index.scip.json"
    json_path.write_text(json.dumps(scip_json_from_index(decode_scip_file(index_path))))
    from_proto = occurrences_from(context(repo, tmp_path / "a", scip_index=str(index_path)))
    from_json = occurrences_from(context(repo, tmp_path / "b", scip_index=str(json_path)))
    assert from_proto == from_json
    assert any(
        r["symbol"].endswith("build_faiss_index().") and r["role"] == "def" for r in from_proto
    )


def test_a_truncated_index_is_a_clear_error(own_index, tmp_path: Path):
    repo, index_path = own_index
    broken = tmp_path / "broken.scip"
    broken.write_bytes(index_path.read_bytes()[:-7])
    ctx = context(repo, tmp_path / "data", scip_index=str(broken))
    run_named(ctx, "repo_manifest")
    with pytest.raises(BadInputError, match="broken.scip"):
        run_named(ctx, "scip_index")


def test_given_modules_and_symbol_graph_are_used(own_index, tmp_path: Path):
    repo, _ = own_index
    modules = tmp_path / "modules.jsonl"
    modules.write_text(
        json.dumps(
            {
                "module_id": "pkg",
                "uri_prefix": "pkg/",
                "language": "python",
                "size_loc": 40,
                "centrality": 0.5,
            }
        )
        + "\n"
        + json.dumps({"module_id": ".", "uri_prefix": "", "language": "text"})
        + "\n"
    )
    graph = tmp_path / "symbol_graph.json"
    graph.write_text(
        json.dumps(
            {
                "edges": [
                    {
                        "src_symbol": "a",
                        "dst_symbol": "b",
                        "edge": "call",
                        "weight": 3,
                        "src_uri": "pkg/vectors.py",
                        "dst_uri": None,
                    },
                ]
            }
        )
    )
    ctx = context(repo, tmp_path / "data", modules_jsonl=str(modules), symbol_graph_json=str(graph))
    run_named(ctx, "repo_manifest")
    assert run_named(ctx, "modules").metadata["source"].startswith("ingested")
    table = pq.read_table(ctx.layout.build.modules_parquet).to_pylist()
    assert [(r["module_id"], r["size_loc"]) for r in table] == [("pkg", 40), (".", None)]
    assert run_named(ctx, "symbol_edges").metadata["source"].startswith("ingested")
    edges = pq.read_table(ctx.layout.build.symbol_edges).to_pylist()
    assert edges == [
        {
            "src_symbol": "a",
            "dst_symbol": "b",
            "edge": "call",
            "weight": 3,
            "src_uri": "pkg/vectors.py",
            "dst_uri": None,
        }
    ]


def test_wrongly_typed_modules_jsonl_names_file_line_and_field(own_index, tmp_path: Path):
    repo, _ = own_index
    modules = tmp_path / "modules.jsonl"
    modules.write_text(
        json.dumps({"module_id": "pkg", "uri_prefix": "pkg/", "language": "python"})
        + "\n"
        + json.dumps(
            {"module_id": "x", "uri_prefix": "x/", "language": "python", "size_loc": "many"}
        )
        + "\n"
    )
    ctx = context(repo, tmp_path / "data", modules_jsonl=str(modules))
    run_named(ctx, "repo_manifest")
    with pytest.raises(BadInputError) as caught:
        run_named(ctx, "modules")
    message = str(caught.value)
    assert "modules.jsonl" in message and "2" in message and "size_loc" in message
