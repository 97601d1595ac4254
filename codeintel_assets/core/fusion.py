"""Reciprocal rank fusion: one ranking from several channels (dense, bm25, ...).

Each channel contributes ``1 / (k + rank)`` for every id it ranks (rank 1-based);
an id's fused score is the sum. RRF uses ranks only, so channels whose scores live
on different scales (cosine, BM25) fuse without calibration.
"""

from __future__ import annotations

RRF_K = 60


def rrf(rankings: dict[str, list[int]], k: int = RRF_K) -> list[tuple[int, float, dict[str, int]]]:
    """Return ``(id, fused score, {channel: 1-based rank})`` for every ranked id, best first.

    A channel that lists an id twice counts only its first (best) rank. Ties on the
    fused score go to the id with the better best rank, then the smaller id, so the
    order is deterministic.
    """
    scores: dict[int, float] = {}
    ranks: dict[int, dict[str, int]] = {}
    for channel, ids in rankings.items():
        for position, item in enumerate(ids, start=1):
            item = int(item)
            seen = ranks.setdefault(item, {})
            if channel in seen:
                continue
            seen[channel] = position
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + position)
    ordered = sorted(scores, key=lambda i: (-scores[i], min(ranks[i].values()), i))
    return [(i, scores[i], ranks[i]) for i in ordered]
