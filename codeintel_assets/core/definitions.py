"""The definition channel: structure-aware ranking of the units that define what a query names.

A code search that is asked for ``parse header`` or shown ``self._fixupChildren(ph, rv)``
should put the definition of ``parse_header`` or ``_fixupChildren`` first, not the
hundred places that mention it. The units (``core.units``: the syntax tree's functions,
methods, classes, interfaces... of every language we parse) say where each definition
is; this module keeps a small index, built from the units table when an index is
opened, from a definition's *key* — its name's identifier parts joined, lower-cased
(``_fixupChildren`` → ``fixupchildren``, ``HTTPServer`` → ``httpserver``) — to the
units defining it, and ranks definitions by how much of the query names them:

* every run of 2–5 consecutive words of the query (identifier parts count as words)
  whose key is a definition's key: ``parse header`` and ``parse_header(`` both match
  ``parse_header``, ranked by the number of words matched;
* a single word only where the query uses it as code — called (``Formatter()``),
  reached as an attribute (``.listen``) or the whole query (``Blueprint``) — since a
  single prose word (``list``, ``message``) names a definition by accident far more
  often than on purpose;
* a run that is a whole identifier of the query ranks above the same run made of
  prose words.

Definitions the query names equally well (``run`` defined in ten classes) tie: they
share one score, and fusion gives tied items the same rank (``core.fusion``), so no
file wins by its path. Hybrid search fuses this list with the dense and BM25 lists by
reciprocal rank fusion; a query that names nothing yields an empty list and leaves the
fusion to the other two.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from codeintel_assets.core.grammars import DEFINITION_KINDS
from codeintel_assets.core.schemas import DEFINITIONS
from codeintel_assets.core.tokens import IDENTIFIER, identifier_parts

MAX_RUN_WORDS = 5
WHOLE_IDENTIFIER_BONUS = 0.5


def definition_key(name: str) -> str:
    """Return the key of a (short) name: its identifier parts joined, lower-cased."""
    if name.isascii():
        # The parts split the name between its characters and drop only underscores, and
        # ASCII lower-cases character by character: joined, they are this.
        return name.replace("_", "").lower()
    return "".join(identifier_parts(name))


def definition_table(units: pa.Table) -> pa.Table:
    """Return one row per named definition unit (``DEFINITIONS``), in the units' order.

    ``units`` are ``UNITS`` rows; module blocks and the per-chunk units of files without
    a syntax tree name no definition and are left out. Each distinct name's key is made
    once (``__init__``, ``run``... name thousands of units).
    """
    named = units.filter(
        pc.and_(
            pc.is_in(units.column("kind"), pa.array(sorted(DEFINITION_KINDS), pa.string())),
            pc.greater(pc.utf8_length(units.column("name")), 0),
        )
    )
    names = named.column("name").to_pylist()
    key_of = {name: definition_key(name) for name in set(names)}
    keys = pa.array([key_of[name] for name in names], pa.string())
    table = named.select(["unit_id", "uri", "kind", "start_line", "name"]).append_column(
        "key", keys
    )
    table = table.filter(pc.greater(pc.utf8_length(table.column("key")), 0))
    return table.select(DEFINITIONS.names).cast(DEFINITIONS)


@dataclass
class DefinitionIndex:
    """Definition key → the units defining a name with that key, in table order."""

    table: pa.Table  # DEFINITIONS

    def __post_init__(self) -> None:
        # Rows grouped by key (table order within a key): a key's units are a slice.
        encoded = self.table.column("key").combine_chunks().dictionary_encode()
        codes = encoded.indices.to_numpy()
        grouped = np.argsort(codes, kind="stable")
        ids = self.table.column("unit_id").to_numpy().astype(np.int64)
        self._grouped_ids = ids[grouped]
        bounds = np.searchsorted(codes[grouped], np.arange(len(encoded.dictionary) + 1))
        self._by_key: dict[str, tuple[int, int]] = dict(
            zip(
                encoded.dictionary.to_pylist(),
                zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True),
                strict=True,
            )
        )
        # unit id -> its first row: the tie-break.
        unique, first = np.unique(ids, return_index=True)
        self._position: dict[int, int] = dict(zip(unique.tolist(), first.tolist(), strict=True))

    def __len__(self) -> int:
        return self.table.num_rows

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """Return up to ``k`` (unit id, score) pairs, best first; score = words matched
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
                first, last = self._by_key.get(key, (0, 0))
                for unit_id in self._grouped_ids[first:last].tolist():
                    if score > scores.get(unit_id, 0.0):
                        scores[unit_id] = score
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
        # A query that is one identifier (``Flask``, ``render_template``) names it.
        alone = match.start() == 0 and match.end() == len(query)
        if after == "(" or before == "." or alone:
            code_like.add(key)
        words.extend(parts)
    return words, whole, code_like


def build_definitions(units: pa.Table) -> DefinitionIndex:
    """Return the definition index of ``units`` (``definition_table``)."""
    return DefinitionIndex(definition_table(units))
