"""Units: the definitions and module blocks search ranks, and each chunk's innermost unit."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from codeintel_assets.core.chunk_table import build_chunk_table, chunk_repository
from codeintel_assets.core.embedding import EmbeddingCache, HashingEmbedder
from codeintel_assets.core.excerpts import count_tokens, excerpt, share_budget
from codeintel_assets.core.manifest import build_manifest
from codeintel_assets.core.syntax import SYNTAX_LANGUAGES, cst_nodes_table
from codeintel_assets.core.units import UnitSet, build_units, file_lines, unit_texts

SHAPES = textwrap.dedent(
    '''\
    """Shapes and their areas."""

    import math

    SCALE = 2


    def helper(x):
        return x * SCALE


    @dataclass
    class Shape:
        """A shape."""

        sides: int = 0

        def area(self):
            """Return the area."""
            return 0.0

        def perimeter(self):
            total = 0
            for side in range(self.sides):
                total += side
            return total


    if __name__ == "__main__":
        print(helper(3))
    '''
)
APP_JS = textwrap.dedent(
    """\
    // counters
    function greet(name) {
      return `hello ${name}`;
    }

    class Counter {
      increment() { this.count += 1; return this.count; }
    }

    module.exports = { greet, Counter };
    """
)


def _build(root: Path, files: dict[str, str], chunk_tokens: int = 32):
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    embedder = HashingEmbedder(dim=16)
    manifest = build_manifest(root).files
    chunks, stats = chunk_repository("r", root, manifest, embedder, chunk_tokens)
    cache = EmbeddingCache(root.parent / f"{root.name}-cache", embedder.model_id, 16)
    table = build_chunk_table(chunks, embedder, cache, stats)
    parsed = [
        (row["uri"], row["lang"], (root / row["uri"]).read_bytes())
        for row in manifest.to_pylist()
        if row["lang"] in SYNTAX_LANGUAGES
    ]
    nodes, _ = cst_nodes_table("r", parsed)
    return table, nodes


def _by_name(units: pa.Table) -> dict[str, dict]:
    return {row["qualified_name"] or row["name"]: row for row in units.to_pylist()}


def test_every_chunk_has_exactly_one_innermost_unit(tmp_path):
    files = {"shapes.py": SHAPES, "web/app.js": APP_JS, "README.md": "# Title\n\nSome text.\n"}
    chunks, nodes = _build(tmp_path / "repo", files)
    units, chunk_units = build_units("r", nodes, chunks)
    assert sorted(chunk_units["chunk_id"].to_pylist()) == sorted(chunks["id"].to_pylist())
    unit_ids = set(units["unit_id"].to_pylist())
    assert len(unit_ids) == units.num_rows and set(chunk_units["unit_id"].to_pylist()) <= unit_ids
    spans = {r["id"]: r for r in chunks.to_pylist()}
    rows = {r["unit_id"]: r for r in units.to_pylist()}
    for chunk_id, unit_id in zip(*chunk_units.to_pydict().values(), strict=True):
        chunk, unit = spans[chunk_id], rows[unit_id]
        assert chunk["uri"] == unit["uri"]
        # The unit holds most of the chunk's lines, and no child of it holds more than half.
        overlap = min(chunk["end_line"], unit["end_line"]) - max(
            chunk["start_line"], unit["start_line"]
        )
        assert overlap >= 0
        for child in (r for r in rows.values() if r["parent_unit_id"] == unit_id):
            inside = min(chunk["end_line"], child["end_line"]) - max(
                chunk["start_line"], child["start_line"]
            )
            assert 2 * (inside + 1) <= chunk["end_line"] - chunk["start_line"] + 1


def test_definitions_nest_with_decorators_and_module_blocks(tmp_path):
    chunks, nodes = _build(tmp_path / "repo", {"shapes.py": SHAPES, "web/app.js": APP_JS})
    units, _ = build_units("r", nodes, chunks)
    named = _by_name(units)
    shape, area = named["Shape"], named["Shape.area"]
    assert shape["kind"] == "class" and shape["start_line"] == 12  # the decorator's line
    assert area["kind"] == "method" and area["parent_unit_id"] == shape["unit_id"]
    assert named["helper"]["parent_unit_id"] is None and named["helper"]["kind"] == "function"
    assert named["Counter.increment"]["kind"] == "method" and named["greet"]["lang"] == "javascript"
    blocks = [r for r in units.to_pylist() if r["kind"] == "module" and r["uri"] == "shapes.py"]
    # Docstring + imports + constant; then the __main__ block: two runs outside definitions.
    assert [(b["start_line"], b["end_line"]) for b in blocks] == [(1, 5), (29, 30)]
    texts = dict(zip(units["unit_id"].to_pylist(), unit_texts(units, chunks), strict=True))
    assert texts[named["helper"]["unit_id"]] == "def helper(x):\n    return x * SCALE"
    assert texts[shape["unit_id"]].startswith("@dataclass\nclass Shape:")


def test_files_without_a_syntax_tree_have_a_unit_per_chunk(tmp_path):
    readme = "# Title\n\n" + "\n\n".join(f"## Part {i}\n\n" + "words " * 40 for i in range(4))
    chunks, nodes = _build(tmp_path / "repo", {"README.md": readme, "notes.txt": "x" * 5000})
    units, chunk_units = build_units("r", nodes, chunks)
    assert units.num_rows == chunks.num_rows > 1
    assert len(set(chunk_units["unit_id"].to_pylist())) == chunks.num_rows
    # One long line cut in character windows: each unit's text is its own chunk's, not
    # the whole line again (BM25 would read the line once per window).
    contents = dict(zip(chunks["id"].to_pylist(), chunks["content"].to_pylist(), strict=True))
    texts = unit_texts(units, chunks)
    assert texts == [contents[c] for c in units["first_chunk_id"].to_pylist()]
    assert sum(len(t) for t in texts) <= len(readme) + 5000 + chunks.num_rows


def test_unit_ids_are_stable_across_rebuilds_and_other_files_edits(tmp_path):
    first = build_units("r", *reversed(_build(tmp_path / "a", {"shapes.py": SHAPES})))[0]
    again = build_units("r", *reversed(_build(tmp_path / "b", {"shapes.py": SHAPES})))[0]
    assert first["unit_id"].to_pylist() == again["unit_id"].to_pylist()
    edited = build_units(
        "r",
        *reversed(_build(tmp_path / "c", {"shapes.py": SHAPES, "other.py": "def g():\n  pass\n"})),
    )[0]
    shapes_ids = [r["unit_id"] for r in edited.to_pylist() if r["uri"] == "shapes.py"]
    assert shapes_ids == first["unit_id"].to_pylist()


def test_unit_set_best_chunk_falls_back_to_the_chunk_holding_the_first_line(tmp_path):
    chunks, nodes = _build(tmp_path / "repo", {"shapes.py": SHAPES}, chunk_tokens=200)
    units = UnitSet(*build_units("r", nodes, chunks))
    for row in units.table.to_pylist():
        chunk = units.best_chunk(row["unit_id"])
        holder = next(c for c in chunks.to_pylist() if c["id"] == chunk)
        if not units.chunks_of.get(row["unit_id"]):
            assert holder["start_line"] <= row["start_line"] <= holder["end_line"]


def test_excerpt_keeps_signature_and_match_and_says_it_was_cut():
    lines = ["def long_function(a, b):", '    """Doc."""'] + [
        f"    value_{i} = a + b * {i}" for i in range(40)
    ]
    whole = excerpt(lines, 10, (20, 22), 10_000)
    assert not whole.truncated and whole.text == "\n".join(lines) and whole.shown == [(10, 51)]
    cut = excerpt(lines, 10, (30, 32), 40)
    assert cut.truncated and cut.tokens <= 40
    assert cut.text.startswith("def long_function(a, b):\n...\n    value_18")
    assert cut.shown[0] == (10, 10) and cut.shown[1][0] == 30
    assert count_tokens("a.b(c)") == 6
    assert share_budget(4, 100, 0) == 25 and share_budget(4, 90, 1) == 30


def _lines_line_by_line(chunks: pa.Table) -> dict[str, list[str]]:
    """Each file's lines as the first implementation of ``file_lines`` made them: a dict
    entry per line, a window's text appended to its line."""
    pieces: dict[str, dict[int, str]] = {}
    columns = ["uri", "start_line", "end_line", "content"]
    for row in sorted(
        chunks.select(columns).to_pylist(), key=lambda r: (r["uri"], r["start_line"])
    ):
        lines = row["content"].split("\n")
        for offset in range(row["end_line"] - row["start_line"] + 1):
            numbered = pieces.setdefault(row["uri"], {})
            number = row["start_line"] + offset
            text = lines[offset] if offset < len(lines) else ""
            numbered[number] = numbered.get(number, "") + text
    return {
        uri: [numbered.get(n, "") for n in range(1, max(numbered) + 1)]
        for uri, numbered in pieces.items()
    }


