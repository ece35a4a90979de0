"""Similarity grouping of search anchors."""

from __future__ import annotations

import pytest

from turngym.envs.search.anchors import anchor_similarity, group_similar_anchors

INFO = 'Doc 1(Title: "Ostravia") Ostravia is a country. Its capital is Dunmere.'


def test_similarity_of_equal_and_reworded_anchors() -> None:
    a = (("capital of ostravia",), INFO)
    assert anchor_similarity(a, a) == 1.0
    assert anchor_similarity(a, (("ostravia capital",), INFO)) > 0.85
    assert anchor_similarity(a, (("capital of ostravia",), "Doc 1(Title: x) y")) < 0.7
    assert anchor_similarity("abc", "abd") == pytest.approx(2 / 3)  # any hashable: ratio of the renderings


def test_group_similar_anchors_hand_example() -> None:
    anchors = [
        ((), ""),
        (("capital of ostravia",), INFO),
        (("ostravia capital",), INFO),
        (("capital of ostravia",), "Doc 1(Title: x) y"),
        ((), ""),
    ]
    assert group_similar_anchors(anchors, threshold=0.85) == [0, 1, 1, 2, 0]
    assert group_similar_anchors(anchors, threshold=1.0) == [0, 1, 2, 3, 0]
    assert group_similar_anchors([], threshold=0.5) == []
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        group_similar_anchors(anchors, threshold=1.5)
