"""Which chunks hold which lines: a small in-memory index over a version's chunk positions.

Search shows whole units, whose lines are put back together from the chunks holding them.
Finding those chunks with SQL (``uri = ? AND start_line <= ? AND end_line >= ?`` per unit)
scans the chunk table on every search; this index answers it with a binary search per
unit, and the chunks are then fetched by id.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


class ChunkSpans:
    """Per file, its chunks' ids and line ranges, ordered by first line (then byte)."""

    def __init__(self, positions: pa.Table) -> None:
        """``positions``: ``id, uri, start_line, end_line, start_byte`` of every chunk."""
        order = pc.sort_indices(
            positions,
            [("uri", "ascending"), ("start_line", "ascending"), ("start_byte", "ascending")],
        )
        table = positions.take(order)
        uris = table["uri"].to_pylist()
        ids = table["id"].to_numpy()
        starts = table["start_line"].to_numpy()
        ends = table["end_line"].to_numpy()
        self._files: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        first = 0
        for row in range(1, len(uris) + 1):
            if row == len(uris) or uris[row] != uris[first]:
                part = slice(first, row)
                self._files[uris[first]] = (starts[part], ends[part], ids[part])
                first = row

    def covering(self, uri: str, first: int, last: int) -> list[int]:
        """Return the ids of ``uri``'s chunks that hold any of lines ``first``–``last``,
        in file order ([] for a file with no chunks)."""
        found = self._files.get(uri)
        if found is None:
            return []
        starts, ends, ids = found
        head = int(np.searchsorted(starts, last, side="right"))
        return [int(i) for i in ids[:head][ends[:head] >= first]]

    def covering_all(self, spans: Sequence[tuple[str, int, int]]) -> list[int]:
        """Return the ids of the chunks holding any line of any span, each once."""
        return list(dict.fromkeys(c for span in spans for c in self.covering(*span)))
