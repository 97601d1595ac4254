"""The definition channel: structure-aware ranking of the chunks that define what a query names.

A code search that is asked for ``parse header`` or shown ``self._fixupChildren(ph, rv)``
should put the definition of ``parse_header`` or ``_fixupChildren`` first, not the
hundred places that mention it. The syntax tree (``cst_nodes``: tree-sitter's function,
method, class, interface... nodes with their ``name`` field, for every language we
parse) says where each definition starts; this module keeps a small index from a
definition's *key* — its name's identifier parts joined, lower-cased (``_fixupChildren``
→ ``fixupchildren``, ``HTTPServer`` → ``httpserver``) — to the chunk holding that start,
and ranks definitions by how much of the query names them:

* every run of 2–5 consecutive words of the query (identifier parts count as words)
  whose key is a definition's key: ``parse header`` and ``parse_header(`` both match
  ``parse_header``, ranked by the number of words matched;
* a single word only where the query uses it as code — called (``Formatter()``) or
  reached as an attribute (``.listen``) — since a single prose word (``list``,
  ``message``) names a definition by accident far more often than on purpose;
* a run that is a whole identifier of the query ranks above the same run made of
  prose words.

Definitions the query names equally well (``run`` defined in ten classes) tie: they
share one score, and fusion gives tied items the same rank (``core.fusion``), so no
file wins by its path. Hybrid search fuses this list with the dense and BM25 lists by
reciprocal rank fusion; a query that names nothing yields an empty list and leaves the
fusion to the other two.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from codeintel_assets.core.errors import CodeintelError
from codeintel_assets.core.grammars import CST_DEFINITION_KINDS
from codeintel_assets.core.schemas import DEFINITIONS
from codeintel_assets.core.tokens import IDENTIFIER, identifier_parts

MAX_RUN_WORDS = 5
WHOLE_IDENTIFIER_BONUS = 0.5


def definition_key(name: str) -> str:
    """Return the key of a (short) name: its identifier parts joined, lower-cased."""
    return "".join(identifier_parts(name))


def definition_table(nodes: pa.Table, chunks: pa.Table) -> pa.Table:
    """Return one row per named definition (``DEFINITIONS``), with the chunk holding its start.

    ``nodes`` are syntax rows (``uri, kind, start_byte, name``; ``cst_nodes``): those of a
    definition kind with a name count. ``chunks`` needs ``id, uri, start_byte, end_byte``;
    chunks cover every byte of a file once, so each start lies in exactly one chunk
    (a definition in a file without chunks is left out). Rows are ordered by file and
    position.
    """
    spans: dict[str, tuple[list[int], list[int], list[int]]] = {}
    columns = ["uri", "start_byte", "end_byte", "id"]
    for uri, start, end, chunk_id in sorted(
        zip(*chunks.select(columns).to_pydict().values(), strict=True)
    ):
        starts, ends, ids = spans.setdefault(uri, ([], [], []))
        starts.append(start)
        ends.append(end)
        ids.append(chunk_id)
    rows = []
    for node in nodes.select(["uri", "kind", "start_byte", "name"]).to_pylist():
        name = node["name"]
        if node["kind"] not in CST_DEFINITION_KINDS or not name or node["uri"] not in spans:
            continue
        starts, ends, ids = spans[node["uri"]]
        i = bisect.bisect_right(starts, node["start_byte"]) - 1
        key = definition_key(name)
        if i < 0 or node["start_byte"] >= ends[i] or not key:
            continue
        rows.append({**node, "key": key, "chunk_id": ids[i]})
    rows.sort(key=lambda r: (r["uri"], r["start_byte"], r["name"]))
    return pa.Table.from_pylist(rows, schema=DEFINITIONS)


@dataclass
class DefinitionIndex:
    """Definition key → the chunks defining a name with that key, in table order."""

    table: pa.Table  # DEFINITIONS

    def __post_init__(self) -> None:
        self._by_key: dict[str, list[int]] = {}
        self._position: dict[int, int] = {}  # chunk id -> first row: the tie-break
        keys = self.table.column("key").to_pylist()
        ids = self.table.column("chunk_id").to_pylist()
        for row, (key, chunk_id) in enumerate(zip(keys, ids, strict=True)):
            self._by_key.setdefault(key, []).append(int(chunk_id))
            self._position.setdefault(int(chunk_id), row)

    def __len__(self) -> int:
        return self.table.num_rows

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """Return up to ``k`` (chunk id, score) pairs, best first; score = words matched
        (+ ``WHOLE_IDENTIFIER_BONUS`` when the run is a whole identifier of the query)."""
        if k < 1:
            return []
        words, whole, code_like = query_words(query)
        scores: dict[int, float] = {}
        for start in range(len(words)):
            for length in range(1, MAX_RUN_WORDS + 1):
                if start + length > len(words):
                    break
                key = "".join(words[start : start + length])
                if length == 1 and key not in code_like:
                    continue
                score = length + (WHOLE_IDENTIFIER_BONUS if key in whole else 0.0)
                for chunk_id in self._by_key.get(key, ()):
                    if score > scores.get(chunk_id, 0.0):
                        scores[chunk_id] = score
        ranked = sorted(scores.items(), key=lambda item: (-item[1], self._position[item[0]]))
        return ranked[:k]


def query_words(query: str) -> tuple[list[str], set[str], set[str]]:
    """Return the query's words (identifier parts, in order), the keys of its whole
    identifiers, and the keys of identifiers it uses as code (called, or after a dot)."""
    words: list[str] = []
    whole: set[str] = set()
    code_like: set[str] = set()
    for match in IDENTIFIER.finditer(query):
        identifier = match.group(0)
        parts = identifier_parts(identifier)
        if not parts:
            continue
        key = "".join(parts)
        whole.add(key)
        before = query[match.start() - 1] if match.start() else ""
        after = query[match.end() : match.end() + 1]
        if after == "(" or before == ".":
            code_like.add(key)
        words.extend(parts)
    return words, whole, code_like


def build_definitions(nodes: pa.Table, chunks: pa.Table) -> DefinitionIndex:
    """Return the definition index of syntax ``nodes`` over ``chunks`` (``definition_table``)."""
    return DefinitionIndex(definition_table(nodes, chunks))


def load_definitions(path: Path) -> DefinitionIndex:
    """Return the definition index stored at ``path``.

    Raises ``CodeintelError`` when the file cannot be read or has the wrong columns.
    """
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise CodeintelError(f"definition index {path} cannot be read: {exc}") from exc
    missing = set(DEFINITIONS.names) - set(table.column_names)
    if missing:
        raise CodeintelError(f"definition index {path} lacks columns {sorted(missing)}")
    return DefinitionIndex(table.select(DEFINITIONS.names))
