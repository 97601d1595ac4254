"""Tables written batch by batch (``schemas.parquet_stream``) are the tables written whole:
same rows in the same order, same bytes for one row group, same checksum."""

from __future__ import annotations

import random
import sysconfig
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from codeintel_assets.core import syntax, validation
from codeintel_assets.core.checksums import table_checksum, xxh64_file
from codeintel_assets.core.chunk_table import chunk_symbols
from codeintel_assets.core.schemas import (
    AST_NODES,
    CST_NODES,
    NODE_TO_CHUNK,
    SCIP_OCCURRENCES,
    SCIP_SYMBOLS,
    file_batches,
    parquet_stream,
    write_parquet,
)
from codeintel_assets.core.scip import Index
from codeintel_assets.core.scip.tables import occurrence_batches, occurrences_table
from codeintel_assets.core.symbols import file_edges_table, symbol_edges_of, symbol_edges_table
from codeintel_assets.core.units import NODE_COLUMNS, build_units

REPO = "stream"


@pytest.fixture(scope="module")
def sources() -> list[tuple[str, bytes]]:
    """Real code: the ``json`` package of the running Python's standard library."""
    package = Path(sysconfig.get_paths()["stdlib"]) / "json"
    return [(f"json/{p.name}", p.read_bytes()) for p in sorted(package.glob("*.py"))]


def test_a_streamed_table_is_the_table_written_whole(tmp_path: Path, sources):
    table, _ = syntax.cst_nodes_table(REPO, [(u, "python", d) for u, d in sources])
    assert table.num_rows > 5_000
    write_parquet(table, tmp_path / "whole.parquet", CST_NODES)
    with parquet_stream(tmp_path / "streamed.parquet", CST_NODES) as stream:
        for batch in table.to_batches(max_chunksize=777):
            stream.write(batch)
    assert stream.rows == table.num_rows
    assert xxh64_file(tmp_path / "streamed.parquet") == xxh64_file(tmp_path / "whole.parquet")
    assert stream.checksum == table_checksum(table)

    # Row groups have the stream's size whatever the batches, so the file and its
    # checksum depend on the rows alone.
    files = []
    for size in (333, 4096):
        target = tmp_path / f"groups-{size}.parquet"
        with parquet_stream(target, CST_NODES, row_group_rows=5000) as stream:
            for batch in table.to_batches(max_chunksize=size):
                stream.write(batch)
        files.append((xxh64_file(target), stream.checksum))
        parquet = pq.ParquetFile(target)
        sizes = [parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)]
        assert sizes[:-1] == [5000] * (len(sizes) - 1) and sum(sizes) == table.num_rows
        assert parquet.read().equals(table)
    assert files[0] == files[1]


def test_a_failed_stream_leaves_the_old_file(tmp_path: Path):
    target = tmp_path / "t.parquet"
    write_parquet(AST_NODES.empty_table(), target, AST_NODES)
    before = xxh64_file(target)
    with pytest.raises(RuntimeError), parquet_stream(target, AST_NODES) as stream:
        stream.write(AST_NODES.empty_table())
        raise RuntimeError("killed mid-write")
    assert xxh64_file(target) == before
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]


