"""The definition channel: structure-aware ranking of the chunks that define what a query names.

A code search that is asked for ``parse header`` or shown ``self._fixupChildren(ph, rv)``
should put the definition of ``parse_header`` or ``_fixupChildren`` first, not the
hundred places that mention it. The chunker knows, from the syntax tree, which chunk
starts each function, method and class (its ``name`` column, qualified); this module
keeps a small index from a definition's *key* — its short name's identifier parts
joined, lower-cased (``_fixupChildren`` → ``fixupchildren``, ``HTTPServer`` →
``httpserver``) — to that chunk, and ranks definitions by how much of the query names them:

* every run of 2–5 consecutive words of the query (identifier parts count as words)
  whose key is a definition's key: ``parse header`` and ``parse_header(`` both match
  ``parse_header``, ranked by the number of words matched;
* a single word only where the query uses it as code — called (``Formatter()``) or
  reached as an attribute (``.listen``) — since a single prose word (``list``,
  ``message``) names a definition by accident far more often than on purpose;
* a run that is a whole identifier of the query ranks above the same run made of
  prose words.

Ties keep the index's order (path, then name). Hybrid search fuses this list with the
dense and BM25 lists by reciprocal rank fusion; a query that names nothing yields an
empty list and leaves the fusion to the other two.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from codeintel_assets.core.errors import CodeintelError
from codeintel_assets.core.lexical import identifier_parts

MAX_RUN_WORDS = 5
WHOLE_IDENTIFIER_BONUS = 0.5
DEFINITIONS = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),  # qualified, as the chunker names it
        pa.field("kind", pa.string()),
        pa.field("uri", pa.string(), nullable=False),
        pa.field("chunk_id", pa.int64(), nullable=False),
    ]
)
_IDENTIFIER = re.compile(r"[^\W\d]\w*")


def definition_key(name: str) -> str:
    """Return the key of a (short) name: its identifier parts joined, lower-cased."""
    return "".join(identifier_parts(name))


def definition_table(chunks: pa.Table) -> pa.Table:
    """Return one row per definition (``DEFINITIONS``): the first chunk of each named unit.

    ``chunks`` needs ``id, uri, name, kind, start_byte``. A definition split over several
    chunks keeps the one that starts first — the chunk holding its signature.
    """
    first: dict[tuple[str, str], tuple[int, int, str | None]] = {}
    columns = ["id", "uri", "name", "kind", "start_byte"]
    for row in chunks.select(columns).to_pylist():
        name = row["name"]
        if not name:
            continue
        key = (row["uri"], name)
        if key not in first or row["start_byte"] < first[key][0]:
            first[key] = (row["start_byte"], row["id"], row["kind"])
    rows = []
    for (uri, name), (_, chunk_id, kind) in sorted(first.items()):
        key = definition_key(name.rsplit(".", 1)[-1])
        if key:
            rows.append({"key": key, "name": name, "kind": kind, "uri": uri, "chunk_id": chunk_id})
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
    for match in _IDENTIFIER.finditer(query):
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


def build_definitions(chunks: pa.Table) -> DefinitionIndex:
    """Return the definition index of a chunks table."""
    return DefinitionIndex(definition_table(chunks))


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
