"""The channels search fuses, all scoring units (``core.units``), and how they are fused.

* ``dense``: FAISS returns chunks (the embedding unit); each unit scores by its best
  chunk plus a tenth of the mean of its retrieved chunks, so a unit that several
  chunks answer edges out one that a single chunk answers equally well (measured on
  the external benchmark against the best chunk alone and the mean of the top two).
* ``bm25``: BM25 over each unit's whole text (``core.lexical``).
* ``definition``: the units that define what the query names (``core.definitions``).

Hybrid is the reciprocal rank fusion of the three (``core.fusion``, ties share a rank).
Then every mode spreads its list over files (``diversify``): a unit's score is multiplied
by ``FILE_DECAY`` for each unit of its file ranked above it, so ten slices of one file do
not fill the top ten while other files answer too. Search and the evaluation pools both
call ``unit_channels`` and ``rank_units``, so what is measured is what is served.

The BM25 folder (``bm25/``) holds the BM25 index over unit texts; the definition index
is made from the units table when an index is opened.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from codeintel_assets.core.checksums import atomic_folder
from codeintel_assets.core.definitions import DefinitionIndex, build_definitions
from codeintel_assets.core.embedding import embedding_text
from codeintel_assets.core.fusion import RRF_K, rrf
from codeintel_assets.core.lexical import Bm25Index, TokenCache, build_bm25, load_bm25
from codeintel_assets.core.units import UnitSet, unit_texts

Ranked = list[tuple[int, float]]
DENSE_MEAN_WEIGHT = 0.1
# Measured on the external benchmark: 0.5–0.8 all give hybrid NDCG@10 within 0.005 of
# each other and 0.045 above no penalty (1.0); README "Measured".
FILE_DECAY = 0.7


def dense_units(chunk_hits: Iterable[tuple[int, float]], units: UnitSet) -> tuple[Ranked, dict]:
    """Return (units ranked by their chunks' dense scores, best chunk of each unit).

    A hit credits the chunk's innermost unit. A unit's score is its best chunk's score plus
    ``DENSE_MEAN_WEIGHT`` times the mean score of its chunks among the hits; chunks
    without a unit are skipped.
    """
    scores: dict[int, list[float]] = {}
    best: dict[int, int] = {}
    for chunk, score in chunk_hits:
        unit = units.unit_of.get(chunk)
        if unit is None:
            continue
        if unit not in scores:
            scores[unit] = []
            best[unit] = chunk  # hits arrive best first
        scores[unit].append(score)
    ranked = [
        (unit, values[0] + DENSE_MEAN_WEIGHT * sum(values) / len(values))
        for unit, values in scores.items()
    ]
    ranked.sort(key=lambda item: -item[1])
    return ranked, best


@dataclass
class UnitChannels:
    """The lexical indexes over one version's units: BM25 and the definition index."""

    units: UnitSet
    bm25: Bm25Index
    definitions: DefinitionIndex

    def lexical(self, query: str, k: int, mode: str = "hybrid") -> dict[str, Ranked]:
        """Return the lexical channels of ``mode``, each its top ``k`` (unit id, score):
        ``bm25`` and, for hybrid, ``definition``."""
        out = {"bm25": self.bm25.search(query, k)}
        if mode == "hybrid":
            out["definition"] = self.definitions.search(query, k)
        return out

    def save(self, folder: Path) -> None:
        """Write the BM25 index to ``folder``, replacing it atomically."""
        with atomic_folder(Path(folder)) as tmp:
            self.bm25.save(tmp)


def unit_documents(
    units: pa.Table, chunks: pa.Table, replaced: dict[str, list[str]] | None = None
) -> list[str]:
    """Return what BM25 reads of every unit, in the units' order: its path, qualified
    name and whole text (``core.units.unit_texts``; ``replaced``: other lines for some
    files)."""
    return [
        embedding_text(uri, name, text)
        for uri, name, text in zip(
            units["uri"].to_pylist(),
            units["qualified_name"].to_pylist(),
            unit_texts(units, chunks, replaced),
            strict=True,
        )
    ]


def build_unit_channels(
    units: UnitSet, texts: list[str], tokens: TokenCache | None = None
) -> UnitChannels:
    """Return the channels of ``units`` whose whole texts are ``texts`` (in table order),
    tokenized through ``tokens`` when given."""
    bm25 = build_bm25(units.table["unit_id"].to_numpy(), texts, tokens)
    return UnitChannels(units, bm25, build_definitions(units.table))


def load_unit_channels(folder: Path, units: UnitSet) -> UnitChannels:
    """Return the channels of ``units`` with the BM25 index saved in ``folder``.

    Raises ``CodeintelError`` when the index is missing, incomplete or unreadable.
    """
    return UnitChannels(units, load_bm25(Path(folder)), build_definitions(units.table))


def unit_channels(
    channels: UnitChannels, query: str, mode: str, chunk_hits: Ranked | None, k: int
) -> tuple[dict[str, Ranked], dict[int, int]]:
    """Return (each channel of ``mode``: up to ``k`` (unit id, score) best first, the best
    dense chunk of each unit the dense channel found). ``chunk_hits`` are FAISS's
    (chunk id, score) pairs, needed for ``dense`` and ``hybrid``."""
    out: dict[str, Ranked] = {}
    best: dict[int, int] = {}
    if mode in ("dense", "hybrid"):
        dense, best = dense_units(chunk_hits or [], channels.units)
        out["dense"] = dense[:k]
    if mode in ("bm25", "hybrid"):
        out.update(channels.lexical(query, k, mode))
    return out, best


def fuse(channels: dict[str, Ranked], mode: str) -> Ranked:
    """Return the units of ``mode`` best first: hybrid's RRF (k=60), else the one channel."""
    if mode != "hybrid":
        return channels[mode]
    return [(unit, score) for unit, score, _ in rrf(channels, RRF_K)]


def diversify(ranked: Ranked, file_of: Callable[[int], str], decay: float = FILE_DECAY) -> Ranked:
    """Return ``ranked`` reordered by each unit's score times ``decay`` to the power of the
    number of units of its file ranked above it (the score returned is that product).

    A soft penalty, not a filter: a unit that matches much better than anything in other
    files still follows its neighbour. Order within a file is kept; ties keep the input
    order.
    """
    queues: dict[str, deque[tuple[int, int, float]]] = {}
    for position, (unit, score) in enumerate(ranked):
        queues.setdefault(file_of(unit), deque()).append((position, unit, score))
    heap = [(-queue[0][2], queue[0][0], name) for name, queue in queues.items()]
    heapq.heapify(heap)
    picked: dict[str, int] = {}
    out: Ranked = []
    while heap:
        negative, _, name = heapq.heappop(heap)
        _, unit, _ = queues[name].popleft()
        out.append((unit, -negative))
        picked[name] = picked.get(name, 0) + 1
        if queues[name]:
            position, _, score = queues[name][0]
            heapq.heappush(heap, (-score * decay ** picked[name], position, name))
    return out


def rank_units(channels: dict[str, Ranked], mode: str, units: UnitSet) -> Ranked:
    """Return the units of ``mode`` as search returns them: fused, then spread over files."""
    return diversify(fuse(channels, mode), units.uri)
