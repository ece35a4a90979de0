"""Anchors of the search env and their similarity grouping.

The anchor of a search state is ``(queries, information)``: the normalised queries issued so far
(:func:`~turngym.envs.search.scoring.normalize_answer` applied to each, in order) and the text of
the last ``<information>`` block. Two rollouts that asked the same questions and saw the same
passages share an anchor, which is what GiGPO's exact step grouping needs.

Queries rarely repeat word for word, so GiGPO's search setting also groups *similar* states:
:func:`anchor_similarity` is the :class:`difflib.SequenceMatcher` ratio of the two anchors rendered
as text, and :func:`group_similar_anchors` assigns group ids greedily — each anchor joins the first
earlier group whose first member is at least ``threshold`` similar, else it opens a new group.
Example: ``("capital of ostravia",)`` and ``("ostravia capital",)`` with the same information block
and threshold 0.85 land in one group (similarity 0.897); a different information block separates them.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from difflib import SequenceMatcher

SearchAnchor = tuple[tuple[str, ...], str]


def _render(anchor: Hashable) -> str:
    if isinstance(anchor, tuple) and len(anchor) == 2 and isinstance(anchor[0], tuple):
        return " | ".join(anchor[0]) + " || " + str(anchor[1])
    return str(anchor)


def anchor_similarity(a: Hashable, b: Hashable) -> float:
    """Similarity in ``[0, 1]`` of two anchors (1.0 exactly when their renderings are equal)."""
    if a == b:
        return 1.0
    return SequenceMatcher(None, _render(a), _render(b), autojunk=False).ratio()


def group_similar_anchors(anchors: Sequence[Hashable], threshold: float = 0.9) -> list[int]:
    """Group ids ``0, 1, ...`` (in order of first appearance) for anchors at least ``threshold`` similar."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    leaders: list[Hashable] = []
    groups: list[int] = []
    for anchor in anchors:
        for gid, leader in enumerate(leaders):
            if anchor_similarity(anchor, leader) >= threshold:
                groups.append(gid)
                break
        else:
            leaders.append(anchor)
            groups.append(len(leaders) - 1)
    return groups
