"""ChunkSpans: which chunks hold a span of lines, as the catalog's chunks say."""

from __future__ import annotations

import pyarrow as pa

from codeintel_assets.core.catalog.spans import ChunkSpans


def positions(rows: list[tuple[int, str, int, int, int]]) -> pa.Table:
    names = ["id", "uri", "start_line", "end_line", "start_byte"]
    return pa.Table.from_pylist([dict(zip(names, row, strict=True)) for row in rows])


def test_covering_finds_every_chunk_touching_the_lines_in_file_order() -> None:
    spans = ChunkSpans(
        positions(
            [
                (30, "b.py", 1, 4, 0),
                (12, "a.py", 11, 20, 300),
                (11, "a.py", 1, 10, 0),
                # One long line cut in three windows: same line, ordered by byte.
                (15, "a.py", 21, 21, 700),
                (13, "a.py", 21, 21, 500),
                (14, "a.py", 21, 21, 600),
                (16, "a.py", 21, 30, 800),
            ]
        )
    )
    assert spans.covering("a.py", 5, 12) == [11, 12]
    assert spans.covering("a.py", 21, 21) == [13, 14, 15, 16]
    assert spans.covering("a.py", 10, 10) == [11]
    assert spans.covering("a.py", 31, 40) == []
    assert spans.covering("nowhere.py", 1, 5) == []
    assert spans.covering_all([("a.py", 1, 11), ("a.py", 5, 12), ("b.py", 2, 2)]) == [11, 12, 30]


def test_no_chunks_at_all() -> None:
    schema = pa.schema(
        [("id", pa.int64()), ("uri", pa.string()), ("start_line", pa.int32()),
         ("end_line", pa.int32()), ("start_byte", pa.int64())]
    )  # fmt: skip
    assert ChunkSpans(schema.empty_table()).covering("a.py", 1, 2) == []
