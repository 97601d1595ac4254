"""Per-file reuse (``core/reuse.py``) through the real per-file stages, without Dagster: what
a rebuild keeps, and the cases where it must keep nothing (damaged outputs, reuse turned off,
a file that changed between the manifest and the parse)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from codeintel_assets.core import validation
from codeintel_assets.core.context import BuildContext
from codeintel_assets.core.embedding import EmbedderSpec
from codeintel_assets.core.layout import ArtifactLayout
from codeintel_assets.core.registry import RepoConfig
from codeintel_assets.core.reuse import STALE, merged_by_file, merged_in_uri_order, read_ledger
from codeintel_assets.core.schemas import CST_NODES, NODE_TO_CHUNK, write_parquet
from codeintel_assets.core.stages import retrieval, run_named
from codeintel_assets.core.validation import check_chunks_match_clean_build
from codeintel_assets_tests.support import write_fixture_repo

# The per-file stages and what they need (no SCIP: chunks then carry no symbols).
PER_FILE = ("ast_nodes", "cst_nodes", "chunks", "modules", "units")
TABLES = {
    "ast_nodes": lambda lay: lay.ast_nodes,
    "cst_nodes": lambda lay: lay.cst_nodes,
    "chunks": lambda lay: lay.chunks,
    "node_to_chunk": lambda lay: lay.node_to_chunk,
    "module_files": lambda lay: lay.module_files,
    "modules": lambda lay: lay.modules_parquet,
    "units": lambda lay: lay.units,
    "chunk_units": lambda lay: lay.chunk_units,
}


def context(repo: Path, root: Path) -> BuildContext:
    return BuildContext(
        RepoConfig(name="reuse", path=str(repo)), EmbedderSpec(kind="hashing"), root=root
    )


def build(ctx: BuildContext) -> dict[str, dict]:
    """Run the manifest and the per-file stages; return the metadata of those that ran."""
    ran = {}
    for name in ("repo_manifest", *PER_FILE):
        result = run_named(ctx, name)
        if result.ran:
            ran[name] = result.metadata
    return ran


def assert_equals_clean_build(ctx: BuildContext, tmp: Path) -> None:
    clean = dataclasses.replace(ctx, root=tmp / "clean")
    build(clean)
    for name, path in TABLES.items():
        assert pq.read_table(path(ctx.layout.build)).equals(
            pq.read_table(path(clean.layout.build))
        ), name
        assert path(ctx.layout.build).read_bytes() == path(clean.layout.build).read_bytes(), name


def edit(repo: Path, uri: str = "pkg/vectors.py") -> None:
    path = repo / uri
    path.write_text(path.read_text() + "\n\ndef added():\n    return 1\n")


@pytest.fixture
def built(tmp_path: Path) -> BuildContext:
    repo = write_fixture_repo(tmp_path / "repo", git=False)
    ctx = context(repo, tmp_path / "data")
    first = build(ctx)
    assert all(first[name]["reuse"] == "first build" for name in PER_FILE)
    return ctx


def test_an_edit_reuses_every_other_file(built: BuildContext, tmp_path: Path):
    edit(built.repo.root)
    ran = build(built)
    for name in PER_FILE:
        assert ran[name]["reuse"] == "reused", name
        assert ran[name]["files_processed"] == 1, name
    assert_equals_clean_build(built, tmp_path)


def test_a_damaged_output_is_never_reused(built: BuildContext, tmp_path: Path):
    # node_to_chunk no longer matches the chunks stage's stamp: its rows cannot be trusted.
    built.layout.build.node_to_chunk.write_bytes(b"not parquet")
    edit(built.repo.root)
    ran = build(built)
    assert ran["chunks"]["reuse"] == "previous outputs not intact"
    assert ran["chunks"]["files_reused"] == 0
    assert ran["ast_nodes"]["reuse"] == "reused"
    assert_equals_clean_build(built, tmp_path)


def test_reuse_turned_off_processes_every_file_and_writes_the_same(
    built: BuildContext, tmp_path: Path
):
    edit(built.repo.root)
    off = dataclasses.replace(built, reuse_files=False)
    ran = build(off)
    for name in PER_FILE:
        assert (ran[name]["reuse"], ran[name]["files_reused"]) == ("disabled", 0), name
    assert_equals_clean_build(off, tmp_path)


def test_a_file_changed_after_the_manifest_is_parsed_again_next_time(
    built: BuildContext, tmp_path: Path
):
    repo = built.repo.root
    edit(repo, "pkg/parse.py")
    in_manifest = (repo / "pkg/parse.py").read_text()
    run_named(built, "repo_manifest")
    edit(repo, "pkg/parse.py")  # after the manifest was made, before the parse
    assert run_named(built, "ast_nodes").metadata["files_processed"] == 1
    ledger = read_ledger(ArtifactLayout(built.layout.repo_dir).ast_ledger)
    assert ledger is not None and ledger.signatures()["pkg/parse.py"] == STALE

    # parse.py is back as the manifest has it, yet its rows were parsed from the later edit:
    # they are made again when the next change (another file) runs the stage.
    (repo / "pkg/parse.py").write_text(in_manifest)
    edit(repo, "pkg/__init__.py")
    ran = build(built)
    assert ran["ast_nodes"]["files_processed"] == 2
    assert_equals_clean_build(built, tmp_path)


def test_the_clean_build_check_reparses_kept_syntax_rows(built: BuildContext):
    edit(built.repo.root)
    build(built)
    outcome = check_chunks_match_clean_build(built)
    assert outcome.passed, outcome.detail
    assert outcome.metadata["files_parsed"] == 5
    # A kept row that a fresh parse would not give (a stale text hash) is caught, and so is
    # a node→chunk row gone missing.
    layout = built.layout.build
    nodes = pq.read_table(layout.cst_nodes)
    hashes = nodes["text_hash"].to_pylist()
    hashes[0] = "0" * 16
    write_parquet(nodes.set_column(10, "text_hash", pa.array(hashes)), layout.cst_nodes, CST_NODES)
    mapping = pq.read_table(layout.node_to_chunk)
    write_parquet(mapping.slice(1), layout.node_to_chunk, NODE_TO_CHUNK)
    detail = check_chunks_match_clean_build(built).detail
    assert "the CST rows of 5 sampled files differ" in detail
    assert "AST rows" not in detail
    assert "node→chunk rows of 5 sampled files differ" in detail


def _rows(*files: tuple[str, int]) -> pa.Table:
    """A table written file by file: ``n`` rows of each (uri, n), numbered per file."""
    uris = [uri for uri, n in files for _ in range(n)]
    numbers = [i for _, n in files for i in range(n)]
    return pa.table({"uri": uris, "n": numbers, "tags": [[u] for u in uris]})


def test_merging_by_file_equals_the_sorting_merge_and_drops_files_that_left():
    previous = _rows(("a.py", 3), ("b.py", 2), ("c.py", 4), ("d.py", 1), ("e.py", 2))
    # b.py changed (fewer rows), d.py left, a0.py and f.py are new.
    new = _rows(("a0.py", 1), ("b.py", 1), ("f.py", 2))
    reused = {"a.py", "c.py", "e.py"}
    # Read back from Parquet, as a stage reads its previous table (list children renamed).
    sink = pa.BufferOutputStream()
    pq.write_table(previous, sink)
    previous = pq.read_table(pa.BufferReader(sink.getvalue()))
    merged = merged_by_file(previous, new, reused)
    kept = previous.filter(pc.is_in(previous["uri"], value_set=pa.array(sorted(reused))))
    assert merged.equals(merged_in_uri_order(kept, new))
    assert merged.schema == new.schema and merged["uri"].num_chunks == 1
    assert merged["uri"].to_pylist() == (
        ["a.py"] * 3 + ["a0.py", "b.py"] + ["c.py"] * 4 + ["e.py"] * 2 + ["f.py"] * 2
    )


def test_a_table_not_written_file_by_file_is_merged_by_sorting():
    previous = _rows(("b.py", 1), ("a.py", 2), ("b.py", 1))
    new = _rows(("c.py", 1))
    merged = merged_by_file(previous, new, {"a.py", "b.py"})
    assert merged["uri"].to_pylist() == ["a.py", "a.py", "b.py", "b.py", "c.py"]
    assert merged["n"].to_pylist() == [0, 1, 0, 0, 0]

def test_an_ordinary_check_rechunks_the_reused_build_s_new_files_and_a_slice(
    built: BuildContext, monkeypatch: pytest.MonkeyPatch
):
    # Slices of about 2 files: the check covers the edited file and one slice, not all.
    monkeypatch.setattr(validation, "ROTATION_FILES", 2)
    edit(built.repo.root)
    ran = build(built)
    assert ran["chunks"]["chunked_uris"] == ["pkg/vectors.py"]
    outcome = check_chunks_match_clean_build(built)
    assert outcome.passed, outcome.detail
    meta = outcome.metadata
    assert meta["mode"] == "sampled" and meta["files_chunked_this_build"] == 1
    assert 1 <= meta["files_checked"] < meta["files"]
    manifest = pq.read_table(built.layout.build.repo_manifest)
    checked = validation.files_to_check(built, manifest)
    assert "pkg/vectors.py" in checked.uris
    full = validation.check_all_chunks_match_clean_build(built)
    assert full.passed and full.metadata["files_checked"] == full.metadata["files"]

    # The merge lost a chunk of the file chunked this build: the ordinary check sees it.
    path = built.layout.build.chunks
    chunks = pq.read_table(path)
    lost = chunks["uri"].to_pylist().index("pkg/vectors.py")
    write_parquet(pa.concat_tables([chunks.slice(0, lost), chunks.slice(lost + 1)]), path)
    outcome = check_chunks_match_clean_build(built)
    assert not outcome.passed and outcome.metadata["mode"] == "sampled"
    assert "differ from a clean chunking" in outcome.detail


def test_chunks_reuse_kept_for_an_edited_file_fails_the_check(
    built: BuildContext, monkeypatch: pytest.MonkeyPatch
):
    # A reuse bug: the chunks stage takes the edited file for unchanged and keeps its old
    # chunks (its signature is the previous ledger's).
    previous = read_ledger(ArtifactLayout(built.layout.repo_dir).chunks_ledger)
    assert previous is not None
    stale_uri = "pkg/vectors.py"
    real = retrieval.combined_signatures

    def forgetful(*parts):
        signatures = real(*parts)
        signatures[stale_uri] = previous.signatures()[stale_uri]
        return signatures

    monkeypatch.setattr(retrieval, "combined_signatures", forgetful)
    edit(built.repo.root, stale_uri)
    ran = build(built)
    assert ran["chunks"]["files_processed"] == 0 and ran["chunks"]["reuse"] == "reused"
    full = validation.check_all_chunks_match_clean_build(built)
    assert not full.passed and "differ from a clean chunking" in full.detail
    # An ordinary check finds it when the file's slice comes round (here: one slice).
    assert not check_chunks_match_clean_build(built).passed
    monkeypatch.setattr(validation, "ROTATION_FILES", 2)
    manifest = pq.read_table(built.layout.build.repo_manifest)
    in_slice = stale_uri in validation.files_to_check(built, manifest).uris
    assert check_chunks_match_clean_build(built).passed is not in_slice
