"""Shared by the SCIP tests: a corpus with cross-file references, the SCIP stages of a
build, and the comparison of an incremental result with a full pass."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from codeintel_assets.core import registry
from codeintel_assets.core.context import BuildContext
from codeintel_assets.core.stages import run_named

STAGES = ("repo_manifest", "scip_index", "scip_occurrences", "symbol_edges")

CORPUS = {
    "pkg/__init__.py": "from pkg.shapes import Shape as Shape\n",
    "pkg/shapes.py": textwrap.dedent(
        '''\
        """Shapes."""


        class Shape:
            """A square of some size."""

            def __init__(self, size: int) -> None:
                self.size = size

            def area(self) -> int:
                return self.size * self.size


        def make_shape(size: int) -> Shape:
            """Make a shape."""
            return Shape(size)
        '''
    ),
    "pkg/render.py": textwrap.dedent(
        '''\
        import os.path

        from pkg.shapes import Shape, make_shape


        def render(n: int) -> str:
            """Render the area of a shape of size n."""
            shape: Shape = make_shape(n)
            return os.path.join("out", str(shape.area()))
        '''
    ),
    "pkg/util.py": "def helper(x: int) -> int:\n    return x * 2\n",
    "pkg/report.py": textwrap.dedent(
        """\
        from pkg.render import render
        from pkg.util import helper


        def report() -> list[str]:
            return [render(helper(i)) for i in range(3)]
        """
    ),
    "app.py": textwrap.dedent(
        """\
        import pkg
        from pkg.extra import bonus
        from pkg.report import report

        print(pkg.Shape(2).area(), report(), bonus())
        """
    ),
    # Files no edit touches: an edit affects a minority of the tree, as in real ones.
    **{f"lib/part{i}.py": f"def part{i}(x: int) -> int:\n    return x + {i}\n" for i in range(4)},
}


def build(name: str, repo: Path, data: Path) -> dict[str, object]:
    """Run the SCIP stages of ``repo`` under the data root ``data``; return scip_index's
    metadata, the SCIP and edges stages' metadata, their tables and files' bytes."""
    registry.add_repo(registry.RepoConfig(name=name, path=str(repo)), root=data, replace=True)
    ctx = BuildContext.for_repo(name, root=data)
    results = {stage: run_named(ctx, stage) for stage in STAGES}
    layout = ctx.layout.build
    return {
        "scip": results["scip_index"].metadata,
        "occurrences": results["scip_occurrences"].metadata,
        "edges": results["symbol_edges"].metadata,
        # The files' bytes: kept rows must write what a clean build writes.
        "bytes": {
            "scip_occurrences": layout.scip_occurrences.read_bytes(),
            "scip_symbols": layout.scip_symbols.read_bytes(),
            "symbol_edges": layout.symbol_edges.read_bytes(),
            "symbol_graph_json": layout.symbol_graph_json.read_bytes(),
            "file_edges": layout.file_edges.read_bytes(),
        },
        "scip_occurrences": pq.read_table(layout.scip_occurrences),
        "scip_symbols": pq.read_table(layout.scip_symbols),
        "symbol_edges": pq.read_table(layout.symbol_edges),
        # symbol_edges' per-file part, kept between builds.
        "syntax_sites": pq.read_table(layout.syntax_sites),
    }


def rows(table: pa.Table) -> list[str]:
    return sorted(json.dumps(row, sort_keys=True, default=str) for row in table.to_pylist())


def assert_same_as_full(incremental: dict[str, object], repo: Path, tmp: Path) -> None:
    """A full pass of the same tree in a fresh data root gives the same tables, and the
    same bytes of the files the clean build writes (the graph's among them)."""
    fresh = tmp / f"full-{len(list(tmp.glob('full-*')))}"
    full = build("corpus", repo, fresh)
    assert full["scip"]["mode"] == "full"
    for table in ("scip_occurrences", "scip_symbols", "symbol_edges", "syntax_sites"):
        assert rows(incremental[table]) == rows(full[table]), table
    assert incremental["bytes"] == full["bytes"]
    assert incremental["scip"]["documents"] == full["scip"]["documents"]
