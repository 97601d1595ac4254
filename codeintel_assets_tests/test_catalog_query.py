"""The read-only query API on a real built catalog: order, joins, filters, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from codeintel_assets.core import metrics, schemas
from codeintel_assets.core.catalog import (
    CATALOG_BLOCK_SIZE,
    CHUNK_COLUMNS,
    HYDRATION_COLUMNS,
    HYDRATION_ROW_FIELDS,
    CatalogReader,
    ChunkFilter,
    Hydration,
    build_catalog,
    query,
)
from codeintel_assets.core.errors import BadInputError
from codeintel_assets.core.layout import ArtifactLayout
from codeintel_assets_tests.catalog_support import (
    CHUNK_ROWS,
    DIM,
    REPO,
    build_fixture_layout,
    chunk_id,
    chunk_table,
    idmap_table,
)

IDS = {(uri, start): chunk_id(uri, start) for uri, start, *_ in CHUNK_ROWS}
CORE_1 = IDS[("pkg/core.py", 1)]
CORE_11 = IDS[("pkg/core.py", 11)]
DEEP = IDS[("pkg/sub/deep.py", 1)]
GUIDE = IDS[("docs/guide.md", 1)]
WEIRD = IDS[("weird/it's 100%_done.py", 1)]
A_B = IDS[("lib/a_b.py", 1)]
AXB = IDS[("lib/axb.py", 1)]
TOP = IDS[("top.js", 1)]
INIT = IDS[("pkg/__init__.py", 1)]
ALL_IDS = list(IDS.values())


@pytest.fixture(params=[False, True], ids=["views", "materialized"])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    layout = build_fixture_layout(tmp_path / REPO)
    build_catalog(layout, materialize=request.param)
    return layout.catalog


@pytest.fixture
def reader(catalog: Path):
    with CatalogReader(catalog) as opened:
        yield opened


def test_hydrate_keeps_input_order_and_drops_absent_ids(reader: CatalogReader) -> None:
    order = [TOP, 12345, CORE_11, GUIDE, -7, CORE_1, TOP]
    rows = reader.hydrate(order)
    assert [r["id"] for r in rows] == [TOP, CORE_11, GUIDE, CORE_1]
    assert all(r["chunk_id"] == r["id"] for r in rows)
    assert rows[1]["uri"] == "pkg/core.py" and rows[1]["start_line"] == 11
    assert rows[2]["content_hash"] == ""
    assert list(rows[0]) == ["chunk_id", *HYDRATION_COLUMNS]  # narrow: no content, no symbols
    assert reader.hydrate([]) == []
    assert reader.hydrate([999, 1000]) == []


def test_hydration_reports_unknown_duplicate_and_filtered_ids(reader: CatalogReader) -> None:
    order = [GUIDE, 12345, CORE_1, GUIDE, -7, TOP, 12345, CORE_11]
    found = reader.hydration(order, filters=ChunkFilter(exclude_globs=["*.js"]))
    assert [r["id"] for r in found.rows] == [GUIDE, CORE_1, CORE_11]
    assert found.unknown == [12345, -7]  # input order, each once
    assert found.filtered_out == [TOP]
    assert reader.hydration([]) == Hydration([], [], [])


def test_hydrate_asks_for_more_columns(reader: CatalogReader) -> None:
    (full,) = reader.hydrate([CORE_11], columns=CHUNK_COLUMNS)
    assert list(full) == ["chunk_id", *CHUNK_COLUMNS]
    assert full["symbols"] == ["py pkg/core.py/Store#", "py pkg/core.py/Store#save()."]
    assert full["content"] and reader.get_chunk_by_id(CORE_11) == full
    (slim,) = reader.hydrate([CORE_11], columns=["uri", "symbols"])
    assert slim == {
        "chunk_id": CORE_11,
        "id": CORE_11,
        "uri": "pkg/core.py",
        "symbols": full["symbols"],
    }
    with pytest.raises(BadInputError, match="embedding"):
        reader.hydrate([CORE_11], columns=["embedding"])
    with pytest.raises(BadInputError, match="not columns"):
        reader.hydrate([CORE_11], columns=["uri; DROP TABLE chunks_mat"])


def test_long_id_lists_take_the_list_path_with_the_same_answer(
    reader: CatalogReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = [TOP, 12345, *reversed(ALL_IDS), CORE_1]
    chunk_filter = ChunkFilter(include_globs=["pkg/"], languages=["python"])
    short = reader.hydration(order, filters=chunk_filter, join_modules=True, join_faiss=True)
    monkeypatch.setattr(query, "IN_LIST_MAX", 2)
    long = reader.hydration(order, filters=chunk_filter, join_modules=True, join_faiss=True)
    assert long == short
    kept = [i for i in reversed(ALL_IDS) if i in (INIT, CORE_1, CORE_11, DEEP)]
    assert [r["id"] for r in short.rows] == kept
    # The pages (one list parameter) answer the same rows, unknown and rejected ids.
    paged = reader.hydration(order, filters=chunk_filter)
    assert [{k: r[k] for k in paged.rows[0]} for r in short.rows] == paged.rows
    assert (paged.unknown, paged.filtered_out) == (short.unknown, short.filtered_out)
    assert paged.unknown == [12345]


def test_a_statement_parsed_for_one_reader_serves_another(tmp_path: Path) -> None:
    # Parsed statements are shared by SQL text; the reader that parsed one may be closed.
    first, second = (build_fixture_layout(tmp_path / name / REPO) for name in ("a", "b"))
    build_catalog(first, materialize=True)
    build_catalog(second, materialize=True)
    order = [GUIDE, 4242, CORE_1]
    with CatalogReader(first.catalog) as reader:
        expected = reader.hydration(order)
    with duckdb.connect(str(second.catalog)) as con:  # the second catalog differs
        con.execute("DELETE FROM chunks_mat WHERE id = ?", [CORE_1])
        # ... in its pages too: CORE_1's line taken out of its page.
        con.execute(
            "UPDATE chunk_pages SET rows = encode(ltrim(regexp_replace(chr(10) || decode(rows), "
            "chr(10) || ? || chr(9) || '[^' || chr(10) || ']*', ''), chr(10)))",
            [str(CORE_1)],
        )
    with CatalogReader(second.catalog) as reader:
        found = reader.hydration(order)
    assert expected.unknown == [4242] and [r["id"] for r in expected.rows] == [GUIDE, CORE_1]
    assert found.unknown == [4242, CORE_1]
    assert found.rows == expected.rows[:1]


def test_materialized_hydration_is_an_index_scan(tmp_path: Path) -> None:
    layout = build_fixture_layout(tmp_path / REPO)
    build_catalog(layout, materialize=True)
    with duckdb.connect(str(layout.catalog), read_only=True) as con:
        storage = dict(
            con.execute(
                "SELECT column_name, string_agg(DISTINCT compression, ',') "
                "FROM pragma_storage_info('chunks_mat') GROUP BY column_name"
            ).fetchall()
        )
        # The hydrated strings are stored for a cheap fetch of one row (and content for a
        # cheap insert).
        hydrated = ("uri", "preview", "content_hash", "name", "symbols", "content")
        assert {storage[c] for c in hydrated} <= {
            "Uncompressed",
            "Uncompressed,Constant",
            "Constant,Uncompressed",
        }
        ids = ALL_IDS[:3]
        plan = con.execute(
            "EXPLAIN ANALYZE SELECT id, uri FROM chunks_mat AS c WHERE c.id IN (?, ?, ?)", ids
        ).fetchall()[0][1]
        assert "Index Scan" in plan


def test_joins_add_columns_without_duplicating_rows(reader: CatalogReader) -> None:
    rows = reader.hydrate(ALL_IDS, join_modules=True, join_symbols=True, join_faiss=True)
    assert [r["id"] for r in rows] == ALL_IDS
    by_id = {r["id"]: r for r in rows}
    assert by_id[DEEP]["module_id"] == "pkg.sub"  # pkg/ also prefixes it: longest wins
    assert by_id[TOP]["module_id"] is None and by_id[TOP]["faiss_row"] is None
    assert by_id[CORE_1]["defined_symbols"] == ["py pkg/core.py/load()."]
    assert by_id[CORE_11]["defined_symbols"] == [
        "py pkg/core.py/Store#",
        "py pkg/core.py/Store#save().",
    ]
    assert by_id[GUIDE]["defined_symbols"] == []
    assert by_id[CORE_1]["faiss_row"] == 1 and by_id[CORE_1]["index_name"] == "chunks"


def test_the_module_map_of_a_reader_is_what_join_modules_adds(reader: CatalogReader) -> None:
    modules = reader.uri_modules()
    for row in reader.hydrate(ALL_IDS, join_modules=True):
        expected = (row["module_id"], row["language"]) if row["module_id"] else None
        assert modules.get(row["uri"]) == expected, row["uri"]
    assert modules[next(r["uri"] for r in reader.hydrate([DEEP]))][0] == "pkg.sub"


def test_join_faiss_with_two_indexes_keeps_one_row(tmp_path: Path) -> None:
    layout = build_fixture_layout(tmp_path / REPO)
    first = idmap_table(ALL_IDS)
    second = first.set_column(2, "index_name", pa.array(["alt"] * len(ALL_IDS)))
    schemas.write_parquet(
        pa.concat_tables([second, first]), layout.faiss_idmap, schemas.FAISS_IDMAP
    )
    build_catalog(layout)
    with CatalogReader(layout.catalog) as reader:
        rows = reader.hydrate(ALL_IDS, join_faiss=True, join_modules=True)
    assert [r["id"] for r in rows] == ALL_IDS
    assert {r["index_name"] for r in rows} == {"alt"}


def test_a_catalog_built_before_the_module_macro_still_joins_modules(tmp_path: Path) -> None:
    layout = build_fixture_layout(tmp_path / REPO)
    build_catalog(layout)
    with duckdb.connect(str(layout.catalog)) as con:  # as a catalog of an earlier build
        con.execute("DROP MACRO TABLE uri_modules")
    with CatalogReader(layout.catalog) as reader:
        by_uri = reader.uri_modules()  # its first query: the macro is missing
        rows = reader.hydrate(ALL_IDS, join_modules=True)
    assert {r["id"]: r["module_id"] for r in rows}[DEEP] == "pkg.sub"
    assert by_uri[next(r["uri"] for r in rows if r["id"] == DEEP)][0] == "pkg.sub"
    with duckdb.connect(str(layout.catalog), read_only=True) as con:  # the file is unchanged
        macros = con.execute(
            "SELECT count(*) FROM duckdb_functions() WHERE function_name = 'uri_modules'"
        ).fetchone()
    assert macros == (0,)


def test_filters_globs_languages_and_labels(reader: CatalogReader) -> None:
    cases = [
        (ChunkFilter(), ALL_IDS, "none"),
        (ChunkFilter(include_globs=["pkg/**"]), [INIT, CORE_1, CORE_11, DEEP], "glob"),
        (
            ChunkFilter(include_globs=["pkg/"], exclude_globs=["sub/"]),
            [INIT, CORE_1, CORE_11],
            "glob",
        ),
        (ChunkFilter(include_globs=["*.py"], exclude_globs=["pkg/**/deep.py"]), None, "glob"),
        (ChunkFilter(languages=["Markdown", "javascript"]), [GUIDE, TOP], "language"),
        (ChunkFilter(include_globs=["{docs,lib}/*"], languages=["python"]), [A_B, AXB], "combined"),
        (ChunkFilter(include_globs=["lib/a[_]b.py"]), [A_B], "glob"),
    ]
    for chunk_filter, expected, label in cases:
        assert chunk_filter.filter_type == label
        got = [r["id"] for r in reader.hydrate(ALL_IDS, filters=chunk_filter)]
        if expected is None:
            expected = [i for i in ALL_IDS if i not in (DEEP, GUIDE, TOP)]
        assert got == [i for i in ALL_IDS if i in expected], chunk_filter
        assert reader.filter_ids(ALL_IDS, chunk_filter) == got
    assert reader.filter_ids([TOP, 1, CORE_1], ChunkFilter(include_globs=["*.js"])) == [TOP]


@pytest.mark.parametrize(
    ("glob", "expected"),
    [
        ("'; DROP TABLE chunks; --", []),
        ("lib/a_b.py", [A_B]),  # '_' is not a LIKE wildcard here
        ("lib/a%b.py", []),  # '%' neither
        ("weird/it's 100%_done.py", [WEIRD]),  # quote, percent, underscore, space
        ("*100%_done.py", [WEIRD]),
        ("lib/a\\_b.py", [A_B]),  # backslash escapes the next character
        ("weird/it\\'s*", [WEIRD]),
    ],
)
def test_glob_injection_and_wildcards_match_literally(
    reader: CatalogReader, glob: str, expected: list[int]
) -> None:
    rows = reader.hydrate(ALL_IDS, filters=ChunkFilter(include_globs=[glob]))
    assert [r["id"] for r in rows] == expected
    # Nothing was executed: every chunk is still there.
    assert len(reader.hydrate(ALL_IDS)) == len(ALL_IDS)


def test_bad_glob_is_bad_input(reader: CatalogReader) -> None:
    with pytest.raises(BadInputError, match="empty glob"):
        reader.hydrate(ALL_IDS, filters=ChunkFilter(include_globs=["  "]))
    for bad in ["lib\\", "weird\\/it*"]:
        with pytest.raises(BadInputError, match="not a valid pattern"):
            reader.filter_ids(ALL_IDS, ChunkFilter(exclude_globs=[bad]))


def test_symbol_queries_bind_values(reader: CatalogReader) -> None:
    rows = reader.query_by_symbols(
        ["py pkg/core.py/Store#", "'; DROP TABLE chunks; --", "py weird/it's 100%_done.py/x."],
        topk_per_symbol=5,
    )
    assert [(r["symbol"], r["id"]) for r in rows] == [
        ("py pkg/core.py/Store#", CORE_1),
        ("py pkg/core.py/Store#", CORE_11),
        ("py weird/it's 100%_done.py/x.", WEIRD),
    ]
    top1 = reader.query_by_symbols(["py pkg/core.py/Store#"], topk_per_symbol=1)
    assert [r["id"] for r in top1] == [CORE_1]
    assert reader.query_by_symbols(["py pkg/core.py/%"], topk_per_symbol=5) == []
    assert reader.query_by_symbols([]) == []
    with pytest.raises(BadInputError):
        reader.query_by_symbols(["x"], topk_per_symbol=0)


def test_module_and_single_chunk_queries(reader: CatalogReader) -> None:
    assert [r["id"] for r in reader.query_by_module("pkg", limit=10)] == [INIT, CORE_1, CORE_11]
    assert [r["id"] for r in reader.query_by_module("pkg", limit=1)] == [INIT]
    assert reader.query_by_module("pkg' OR '1'='1", limit=10) == []
    assert reader.get_chunk_by_id(DEEP)["uri"] == "pkg/sub/deep.py"
    assert reader.get_chunk_by_id(42) is None
    assert reader.get_symbols_for_chunk(CORE_11) == [
        "py pkg/core.py/Store#",
        "py pkg/core.py/Store#save().",
    ]
    assert reader.get_symbols_for_chunk(42) == []


def _drop_hydration_row(catalog: Path) -> None:
    """Give ``catalog`` a chunks_mat of the former layout: no hydration_row."""
    with duckdb.connect(str(catalog)) as con:
        con.execute("CREATE TABLE former AS SELECT * EXCLUDE (hydration_row) FROM chunks_mat")
        con.execute("DROP TABLE chunks_mat")
        con.execute("ALTER TABLE former RENAME TO chunks_mat")
        con.execute("CREATE INDEX idx_chunks_mat_id ON chunks_mat (id)")


def _hydrations(reader: CatalogReader) -> list[Hydration]:
    order = [TOP, 12345, *reversed(ALL_IDS), CORE_1, -7]
    python_pkg = ChunkFilter(include_globs=["pkg/**", "lib/*"], languages=["python"])
    return [
        reader.hydration(order),
        reader.hydration(order, join_modules=True, join_faiss=True),
        reader.hydration(order, filters=python_pkg, join_modules=True),
        reader.hydration(order, columns=CHUNK_COLUMNS, filters=python_pkg, join_faiss=True),
        reader.hydration(order, columns=["content", "uri", "symbols"]),
    ]


def test_reader_uses_materialized_table_when_present(tmp_path: Path) -> None:
    layout = build_fixture_layout(tmp_path / REPO)
    build_catalog(layout)
    with CatalogReader(layout.catalog) as reader:
        assert reader.chunk_relation == "v_chunks"
        plain = _hydrations(reader)
    build_catalog(layout, materialize=True)
    with CatalogReader(layout.catalog) as reader:
        assert reader.chunk_relation == "chunks_mat"
        assert _hydrations(reader) == plain
    # A chunks_mat of the former layout (no hydration_row) is read column by column.
    _drop_hydration_row(layout.catalog)
    with CatalogReader(layout.catalog) as reader:
        assert reader.chunk_relation == "chunks_mat"
        assert _hydrations(reader) == plain


def test_hydration_row_is_the_rows_own_fields(tmp_path: Path) -> None:
    layout = build_fixture_layout(tmp_path / REPO)
    build_catalog(layout, materialize=True)
    fields = ", ".join(HYDRATION_ROW_FIELDS)
    with duckdb.connect(str(layout.catalog), read_only=True) as con:
        rows = con.execute(f"SELECT hydration_row, {fields} FROM chunks_mat").fetchall()
        (block_size,) = con.execute(
            "SELECT block_size FROM pragma_database_size() WHERE database_name = 'codeintel'"
        ).fetchone()
    assert len(rows) == len(ALL_IDS)
    for packed, *columns in rows:
        assert json.loads(packed) == columns
    assert block_size == CATALOG_BLOCK_SIZE


def test_chunks_mat_of_a_former_layout_is_rebuilt(tmp_path: Path) -> None:
    layout = build_fixture_layout(tmp_path / REPO)
    status = build_catalog(layout, materialize=True)
    (chunks_source,) = [s.checksum for s in status.sources if s.name == "chunks"]
    (guard,) = [m.checksum for m in status.materialized if m.name == "chunks_mat"]
    assert guard != chunks_source  # the layout is part of the guard
    _drop_hydration_row(layout.catalog)
    with duckdb.connect(str(layout.catalog)) as con:
        con.execute("UPDATE chunks_mat_meta SET checksum = ?", [chunks_source])
    build_catalog(layout, materialize=True)
    with duckdb.connect(str(layout.catalog), read_only=True) as con:
        columns = {row[0] for row in con.execute("DESCRIBE chunks_mat").fetchall()}
    assert "hydration_row" in columns


def test_missing_joined_source_raises_naming_view_and_path(tmp_path: Path) -> None:
    layout: ArtifactLayout = build_fixture_layout(tmp_path / REPO)
    layout.scip_occurrences.unlink()
    build_catalog(layout)
    with CatalogReader(layout.catalog) as reader:
        assert len(reader.hydrate(ALL_IDS, join_modules=True)) == len(ALL_IDS)
        with pytest.raises(duckdb.Error) as raised:
            reader.hydrate(ALL_IDS, join_symbols=True)
    assert "scip_occurrences" in str(raised.value)
    assert str(layout.scip_occurrences.resolve()) in str(raised.value)


def test_reader_is_read_only_and_missing_catalog_is_bad_input(
    catalog: Path, tmp_path: Path
) -> None:
    with pytest.raises(BadInputError, match="not found"):
        CatalogReader(tmp_path / "nope.duckdb")
    with duckdb.connect(str(catalog), read_only=True) as con:
        with pytest.raises(duckdb.Error):
            con.execute("DROP VIEW v_chunks")


def test_filter_metrics_are_counted(reader: CatalogReader) -> None:
    if not metrics.metrics_available():
        pytest.skip("prometheus_client is not installed")
    reader.filter_ids(ALL_IDS, ChunkFilter(languages=["python"], include_globs=["pkg/"]))
    text = metrics.metrics_text()
    assert 'codeintel_catalog_filter_queries_total{filter_type="combined"}' in text
    assert "codeintel_catalog_view_bootstrap_seconds_count" in text


def test_pages_hold_every_chunk_once_and_answer_as_sql_does(tmp_path: Path) -> None:
    # Enough chunks for many pages; previews with tabs, newlines, quotes and non-ASCII.
    rows = [
        (
            f"pkg{i % 7}/m{i % 41}.{'md' if i % 5 == 0 else 'py'}",
            i,
            i + 3,
            "markdown" if i % 5 == 0 else "python",
            [],
        )
        for i in range(1, 3001)
    ]
    table = chunk_table(rows)
    previews = [
        f'line\t{i}\n"quoted" \\ é\r\n{p}' for i, p in enumerate(table["preview"].to_pylist())
    ]
    table = table.set_column(table.schema.get_field_index("preview"), "preview", pa.array(previews))
    plain, paged = (ArtifactLayout(tmp_path / name / REPO) for name in ("plain", "paged"))
    for layout in (plain, paged):
        build_fixture_layout(layout.root)
        schemas.write_parquet(table, layout.chunks, schemas.chunk_schema(DIM))
        build_catalog(layout, materialize=layout is paged)
    with duckdb.connect(str(paged.catalog), read_only=True) as con:
        (shift,) = con.execute("SELECT DISTINCT page_shift FROM chunk_pages").fetchone()
        pages = con.execute("SELECT page, rows FROM chunk_pages").fetchall()
        expected = dict(con.execute("SELECT id, hydration_row FROM chunks_mat").fetchall())
    assert len(pages) > 64  # ~16-32 chunks a page
    lines = {}
    for page, text in pages:
        for line in text.decode().split("\n"):
            key, _, row = line.partition("\t")
            assert int(key) >> shift == page and int(key) not in lines
            lines[int(key)] = row
    assert lines == expected
    ids = [int(i) for i in table["id"].to_pylist()]
    order = [*ids[2900:], 123, *ids[:300], ids[5], -1]
    python_pkg = ChunkFilter(
        include_globs=["pkg{1,2}/**"], exclude_globs=["*m3.py"], languages=["Python"]
    )
    with CatalogReader(plain.catalog) as sql, CatalogReader(paged.catalog) as fast:
        for kwargs in ({}, {"filters": python_pkg}, {"columns": ["uri", "preview"]}):
            assert fast.hydration(order, **kwargs) == sql.hydration(order, **kwargs)
        assert fast.filter_ids(order, python_pkg) == sql.filter_ids(order, python_pkg)
        found = fast.hydration(order, filters=python_pkg)
    assert found.unknown == [123, -1] and found.filtered_out and found.rows
    assert [r["preview"] for r in found.rows[:1]] == [previews[ids.index(found.rows[0]["id"])]]
