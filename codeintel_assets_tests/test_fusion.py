"""Reciprocal rank fusion arithmetic, computed by hand."""

from __future__ import annotations

import pytest

from codeintel_assets.core.channels import diversify
from codeintel_assets.core.fusion import channel_ranks, rrf


def test_rrf_scores_and_order_match_hand_computation():
    fused = rrf({"dense": [10, 20, 30], "bm25": [30, 40]}, k=60)
    scores = {i: s for i, s, _ in fused}
    assert scores[10] == pytest.approx(1 / 61)
    assert scores[20] == pytest.approx(1 / 62)
    assert scores[30] == pytest.approx(1 / 63 + 1 / 61)
    assert scores[40] == pytest.approx(1 / 62)
    # 30 is in both lists, so it wins; 20 and 40 tie at 1/62 and break on the smaller id.
    assert [i for i, _, _ in fused] == [30, 10, 20, 40]
    assert fused[0][2] == {"dense": 3, "bm25": 1}
    assert dict((i, r) for i, _, r in fused)[40] == {"bm25": 2}


def test_rrf_k_changes_the_weights():
    fused = rrf({"a": [1, 2], "b": [2]}, k=1)
    scores = {i: s for i, s, _ in fused}
    assert scores[1] == pytest.approx(1 / 2)
    assert scores[2] == pytest.approx(1 / 3 + 1 / 2)


def test_rrf_counts_a_repeated_id_once_per_channel_and_handles_empty_input():
    fused = rrf({"a": [5, 5, 6]})
    assert fused[0][:1] == (5,) and fused[0][1] == pytest.approx(1 / 61)
    assert fused[1][2] == {"a": 3}
    assert rrf({}) == []
    assert rrf({"a": [], "b": []}) == []


def test_scored_channels_give_tied_items_the_same_rank():
    assert channel_ranks([(7, 3.0), (8, 2.0), (9, 2.0), (4, 1.0)]) == [
        (7, 1),
        (8, 2),
        (9, 2),
        (4, 4),
    ]
    assert channel_ranks([7, 8, 9]) == [(7, 1), (8, 2), (9, 3)]
    fused = rrf({"definition": [(1, 2.0), (2, 2.0), (3, 2.0)], "bm25": [3]}, k=60)
    scores = {i: s for i, s, _ in fused}
    # Three definitions the query names equally: each gets 1/61, none is favoured.
    assert scores[1] == scores[2] == pytest.approx(1 / 61)
    assert scores[3] == pytest.approx(2 / 61)
    assert [i for i, _, _ in fused] == [3, 1, 2]
    assert dict((i, r) for i, _, r in fused)[2] == {"definition": 1}


def test_diversify_spreads_a_list_over_files_softly():
    files = {1: "a.py", 2: "a.py", 3: "a.py", 4: "b.py", 5: "c.py"}
    ranked = [(1, 1.0), (2, 0.99), (3, 0.98), (4, 0.8), (5, 0.3)]
    out = diversify(ranked, files.get, decay=0.7)
    # a.py's second unit (0.99 × 0.7) falls below b.py's first; order within a file is kept.
    assert [u for u, _ in out] == [1, 4, 2, 3, 5]
    assert out[1] == (4, 0.8) and out[2][1] == pytest.approx(0.99 * 0.7)
    # A penalty, not a filter: every unit stays, and no penalty keeps the order.
    assert [u for u, _ in diversify(ranked, files.get, decay=1.0)] == [1, 2, 3, 4, 5]
    assert diversify([], files.get) == []
