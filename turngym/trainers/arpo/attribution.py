"""ARPO's advantage attribution over branched groups (research note §3.2): ``soft`` and ``hard``.

A group of M branched trajectories is a tree: trajectory i shares turns ``0..b_i-1`` (and the
prompt of turn b_i) with its parent, where b_i = ``metadata["arpo"]["branch_turn"]``. The *owner*
of turn t of trajectory i is the trajectory that sampled it: i itself from b_i on, else the owner of
turn t of its parent. A shared turn appears, token for token, in every trajectory that has its owner.

* ``soft`` (the paper's default): the per-turn advantages of the estimator (GRPO over the M
  sequences) as they are; a prefix shared by d trajectories is in the loss d times, each copy with
  its own trajectory's advantage. Its total gradient is d·mean(A)·∇log π(prefix): the direction of
  ``hard``, d times the size (same tokens, same ratios, so clipping agrees too).
* ``hard``: a turn shared by d trajectories gets the mean of their d advantages (at that turn) and
  counts once: only the owner's row trains on it; in the other d − 1 rows its action tokens join the
  prompt (loss mask 0). Turns after a branch point keep their own advantage.

Fixture (note §3.4): rewards [1, 0, 1, 0], trajectories 0 and 1 share a prefix: GRPO gives
A = [0.866, −0.866, 0.866, −0.866]; ``hard`` gives the shared prefix mean(0.866, −0.866) = 0 and
trains it once; under ``soft`` the two copies carry +0.866 and −0.866 and cancel exactly in
the first update (equal ratios of 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from turngym.errors import TrainerError
from turngym.trajectory import Trajectory, Turn


def turn_owners(group: Sequence[Trajectory]) -> list[list[int]]:
    """``owners[i][t]``: the position in ``group`` of the trajectory that sampled turn t of
    trajectory i (module docstring). Trajectories without ARPO metadata own all their turns."""
    owners: list[list[int]] = []
    for i, trajectory in enumerate(group):
        info = trajectory.metadata.get("arpo") or {}
        parent, start = info.get("parent"), info.get("branch_turn")
        if parent is None:
            owners.append([i] * len(trajectory.turns))
            continue
        if not 0 <= parent < i or start is None or start > len(owners[parent]):
            raise TrainerError(
                f"trajectory {i} of a group names parent {parent} at turn {start}; a parent must come "
                "earlier in its group and have that many turns"
            )
        owners.append(owners[parent][:start] + [i] * (len(trajectory.turns) - start))
    return owners


def attribute(
    mode: str, groups: Sequence[Sequence[Trajectory]], advantages: Sequence[Sequence[Sequence[float]]]
) -> tuple[list[list[Trajectory]], list[list[list[float]]]]:
    """The trajectories to build the batch from and their per-turn advantages under ``mode``."""
    if mode == "soft":
        return [list(g) for g in groups], [[list(a) for a in g] for g in advantages]
    if mode != "hard":
        raise TrainerError(f"unknown ARPO attribution {mode!r}; choose 'soft' or 'hard'")
    out_groups, out_adv = [], []
    for group, group_adv in zip(groups, advantages, strict=True):
        owners = turn_owners(group)
        shared: dict[tuple[int, int], list[float]] = {}
        for i, traj_adv in enumerate(group_adv):
            for t, a in enumerate(traj_adv):
                shared.setdefault((owners[i][t], t), []).append(float(a))
        out_adv.append(
            [
                [sum(shared[(owners[i][t], t)]) / len(shared[(owners[i][t], t)]) for t in range(len(a))]
                for i, a in enumerate(group_adv)
            ]
        )
        out_groups.append([_count_own_turns(traj, owners[i], i) for i, traj in enumerate(group)])
    return out_groups, out_adv


def _count_own_turns(trajectory: Trajectory, owners: list[int], i: int) -> Trajectory:
    """``trajectory`` with the action tokens of turns another trajectory owns moved into the prompt
    (same token sequence, loss mask 0 on them)."""
    if all(o == i for o in owners):
        return trajectory
    pairs = zip(trajectory.turns, owners, strict=True)
    turns = tuple(turn if owner == i else _as_context(turn) for turn, owner in pairs)
    return replace(trajectory, turns=turns)


def _as_context(turn: Turn) -> Turn:
    return replace(
        turn,
        prompt_ids=(*turn.prompt_ids, *turn.action_ids),
        action_ids=(),
        action_logprobs=(),
        action_entropies=(),
    )