def test_node_writers_stream_the_rows_of_the_node_tables(
    tmp_path: Path, sources, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(syntax, "BATCH_ROWS", 500)  # many batches from a few files
    ast_table, ast_diags = syntax.ast_nodes_table(REPO, sources)
    cst_files = [(u, "python", d) for u, d in sources]
    cst_table, cst_diags = syntax.cst_nodes_table(REPO, cst_files)
    with parquet_stream(tmp_path / "ast.parquet", AST_NODES, row_group_rows=2000) as ast_out:
        assert syntax.write_ast_nodes(REPO, sources, ast_out) == ast_diags
    with parquet_stream(tmp_path / "cst.parquet", CST_NODES, row_group_rows=2000) as cst_out:
        assert syntax.write_cst_nodes(REPO, cst_files, cst_out) == cst_diags
    assert pq.read_table(tmp_path / "ast.parquet").equals(ast_table)
    assert pq.read_table(tmp_path / "cst.parquet").equals(cst_table)

    chunks = pa.table(
        {
            "id": list(range(len(sources))),
            "uri": [uri for uri, _ in sources],
            "start_byte": [0] * len(sources),
            "end_byte": [len(data) // 2 for _, data in sources],
        }
    )
    nodes = pa.concat_tables([ast_table, cst_table])
    with parquet_stream(tmp_path / "n2c.parquet", NODE_TO_CHUNK) as mapping:
        syntax.write_node_to_chunk(
            [tmp_path / "ast.parquet", tmp_path / "cst.parquet"], chunks, mapping
        )
    expected = syntax.node_to_chunk_table(nodes, chunks)
    assert expected.num_rows > 1000
    assert pq.read_table(tmp_path / "n2c.parquet").equals(expected)


def test_file_batches_never_split_a_file(tmp_path: Path, sources):
    table, _ = syntax.cst_nodes_table(REPO, [(u, "python", d) for u, d in sources])
    write_parquet(table, tmp_path / "cst.parquet", CST_NODES)
    batches = list(file_batches(tmp_path / "cst.parquet", NODE_COLUMNS, rows=1000))
    assert len(batches) > 1
    assert pa.concat_tables(batches).equals(table.select(NODE_COLUMNS))
    files_of = [set(batch.column("uri").to_pylist()) for batch in batches]
    for first, second in zip(files_of, files_of[1:], strict=False):
        assert not first & second
    # Units made file by file are the units made from the whole table.
    chunks = pa.table(
        {
            "id": list(range(len(sources))),
            "uri": [uri for uri, _ in sources],
            "lang": ["python"] * len(sources),
            "start_line": [1] * len(sources),
            "end_line": [data.count(b"\n") + 1 for _, data in sources],
            "start_byte": [0] * len(sources),
            "end_byte": [len(data) for _, data in sources],
            "kind": ["module"] * len(sources),
            "name": [None] * len(sources),
            "content": [data.decode("utf-8") for _, data in sources],
        }
    )
    whole = build_units(REPO, table, chunks)
    by_file = build_units(REPO, iter(batches), chunks)
    assert whole[0].num_rows > 40
    assert whole[0].equals(by_file[0]) and whole[1].equals(by_file[1])


def test_occurrence_batches_are_the_occurrence_table_document_by_document():
    index = Index()
    for d in range(30):
        doc = index.documents.add(relative_path=f"pkg/m{d}.py")
        for i in range(40):
            occ = doc.occurrences.add(symbol=f"scip-python python pkg 0 `pkg.m{d}`/f{i}().")
            occ.range.extend([i, 0, 4])
            occ.symbol_roles = 1 if i % 5 == 0 else 0
            if i % 3 == 0:
                occ.enclosing_range.extend([i, 0, i + 1, 0])
    whole = occurrences_table(index)
    batches = list(occurrence_batches(index, rows=100))
    assert whole.num_rows == 1200
    # A batch ends after the document that filled it: 3 documents of 40 rows each.
    assert [b.num_rows for b in batches] == [120] * 10
    assert pa.Table.from_batches(batches).equals(whole)


def test_symbol_edges_file_by_file_are_the_edges_of_the_whole_table(tmp_path: Path):
    index = Index()
    for d in range(12):
        doc = index.documents.add(relative_path=f"pkg/m{d}.py")
        module = doc.occurrences.add(symbol=f"scip-python python pkg 0 `pkg.m{d}`/__init__:")
        module.range.extend([0, 0, 0])
        module.symbol_roles = 1
        for i in range(6):
            definition = doc.occurrences.add(symbol=f"scip-python python pkg 0 `pkg.m{d}`/f{i}().")
            definition.range.extend([10 * i, 4, 6])
            definition.symbol_roles = 1
            definition.enclosing_range.extend([10 * i, 0, 10 * i + 9, 0])
            # Each function calls one of the previous module's.
            callee = doc.occurrences.add(symbol=f"scip-python python pkg 0 `pkg.m{d - 1}`/f{i}().")
            callee.range.extend([10 * i + 1, 4, 6])
    occurrences = occurrences_table(index)
    write_parquet(occurrences, tmp_path / "occ.parquet", SCIP_OCCURRENCES)
    symbols = SCIP_SYMBOLS.empty_table()
    calls = {(f"pkg/m{d}.py", 10 * i + 1, 4) for d in range(12) for i in range(0, 6, 2)}
    whole = symbol_edges_table(occurrences, symbols, calls)
    files = file_batches(tmp_path / "occ.parquet", SCIP_OCCURRENCES.names, rows=20)
    counted = pa.concat_tables(file_edges_table(table, calls) for table in files)
    definitions = occurrences.filter(pc.equal(occurrences["role"], "def"))
    by_file = symbol_edges_of(counted, symbols, definitions.select(["symbol", "uri"]))
    assert whole.num_rows == 72 and set(whole["edge"].to_pylist()) == {"call", "reference"}
    assert by_file.equals(whole)


def test_chunk_symbols_from_arrow_columns_match_a_plain_scan():
    rng = random.Random(7)
    rows = [
        {
            "uri": f"m{rng.randrange(5)}.py",
            "start_line": rng.randrange(60),
            "symbol": rng.choice(["local 1", "local 2"] + [f"pkg/f{i}()." for i in range(9)]),
        }
        for _ in range(3000)
    ]
    rows.append({"uri": "only_locals.py", "start_line": 3, "symbol": "local 9"})
    spans = [(1, 10), (11, 11), (30, 61), (5, 4), (61, 90)]
    chunks = pa.Table.from_pylist(
        [
            {"uri": uri, "start_line": start, "end_line": end}
            for uri in ("m3.py", "absent.py", "m0.py", "only_locals.py", "m4.py")
            for start, end in spans
        ]
    )
    found = chunk_symbols(chunks, pa.Table.from_pylist(rows)).to_pylist()
    for chunk, symbols in zip(chunks.to_pylist(), found, strict=True):
        # The rule: symbols on the chunk's (1-based) lines, ordered by line then name.
        inside = sorted(
            (r["start_line"] + 1, r["symbol"])
            for r in rows
            if r["uri"] == chunk["uri"]
            and chunk["start_line"] <= r["start_line"] + 1 <= chunk["end_line"]
            and not r["symbol"].startswith("local ")
        )
        assert symbols == list(dict.fromkeys(symbol for _, symbol in inside)), chunk
    assert any(found) and not all(found)
    no_occurrences = pa.Table.from_pylist(rows[:0], schema=pa.Table.from_pylist(rows).schema)
    assert chunk_symbols(chunks, no_occurrences).to_pylist() == [[]] * chunks.num_rows


def test_the_clean_build_check_reads_stored_rows_in_file_order(tmp_path: Path, sources):
    """At the standard library's size the node tables have several row groups, which
    DuckDB reads on several threads: the check must still see the file's order (it
    failed every sampled file there when it did not)."""
    copies = [(f"c{i}/{uri}", data) for i in range(40) for uri, data in sources]
    table, _ = syntax.ast_nodes_table(REPO, copies)
    path = tmp_path / "ast_nodes.parquet"
    pq.write_table(table, path, row_group_size=2_000)
    assert pq.ParquetFile(path).metadata.num_row_groups >= 8
    uris = sorted(set(table.column("uri").to_pylist()))[::3]
    expected = table.filter(pc.is_in(table.column("uri"), pa.array(uris)))
    for _ in range(5):
        assert validation._stored_rows(path, "uri", uris).equals(expected)
    columns = ["uri", "start_line"]
    assert validation._stored_rows(path, "uri", uris, columns).equals(expected.select(columns))


def test_vectors_are_stored_plain_and_everything_else_compressed(tmp_path: Path):
    rows = 3000
    vectors = pa.FixedSizeListArray.from_arrays(
        pa.array([random.Random(3).random() for _ in range(rows * 8)], pa.float32()), 8
    )
    schema = pa.schema([("id", pa.int64()), ("uri", pa.string()), ("embedding", vectors.type)])
    table = pa.table([pa.array(range(rows)), pa.array(["a.py"] * rows), vectors], schema=schema)
    write_parquet(table, tmp_path / "whole.parquet", schema)
    with parquet_stream(tmp_path / "streamed.parquet", schema) as stream:
        for batch in table.to_batches(max_chunksize=500):
            stream.write(batch)
    for name in ("whole", "streamed"):
        parquet = pq.ParquetFile(tmp_path / f"{name}.parquet")
        group = parquet.metadata.row_group(0)
        codecs = {group.column(i).path_in_schema: group.column(i).compression for i in range(3)}
        assert codecs["embedding.list.element"] == "UNCOMPRESSED", codecs
        assert codecs["id"] == codecs["uri"] == "ZSTD", codecs
        assert parquet.read().equals(table)
    assert xxh64_file(tmp_path / "streamed.parquet") == xxh64_file(tmp_path / "whole.parquet")


def test_node_to_chunk_rows_merge_as_a_sort_of_both_would_order_them():
    rng = random.Random(11)
    pairs = sorted({(rng.randrange(-50, 50), rng.randrange(-1000, 1000)) for _ in range(4000)})
    taken = [pair for pair in pairs if rng.random() < 0.1]  # some chunk ids on both sides
    kept = [pair for pair in pairs if pair not in set(taken)]

    def table(rows):
        return pa.table(
            {"chunk_id": [c for c, _ in rows], "node_id": [n for _, n in rows]}, NODE_TO_CHUNK
        )

    merged = syntax.merge_node_to_chunk(table(kept), table(taken))
    assert merged.equals(table(pairs))
    assert syntax.merge_node_to_chunk(table(kept), table([])).equals(table(kept))
    assert syntax.merge_node_to_chunk(table([]), table(taken)).equals(table(taken))
