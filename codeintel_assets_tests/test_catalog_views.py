"""Contracts of every catalog view on a real built fixture (Parquet in the exact schemas)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codeintel_assets.core import schemas
from codeintel_assets.core.catalog import (
    CatalogReader,
    build_catalog,
    catalog_status,
    ensure_views,
    load_view_definitions,
    materialize_if_changed,
    refresh_idmap_join,
    register_parquet,
)
from codeintel_assets.core.catalog.catalog import load_macro_definitions
from codeintel_assets.core.errors import BadInputError
from codeintel_assets.core.grammars import DEFINITION_KINDS
from codeintel_assets.core.layout import ArtifactLayout
from codeintel_assets.core.modules import longest_prefix_owner
from codeintel_assets.core.units import SYNTAX_UNIT_KINDS
from codeintel_assets_tests.catalog_support import (
    CHUNK_ROWS,
    DIM,
    EVAL_POOL_ROWS,
    REPO,
    build_fixture_layout,
    chunk_id,
    chunk_table,
    idmap_table,
)

SPEC_VIEWS = {
    "v_chunks",
    "v_chunk_min",
    "faiss_idmap",
    "modules",
    "symbol_edges",
    "scip_occurrences",
    "v_faiss_join",
    "v_chunk_symbols",
    "v_chunk_modules",
    "v_scip_defs",
    "v_symbol_neighbors",
    "v_module_coverage",
    "last_eval_pool",
    "v_rrf_contrib_by_channel",
}


@pytest.fixture
def layout(tmp_path: Path) -> ArtifactLayout:
    return build_fixture_layout(tmp_path / "data" / REPO)


def _columns(con: duckdb.DuckDBPyConnection, view: str) -> list[str]:
    return [row[0] for row in con.execute(f"DESCRIBE {view}").fetchall()]


def test_build_catalog_creates_every_spec_view_with_row_counts(layout: ArtifactLayout) -> None:
    status = build_catalog(layout)
    names = {v.name for v in status.views}
    assert SPEC_VIEWS <= names
    spec_views = [v for v in status.views if v.name in SPEC_VIEWS]
    assert all(v.present and v.error is None for v in spec_views), status.to_markdown()
    assert "source file missing" in status.view("ast_nodes").error
    assert status.view("v_chunks").row_count == len(CHUNK_ROWS)
    assert status.view("faiss_idmap").row_count == len(CHUNK_ROWS) - 1
    assert status.view("v_rrf_contrib_by_channel").row_count == 3
    assert status.missing_sources == [
        "ast_nodes",
        "chunk_units",  # units/: not written by this fixture
        "cst_nodes",
        "node_to_chunk",
        "repo_manifest",
        "scip_symbols",
        "units",
    ]
    for view in ("definitions", "v_units", "v_chunk_units"):
        assert status.view(view).present and status.view(view).row_count == 0
    as_dict = status.to_dict()
    assert {v["name"] for v in as_dict["views"]} == names
    chunks_source = next(s for s in as_dict["sources"] if s["name"] == "chunks")
    assert chunks_source["present"] and len(chunks_source["checksum"]) == 16
    markdown = status.to_markdown()
    assert "| `v_chunk_modules` | view | 9 |" in markdown
    assert catalog_status(layout.catalog).views == status.views


def test_views_use_absolute_paths_and_work_from_another_cwd(
    layout: ArtifactLayout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(layout.root)
    build_catalog(ArtifactLayout(Path(".")))  # a relative root: DDL must still be absolute
    monkeypatch.chdir(tmp_path)
    status = catalog_status(layout.catalog)
    ddl = status.view("chunks").ddl
    assert f"'{layout.root.resolve()}/vectors/chunks/*.parquet'" in ddl
    with duckdb.connect(str(layout.catalog), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM v_chunks").fetchone()[0] == len(CHUNK_ROWS)
        recorded = con.execute("SELECT name, ddl FROM catalog_manifest").fetchall()
    definitions = {d.name: d.ddl for d in load_view_definitions()}
    assert {name: ddl for name, ddl in recorded if name in definitions} == definitions


def test_view_columns_follow_the_contract(layout: ArtifactLayout) -> None:
    build_catalog(layout)
    with duckdb.connect(str(layout.catalog), read_only=True) as con:
        assert _columns(con, "v_chunk_min") == ["id", "uri", "lang", "preview"]
        assert set(schemas.chunk_schema(DIM).names) == set(_columns(con, "v_chunks"))
        assert _columns(con, "v_chunk_modules") == ["chunk_id", "uri", "module_id", "language"]
        assert _columns(con, "v_chunk_symbols") == ["chunk_id", "symbol"]
        assert _columns(con, "v_faiss_join")[:3] == ["index_name", "faiss_id", "faiss_row"]
        assert {"chunk_id", "uri", "start_line", "end_line"} <= set(_columns(con, "v_faiss_join"))
        assert _columns(con, "v_rrf_contrib_by_channel") == [
            "query_id",
            "source",
            "hits",
            "rrf_contrib",
        ]
        assert {"src_module_id", "dst_module_id", "crosses_module"} <= set(
            _columns(con, "v_symbol_neighbors")
        )
        assert {"module_id", "chunks_total", "chunks_indexed", "coverage"} <= set(
            _columns(con, "v_module_coverage")
        )
        for view, schema in [
            ("faiss_idmap", schemas.FAISS_IDMAP),
            ("modules", schemas.MODULES),
            ("symbol_edges", schemas.SYMBOL_EDGES),
            ("scip_occurrences", schemas.SCIP_OCCURRENCES),
            ("last_eval_pool", schemas.EVAL_POOL),
        ]:
            assert _columns(con, view) == schema.names
        # Coalesced columns: the markdown chunk has NULL symbols and content_hash in Parquet.
        row = con.execute(
            "SELECT symbols, content_hash FROM v_chunks WHERE uri = 'docs/guide.md'"
        ).fetchone()
        assert row == ([], "")


def test_chunk_modules_longest_prefix_one_row_per_chunk(layout: ArtifactLayout) -> None:
    build_catalog(layout)
    with duckdb.connect(str(layout.catalog), read_only=True) as con:
        rows = con.execute(
            "SELECT chunk_id, uri, module_id, language FROM v_chunk_modules"
        ).fetchall()
    assert len(rows) == len(CHUNK_ROWS) == len({r[0] for r in rows})
    by_uri = {uri: (module, language) for _, uri, module, language in rows}
    assert by_uri["pkg/sub/deep.py"] == ("pkg.sub", "python")  # not 'pkg', the shorter prefix
    assert by_uri["pkg/core.py"] == ("pkg", "python")
    assert by_uri["top.js"] == (None, "javascript")  # no module: kept, language from the chunk


# Uris and prefixes over a tiny alphabet, so prefixes of one another are common.
_URI = st.text(alphabet="ab/.", max_size=6)


@settings(max_examples=150, deadline=None)
@given(prefixes=st.lists(_URI, unique=True, max_size=8), uris=st.lists(_URI, max_size=8))
def test_uri_modules_is_the_python_rule(prefixes: list[str], uris: list[str]) -> None:
    # The catalog's macro and modules.longest_prefix_owner (modules.py, evaluation.py) are
    # the two spellings of one rule (SQL and Python): they must agree on every input.
    (macro,) = load_macro_definitions()
    by_prefix = {prefix: f"m{i}" for i, prefix in enumerate(prefixes)}
    with duckdb.connect() as con:
        con.execute(
            "CREATE TABLE modules (module_id VARCHAR, uri_prefix VARCHAR, language VARCHAR)"
        )
        for prefix, module_id in by_prefix.items():
            con.execute("INSERT INTO modules VALUES (?, ?, 'python')", [module_id, prefix])
        con.execute(macro.ddl)
        found = con.execute("SELECT uri, module_id FROM uri_modules(?)", [uris]).fetchall()
    expected = {uri: longest_prefix_owner(by_prefix, uri) for uri in uris}
    # One row per distinct uri (a repeated uri too), none for a uri no prefix matches.
    assert sorted(found) == sorted((uri, owner) for uri, owner in expected.items() if owner)


def test_definitions_view_keeps_the_definition_kinds_of_grammars() -> None:
    # The SQL spelling of grammars.DEFINITION_KINDS (what the definition channel indexes).
    definitions = {d.name: d for d in load_view_definitions()}["definitions"]
    kinds = sorted(DEFINITION_KINDS | SYNTAX_UNIT_KINDS | {"window", "markdown"})
    with duckdb.connect() as con:
        con.execute(
            "CREATE TABLE units AS SELECT i AS unit_id, 'a.py' AS uri, 1 AS start_line, "
            "1 AS end_line, kind, 'name' AS name, 'name' AS qualified_name, 'python' AS lang "
            "FROM unnest(?::VARCHAR[]) WITH ORDINALITY AS k(kind, i)",
            [kinds],
        )
        con.execute(definitions.ddl)
        kept = {row[0] for row in con.execute("SELECT kind FROM definitions").fetchall()}
    assert kept == DEFINITION_KINDS


def test_faiss_join_round_trip(layout: ArtifactLayout) -> None:
    build_catalog(layout)
    with duckdb.connect(str(layout.catalog), read_only=True) as con:
        joined = con.execute(
            "SELECT faiss_row, faiss_id, chunk_id, uri FROM v_faiss_join ORDER BY faiss_row"
        ).fetchall()
    expected = [(uri, chunk_id(uri, start)) for uri, start, *_ in CHUNK_ROWS[:-1]]
    assert [(r[3], r[2]) for r in joined] == expected
    assert all(r[1] == r[2] for r in joined)
    with CatalogReader(layout.catalog) as reader:
        sample = [r[1] for r in joined[::2]]
        hydrated = reader.hydrate(sample, join_faiss=True)
    assert [(h["id"], h["uri"], h["faiss_row"]) for h in hydrated] == [
        (r[1], r[3], r[0]) for r in joined[::2]
    ]


def test_rrf_contrib_by_channel_arithmetic(layout: ArtifactLayout) -> None:
    build_catalog(layout)
    with duckdb.connect(str(layout.catalog), read_only=True) as con:
        rows = con.execute(
            "SELECT query_id, source, hits, rrf_contrib FROM v_rrf_contrib_by_channel "
            "ORDER BY query_id, source"
        ).fetchall()
    expected = {}
    for query_id, source, rank, _, _ in EVAL_POOL_ROWS:
        hits, total = expected.get((query_id, source), (0, 0.0))
        expected[(query_id, source)] = (hits + 1, total + 1 / (60 + rank))
    assert [(q, s) for q, s, *_ in rows] == sorted(expected)
    for query_id, source, hits, contrib in rows:
        assert hits == expected[(query_id, source)][0]
        assert contrib == pytest.approx(expected[(query_id, source)][1], rel=1e-12)
    assert rows[1][3] == pytest.approx(1 / 61 + 1 / 62 + 1 / 63)


def test_missing_eval_pool_is_an_empty_typed_view(tmp_path: Path) -> None:
    layout = build_fixture_layout(tmp_path / REPO, with_eval_pool=False)
    status = build_catalog(layout)
    assert status.view("last_eval_pool").error is None
    assert status.view("last_eval_pool").row_count == 0
    assert status.view("v_rrf_contrib_by_channel").row_count == 0
    with duckdb.connect(str(layout.catalog), read_only=True) as con:
        types = con.execute("DESCRIBE last_eval_pool").fetchall()
    assert [(t[0], t[1]) for t in types] == [
        ("query_id", "VARCHAR"),
        ("source", "VARCHAR"),
        ("rank", "INTEGER"),
        ("chunk_id", "BIGINT"),
        ("score", "DOUBLE"),
        ("unit_id", "BIGINT"),
    ]


def test_module_coverage_and_symbol_neighbors(layout: ArtifactLayout) -> None:
    build_catalog(layout)
    with duckdb.connect(str(layout.catalog), read_only=True) as con:
        coverage = dict(
            (m, (total, indexed))
            for m, total, indexed in con.execute(
                "SELECT module_id, chunks_total, chunks_indexed FROM v_module_coverage"
            ).fetchall()
        )
        neighbors = con.execute(
            "SELECT src_module_id, dst_module_id, crosses_module FROM v_symbol_neighbors "
            "ORDER BY src_symbol, dst_symbol"
        ).fetchall()
        defs = con.execute("SELECT symbol, line FROM v_scip_defs ORDER BY symbol").fetchall()
    assert coverage["pkg"] == (3, 3)
    assert coverage["pkg.sub"] == (1, 1)
    assert coverage["lib"] == (2, 2)
    assert neighbors == [("pkg", None, True), ("pkg", "pkg", False), ("pkg.sub", "pkg", True)]
    assert ("py pkg/sub/deep.py/walk().", 1) in defs and len(defs) == 4


def test_missing_source_names_view_and_path_other_views_work(layout: ArtifactLayout) -> None:
    layout.symbol_edges.unlink()
    status = build_catalog(layout)  # the build still succeeds and reports the gap
    assert "symbol_edges" in status.missing_sources
    assert "symbol_edges" in status.view("symbol_edges").error
    assert str(layout.symbol_edges.resolve()) in status.view("v_symbol_neighbors").error
    assert status.view("v_chunks").row_count == len(CHUNK_ROWS)
    with duckdb.connect(str(layout.catalog), read_only=True) as con:
        for query in ("SELECT count(*) FROM symbol_edges", "SELECT * FROM v_symbol_neighbors"):
            with pytest.raises(duckdb.Error) as raised:
                con.execute(query).fetchall()
            message = str(raised.value)
            assert "symbol_edges" in message and str(layout.symbol_edges.resolve()) in message
        assert con.execute("SELECT count(*) FROM v_chunk_modules").fetchone()[0] == len(CHUNK_ROWS)


def test_checksum_guard_materializes_only_on_change(layout: ArtifactLayout) -> None:
    first = build_catalog(layout, materialize=True)
    mats = {m.name: m for m in first.materialized}
    assert set(mats) == {"chunks_mat", "chunk_pages", "faiss_idmap_mat"}
    assert mats["chunks_mat"].row_count == len(CHUNK_ROWS)
    # A handful of chunks: two pages (ids below zero, and the others).
    assert mats["chunk_pages"].row_count <= 2
    again = {m.name: m for m in build_catalog(layout, materialize=True).materialized}
    assert again == mats  # same checksum -> not rebuilt, updated_at unchanged
    schemas.write_parquet(
        chunk_table(CHUNK_ROWS[:4], salt="x"), layout.chunks, schemas.chunk_schema(DIM)
    )
    changed = {m.name: m for m in build_catalog(layout, materialize=True).materialized}
    assert changed["chunks_mat"].checksum != mats["chunks_mat"].checksum
    assert changed["chunks_mat"].row_count == 4
    assert changed["chunk_pages"].checksum != mats["chunk_pages"].checksum
    assert changed["faiss_idmap_mat"] == mats["faiss_idmap_mat"]
    # Without materialize, a stale table is dropped rather than served.
    schemas.write_parquet(chunk_table(CHUNK_ROWS[:2]), layout.chunks, schemas.chunk_schema(DIM))
    plain = build_catalog(layout)
    assert {m.name for m in plain.materialized} == {"faiss_idmap_mat"}
    with CatalogReader(layout.catalog) as reader:
        assert reader.chunk_relation == "v_chunks"


def test_refresh_idmap_join_only_when_idmap_changes(layout: ArtifactLayout) -> None:
    build_catalog(layout)
    assert refresh_idmap_join(layout.catalog, layout) is True  # first time: no table yet
    assert refresh_idmap_join(layout.catalog, layout) is False
    with duckdb.connect(str(layout.catalog), read_only=True) as con:
        indexes = {r[0] for r in con.execute("SELECT index_name FROM duckdb_indexes()").fetchall()}
        assert {"idx_faiss_idmap_mat_chunk_id", "idx_faiss_idmap_mat_faiss_id"} <= indexes
    ids = [chunk_id(uri, start) for uri, start, *_ in CHUNK_ROWS]
    schemas.write_parquet(idmap_table(ids, "v2"), layout.faiss_idmap, schemas.FAISS_IDMAP)
    assert refresh_idmap_join(layout.catalog, layout) is True
    with duckdb.connect(str(layout.catalog), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM faiss_idmap_mat").fetchone()[0] == len(ids)
        assert con.execute("SELECT row_count FROM faiss_idmap_mat_meta").fetchone()[0] == len(ids)
    assert refresh_idmap_join(layout.catalog, layout) is False
    layout.faiss_idmap.unlink()
    with pytest.raises(BadInputError, match="faiss_idmap.parquet"):
        refresh_idmap_join(layout.catalog, layout)


def test_materialize_and_register_reject_unknown_identifiers(layout: ArtifactLayout) -> None:
    with duckdb.connect() as con:
        ensure_views(con, layout)
        with pytest.raises(BadInputError, match="unknown"):
            materialize_if_changed(con, "chunks; DROP TABLE x", "SELECT 1", "c")
        with pytest.raises(BadInputError, match="unknown"):
            register_parquet(con, "evil view", str(layout.chunks))
        with pytest.raises(BadInputError, match="not absolute"):
            register_parquet(con, "chunks", "vectors/chunks/*.parquet")
        # ensure_views is idempotent.
        ensure_views(con, layout)
        assert con.execute("SELECT count(*) FROM v_chunks").fetchone()[0] == len(CHUNK_ROWS)


def test_path_with_quote_is_quoted_safely(tmp_path: Path) -> None:
    layout = build_fixture_layout(tmp_path / "it's; DROP TABLE x; --")
    status = build_catalog(layout)
    assert status.view("v_chunks").row_count == len(CHUNK_ROWS)


def test_reader_while_catalog_is_rebuilt(layout: ArtifactLayout) -> None:
    build_catalog(layout)
    ids = [chunk_id(uri, start) for uri, start, *_ in CHUNK_ROWS]
    rebuild = (
        "import sys\n"
        "from pathlib import Path\n"
        "from codeintel_assets.core.catalog import build_catalog\n"
        "from codeintel_assets.core.layout import ArtifactLayout\n"
        "for i in range(6):\n"
        "    build_catalog(ArtifactLayout(Path(sys.argv[1])), materialize=i % 2 == 0)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    writer = subprocess.Popen([sys.executable, "-c", rebuild, str(layout.root)], env=env)
    reads = 0
    try:
        while writer.poll() is None or reads == 0:
            with CatalogReader(layout.catalog) as reader:
                rows = reader.hydrate(ids, join_modules=True)
            assert [r["id"] for r in rows] == ids
            reads += 1
            time.sleep(0.01)
    finally:
        writer.wait(timeout=120)
    assert writer.returncode == 0
    assert reads >= 1
    leftovers = [p.name for p in layout.catalog.parent.iterdir() if p.name != layout.catalog.name]
    assert leftovers == []


def test_row_counts_are_taken_from_a_catalog_of_the_same_files(
    layout: ArtifactLayout, tmp_path: Path
) -> None:
    """``counts_from``: a view defined alike over sources of the same checksums takes the
    other catalog's count; one whose source differs is counted."""
    build_catalog(layout)
    with duckdb.connect(str(layout.catalog)) as con:
        # Marked, to tell a taken count from a counted one.
        con.execute("UPDATE catalog_manifest SET row_count = 4242 WHERE name = 'v_chunk_min'")
        con.execute("UPDATE catalog_manifest SET row_count = 4343 WHERE name = 'v_scip_defs'")
    copy = ArtifactLayout(tmp_path / "copy")
    for path in sorted(p for p in layout.root.rglob("*") if p.is_file()):
        target = copy.root / path.relative_to(layout.root)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    copy.catalog.unlink()
    occurrences = duckdb.sql(f"SELECT * FROM read_parquet('{copy.scip_occurrences}') LIMIT 3")
    schemas.write_parquet(
        occurrences.to_arrow_table(), copy.scip_occurrences, schemas.SCIP_OCCURRENCES
    )
    status = build_catalog(copy, counts_from=layout)
    assert status.view("v_chunk_min").row_count == 4242  # the same chunk files: taken
    counted = build_catalog(copy)
    assert status.view("v_scip_defs").row_count == counted.view("v_scip_defs").row_count != 4343
    assert {v.name: v.row_count for v in status.views if v.name != "v_chunk_min"} == {
        v.name: v.row_count for v in counted.views if v.name != "v_chunk_min"
    }
