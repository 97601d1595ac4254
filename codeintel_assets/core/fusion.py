"""Reciprocal rank fusion: one ranking from several channels (dense, bm25, definition).

Each channel contributes ``1 / (k + rank)`` for every id it ranks (rank 1-based);
an id's fused score is the sum. RRF uses ranks only, so channels whose scores live
on different scales (cosine, BM25) fuse without calibration. A channel given as
``(id, score)`` pairs ranks ties alike: items it scores equally share the rank of the
first of them (1, 2, 2, 4), so a channel that cannot tell items apart does not favour
whichever it happened to list first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

# How a search ranks: the fusion of every channel (the default), or one channel alone.
SEARCH_MODES = ("hybrid", "dense", "bm25")

RRF_K = 60

Ranking = Sequence[int] | Sequence[tuple[int, float]]


def channel_ranks(ranked: Ranking) -> list[tuple[int, int]]:
    """Return ``(id, 1-based rank)`` per entry, in order.

    Bare ids rank by position; ``(id, score)`` pairs that tie on score share the rank of
    the first pair of the tie (competition ranking).
    """
    out: list[tuple[int, int]] = []
    previous: float | None = None
    rank = 0
    for position, item in enumerate(ranked, start=1):
        if isinstance(item, tuple):
            item_id, score = item
            if previous is None or score != previous:
                rank, previous = position, score
        else:
            item_id, rank = item, position
        out.append((int(item_id), rank))
    return out


def rrf(rankings: Mapping[str, Ranking], k: int = RRF_K) -> list[tuple[int, float, dict[str, int]]]:
    """Return ``(id, fused score, {channel: 1-based rank})`` for every ranked id, best first.

    A channel that lists an id twice counts only its first (best) rank. Ties on the
    fused score go to the id with the better best rank, then the smaller id, so the
    order is deterministic.
    """
    scores: dict[int, float] = {}
    ranks: dict[int, dict[str, int]] = {}
    for channel, ranked in rankings.items():
        for item, rank in channel_ranks(ranked):
            seen = ranks.setdefault(item, {})
            if channel in seen:
                continue
            seen[channel] = rank
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    ordered = sorted(scores, key=lambda i: (-scores[i], min(ranks[i].values()), i))
    return [(i, scores[i], ranks[i]) for i in ordered]