def test_file_lines_put_files_back_together_as_line_by_line_did(tmp_path):
    # Gaps, windows of one long line, a chunk with fewer or more content lines than its
    # span, an empty span, two files given interleaved, non-ASCII text.
    rows = [
        ("b.py", "python", 3, 4, "x = 1\ny = 2"),
        ("a.py", "python", 1, 1, "def f(): retu"),
        ("a.py", "python", 1, 2, "rn 1  # é\n"),
        ("b.py", "python", 1, 1, "import os\nextra line beyond the span"),
        ("a.py", "python", 5, 7, "class C:\n    pass"),
        ("b.py", "python", 6, 5, "an empty span"),
        ("c.md", "markdown", 2, 2, "## Größe"),
    ]
    chunks = pa.table(
        {
            name: list(values)
            for name, values in zip(
                ["uri", "lang", "start_line", "end_line", "content"],
                zip(*rows, strict=True),
                strict=True,
            )
        }
    )
    assert file_lines(chunks) == _lines_line_by_line(chunks)
    assert file_lines(chunks)["a.py"][:2] == ["def f(): return 1  # é", ""]
    # And on a real repository's chunks, with a long line cut into windows.
    long_line = "TABLE = [" + ", ".join(str(n) for n in range(3000)) + "]\n"
    real, _ = _build(
        tmp_path / "repo", {"shapes.py": SHAPES, "app.js": APP_JS, "big.py": long_line}
    )
    assert real.filter(pc.equal(real["uri"], "big.py")).num_rows > 1
    assert file_lines(real) == _lines_line_by_line(real)
