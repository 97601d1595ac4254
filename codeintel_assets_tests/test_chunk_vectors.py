"""The chunks' vectors kept beside the table as a raw matrix (``core.vector_file``): the
same table as reading the column, and never used unless it belongs to the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from codeintel_assets.core import registry, vector_file
from codeintel_assets.core.build_warnings import BuildWarning
from codeintel_assets.core.checksums import table_checksum
from codeintel_assets.core.chunk_table import (
    ChunkBuildStats,
    build_chunk_table,
    chunk_repository,
    read_chunk_vectors,
    read_chunks,
    write_chunks,
)
from codeintel_assets.core.context import BuildContext
from codeintel_assets.core.embedding import (
    EmbeddingCache,
    HashingEmbedder,
    embedding_matrix,
    normalize_rows,
)
from codeintel_assets.core.manifest import build_manifest
from codeintel_assets.core.schemas import write_parquet
from codeintel_assets.core.stamps import Stage, StageOutput, run_stage


@pytest.fixture
def written(fixture_repo: Path, tmp_path: Path):
    """A chunks table of the fixture repository written with its matrix; (table, paths)."""
    embedder = HashingEmbedder(dim=16)
    manifest = build_manifest(fixture_repo).files
    chunks, stats = chunk_repository("r", fixture_repo, manifest, embedder)
    cache = EmbeddingCache(tmp_path / "cache", embedder.model_id, embedder.dim)
    table = build_chunk_table(chunks, embedder, cache, ChunkBuildStats())
    path, vectors = tmp_path / "chunks" / "chunks.parquet", tmp_path / "chunk_vectors.npy"
    write_chunks(table, path, vectors)
    return table, path, vectors


def test_the_matrix_gives_the_table_and_vectors_the_column_gives(written):
    table, path, vectors = written
    assert table.num_rows > 5
    assert vector_file.read_matrix(vectors, path) is not None  # it is the one used
    from_matrix = read_chunks(path, vectors=vectors)
    assert from_matrix.schema == pq.read_table(path).schema
    assert table_checksum(from_matrix) == table_checksum(pq.read_table(path))
    assert from_matrix.to_pydict() == pq.read_table(path).to_pydict()
    columns = ["id", "uri", "embedding"]
    assert table_checksum(read_chunks(path, columns, vectors)) == table_checksum(
        pq.read_table(path, columns=columns)
    )
    ids, matrix = read_chunk_vectors(path, vectors)
    assert ids.tolist() == table.column("id").to_pylist()
    assert np.array_equal(matrix, embedding_matrix(table))


def _changed(table):
    """Return ``table`` with every vector negated (same shape, other values)."""
    flipped = normalize_rows(-embedding_matrix(table))
    column = pa.FixedSizeListArray.from_arrays(pa.array(flipped.reshape(-1)), flipped.shape[1])
    return table.set_column(table.schema.get_field_index("embedding"), "embedding", column)


def test_a_table_written_since_is_read_from_its_column(written):
    table, path, vectors = written
    other = _changed(table)
    write_parquet(other, path)  # the table alone: the matrix now belongs to no file
    assert vector_file.read_matrix(vectors, path) is None
    assert np.array_equal(
        embedding_matrix(read_chunks(path, vectors=vectors)), embedding_matrix(other)
    )
    assert np.array_equal(read_chunk_vectors(path, vectors)[1], embedding_matrix(other))


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "remove", "no record", "bad record"])
def test_a_damaged_or_missing_matrix_is_not_used(written, damage):
    table, path, vectors = written
    record = vector_file.sidecar(vectors)
    if damage == "flip a byte":
        data = bytearray(vectors.read_bytes())
        data[-3] ^= 0x40
        vectors.write_bytes(bytes(data))
    elif damage == "truncate":
        vectors.write_bytes(vectors.read_bytes()[:-64])
    elif damage == "remove":
        vectors.unlink()
    elif damage == "no record":
        record.unlink()
    else:
        record.write_text("[1, 2", encoding="utf-8")
    assert vector_file.read_matrix(vectors, path) is None
    assert np.array_equal(
        embedding_matrix(read_chunks(path, vectors=vectors)), embedding_matrix(table)
    )
    assert np.array_equal(read_chunk_vectors(path, vectors)[1], embedding_matrix(table))


def test_a_matrix_bound_before_its_table_replaced_the_old_one_is_not_used(written, tmp_path):
    """The writer binds the matrix to the new file before renaming it over the old: a crash
    in between leaves the old table with a matrix that names another file."""
    table, path, vectors = written
    other = tmp_path / "other.parquet"
    write_parquet(_changed(table), other)
    vector_file.write_matrix(embedding_matrix(_changed(table)), vectors, "0" * 16)
    assert vector_file.read_matrix(vectors, path) is None
    assert np.array_equal(
        embedding_matrix(read_chunks(path, vectors=vectors)), embedding_matrix(table)
    )


def test_a_stage_that_read_a_damaged_matrix_counts_it_in_its_metadata(written, tmp_path):
    table, path, vectors = written
    repo = tmp_path / "repo"
    repo.mkdir()
    registry.add_repo(registry.RepoConfig(name="vec", path=str(repo)), tmp_path / "data")
    ctx = BuildContext.for_repo("vec", tmp_path / "data")
    stage = Stage("probe", (), "1", lambda ctx, stage: None, lambda layout: [], "retrieval")

    def build() -> StageOutput:
        ids, matrix = read_chunk_vectors(path, vectors)
        assert np.array_equal(matrix, embedding_matrix(table))  # the column, when damaged
        return StageOutput("v1", {"rows": len(ids)})

    clean = run_stage(ctx, stage, {"read": 1}, build)
    assert clean.metadata["warning_count"] == 0 and "warnings" not in clean.metadata
    data = bytearray(vectors.read_bytes())
    data[-3] ^= 0x40
    vectors.write_bytes(bytes(data))
    with pytest.warns(BuildWarning, match="vector matrix not used"):
        damaged = run_stage(ctx, stage, {"read": 2}, build)
    assert damaged.metadata["warning_count"] == 1
    assert damaged.metadata["warnings"] == [
        f"{vectors}: vector matrix not used, its bytes do not match its record (damaged); "
        "the table's column is read"
    ]
