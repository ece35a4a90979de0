"""The columnar view of grouped trajectories that every credit estimator reads: :class:`StepBatch`.

One row per step (turn) of every trajectory, sorted by (trajectory, turn). Anchors and actions are
interned to integers once, when the batch is built, so the estimators themselves are vectorized
NumPy over flat arrays (GiGPO on 10^6 steps runs in a fraction of a second). Two builders exist
and give identical batches for the same steps, which is what makes the estimators independent of
the storage layout (research note §0: step rows vs trajectory rows vs a padded grid):

* :meth:`StepBatch.from_groups` — ``groups[g][i]`` is trajectory ``i`` of group ``g``.
* :meth:`StepBatch.from_rows` — :class:`StepRow` records in any order (one per step, as a
  step-per-row trainer stores them); trajectories are ordered by first appearance within a group.

Shared helpers used by several estimators live here too: discounted returns-to-go
``G_t = r_t + γ·G_{t+1}`` per trajectory and grouped mean/std normalization.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from turngym.errors import TrainerError
from turngym.trajectory import Trajectory

EPS = 1e-6
"""Added to every standard deviation before dividing (as the reference code does)."""


@dataclass(frozen=True)
class StepRow:
    """One step stored on its own (the step-row layout)."""

    group: Hashable
    trajectory: Hashable
    turn: int
    reward: float
    anchor: Hashable = None
    action: str = ""
    entropy: float = math.nan


@dataclass(frozen=True)
class StepBatch:
    """Flat per-step arrays (length S) plus per-trajectory arrays (length N), steps sorted by
    (trajectory, turn); trajectories numbered group by group."""

    group: np.ndarray
    """int64 [S]: group index of each step."""
    traj: np.ndarray
    """int64 [S]: trajectory index of each step."""
    turn: np.ndarray
    """int64 [S]: 0-based turn index within its trajectory."""
    reward: np.ndarray
    """float64 [S]: immediate reward."""
    anchor_id: np.ndarray
    """int64 [S]: interned (group, anchor) pair — equal anchors inside one group share an id; the
    same anchor in two groups gets two ids (step-groups never cross groups)."""
    action_id: np.ndarray
    """int64 [S]: interned action text."""
    entropy: np.ndarray
    """float64 [S]: mean token entropy of the step's action (NaN when unknown)."""
    anchors: tuple[Hashable, ...]
    """``anchors[anchor_id[s]]`` is step s's anchor."""
    traj_group: np.ndarray
    """int64 [N]: group of each trajectory."""
    traj_start: np.ndarray
    """int64 [N]: index of each trajectory's first step."""
    traj_len: np.ndarray
    """int64 [N]: number of steps of each trajectory."""
    traj_keys: tuple[Hashable, ...]
    """The caller's key of each trajectory ((g, i) for :meth:`from_groups`)."""

    @property
    def num_steps(self) -> int:
        return int(self.reward.shape[0])

    @property
    def num_trajectories(self) -> int:
        return int(self.traj_len.shape[0])

    @property
    def num_groups(self) -> int:
        return int(self.traj_group.max()) + 1 if self.num_trajectories else 0

    @property
    def episode_return(self) -> np.ndarray:
        """float64 [N]: R_i = Σ_t r_{i,t}."""
        return np.bincount(self.traj, weights=self.reward, minlength=self.num_trajectories)

    @property
    def is_last(self) -> np.ndarray:
        """bool [S]: the step is its trajectory's last."""
        return self.turn == self.traj_len[self.traj] - 1

    @classmethod
    def from_groups(cls, groups: Sequence[Sequence[Trajectory]]) -> StepBatch:
        """Build from ``groups[g][i]``; a turn's mean action entropy fills :attr:`entropy`."""
        rows = (
            StepRow(
                g,
                (g, i),
                t,
                float(turn.reward),
                turn.anchor,
                turn.action,
                float(np.mean(turn.action_entropies)) if turn.action_entropies else math.nan,
            )
            for g, group in enumerate(groups)
            for i, traj in enumerate(group)
            for t, turn in enumerate(traj.turns)
        )
        members = [(g, (g, i)) for g, group in enumerate(groups) for i in range(len(group))]
        return cls.from_rows(rows, members=members, _sorted=True)

    @classmethod
    def from_rows(
        cls,
        rows: Iterable[StepRow],
        *,
        members: Sequence[tuple[Hashable, Hashable]] = (),
        _sorted: bool = False,
    ) -> StepBatch:
        """Build from step rows in any order. Raises :class:`TrainerError` when a trajectory's
        turns are not exactly ``0..T-1`` or it appears in two groups.

        ``members`` lists ``(group, trajectory)`` pairs that exist even when they have no step (an
        episode that ended before its first action): such a trajectory gets ``traj_len`` 0 and
        return 0, counts in its group's statistics and receives an empty list in :meth:`split`.
        """
        rows = list(rows)
        number, traj_keys, traj_group = _number_trajectories(
            (*members, *((r.group, r.trajectory) for r in rows))
        )
        traj = np.fromiter((number[r.trajectory] for r in rows), np.int64, len(rows))
        turn = np.fromiter((r.turn for r in rows), np.int64, len(rows))
        perm = np.arange(len(rows)) if _sorted else np.lexsort((turn, traj))
        traj, turn = traj[perm], turn[perm]
        ordered = [rows[k] for k in perm]
        traj_len = np.bincount(traj, minlength=len(traj_keys)).astype(np.int64)
        traj_start = np.concatenate(([0], np.cumsum(traj_len)[:-1])).astype(np.int64)
        expected = np.arange(len(rows)) - traj_start[traj] if len(rows) else turn
        if not np.array_equal(turn, expected):
            bad = int(np.flatnonzero(turn != expected)[0])
            raise TrainerError(
                f"trajectory {traj_keys[traj[bad]]!r} has turn {int(turn[bad])} where turn "
                f"{int(expected[bad])} was expected; every trajectory needs turns 0..T-1, each once"
            )
        anchor_id, anchor_keys = _intern(((r.group, r.anchor) for r in ordered), len(rows))
        action_id, _ = _intern((r.action for r in ordered), len(rows))
        return cls(
            group=traj_group[traj] if len(rows) else np.zeros(0, np.int64),
            traj=traj,
            turn=turn,
            reward=np.fromiter((r.reward for r in ordered), np.float64, len(rows)),
            anchor_id=anchor_id,
            action_id=action_id,
            entropy=np.fromiter((r.entropy for r in ordered), np.float64, len(rows)),
            anchors=tuple(anchor for _, anchor in anchor_keys),
            traj_group=traj_group,
            traj_start=traj_start,
            traj_len=traj_len,
            traj_keys=traj_keys,
        )

    def split(self, values: np.ndarray) -> list[list[list[float]]]:
        """Per-step ``values`` as ``[group][trajectory][turn]`` floats (``[]`` for a trajectory
        without steps)."""
        out: list[list[list[float]]] = [[] for _ in range(self.num_groups)]
        flat = values.tolist()
        for n in range(self.num_trajectories):
            start = int(self.traj_start[n])
            out[int(self.traj_group[n])].append(flat[start : start + int(self.traj_len[n])])
        return out


def _number_trajectories(
    pairs: Iterable[tuple[Hashable, Hashable]],
) -> tuple[dict[Hashable, int], tuple[Hashable, ...], np.ndarray]:
    """Number the trajectories of ``(group, trajectory)`` pairs group by group, in first-appearance
    order inside a group: (each trajectory key's number, the keys in number order, the group of each
    number). Raises :class:`TrainerError` when a trajectory appears in two groups."""
    group_ids: dict[Hashable, int] = {}
    traj_ids: dict[Hashable, int] = {}
    traj_group_list: list[int] = []
    for group, trajectory in pairs:
        g = group_ids.setdefault(group, len(group_ids))
        if trajectory not in traj_ids:
            traj_ids[trajectory] = len(traj_ids)
            traj_group_list.append(g)
        elif traj_group_list[traj_ids[trajectory]] != g:
            raise TrainerError(
                f"trajectory {trajectory!r} appears in groups {group!r} and another one; "
                "each trajectory must belong to exactly one group"
            )
    order = sorted(range(len(traj_group_list)), key=lambda j: (traj_group_list[j], j))
    renumber = np.empty(len(order), dtype=np.int64)
    renumber[order] = np.arange(len(order))
    keys_by_old = list(traj_ids)
    number = {key: int(renumber[old]) for key, old in traj_ids.items()}
    traj_group = np.asarray([traj_group_list[j] for j in order], dtype=np.int64)
    return number, tuple(keys_by_old[j] for j in order), traj_group


def _intern(keys: Iterable[Hashable], count: int) -> tuple[np.ndarray, list[Hashable]]:
    """int64 [count]: the id of each of ``count`` keys, numbered by first appearance; and the
    distinct keys in id order."""
    index: dict[Hashable, int] = {}
    ids = np.fromiter((index.setdefault(key, len(index)) for key in keys), np.int64, count)
    return ids, list(index)


def dense_keys(keys: np.ndarray) -> np.ndarray:
    """Non-negative integer keys small enough to index a ``bincount`` (equal keys stay equal).

    Keys that already are small non-negative integers are used as they are (no sort: linear
    time); others are renumbered with ``np.unique``.
    """
    if keys.size and keys.dtype.kind in "iu" and keys.min() >= 0 and keys.max() < 4 * keys.size + 64:
        return keys
    return np.unique(keys, return_inverse=True)[1].reshape(-1)


def returns_to_go(batch: StepBatch, gamma: float) -> np.ndarray:
    """float64 [S]: G_{i,t} = Σ_{k≥t} γ^{k−t} r_{i,k}, within each trajectory."""
    g = batch.reward.astype(np.float64).copy()
    if batch.num_steps == 0:
        return g
    from_end = batch.traj_len[batch.traj] - 1 - batch.turn
    if from_end.max() < np.iinfo(np.int16).max:
        from_end = from_end.astype(np.int16)  # NumPy's stable sort is a linear radix sort on int16
    order = np.argsort(from_end, kind="stable")
    counts = np.bincount(from_end)
    bounds = np.cumsum(counts)
    for depth in range(1, len(counts)):
        idx = order[bounds[depth - 1] : bounds[depth]]
        g[idx] += gamma * g[idx + 1]
    return g


def group_normalize(
    values: np.ndarray,
    keys: np.ndarray,
    *,
    normalize_std: bool,
    singleton: str = "raw",
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """(x − mean_k)/(std_k + ε) (or x − mean_k) within each key; std is Bessel-corrected.

    ``weights`` (counts per value) turn the statistics into weighted ones (GiGPO's step-weighted
    episode statistics). A key with a single (weighted) member gets mean 0 and std 1 when
    ``singleton="raw"`` (verl: A = x) or advantage 0 when ``singleton="zero"``.
    """
    if values.size == 0:
        return values.astype(np.float64)
    inv = dense_keys(keys)
    w = np.ones_like(values, dtype=np.float64) if weights is None else weights.astype(np.float64)
    count = np.bincount(inv, weights=w)
    with np.errstate(invalid="ignore", divide="ignore"):  # unused key slots hold 0/0
        mean = np.bincount(inv, weights=w * values) / count
    dev = values - mean[inv]
    single = count[inv] <= 1
    if normalize_std:
        ss = np.bincount(inv, weights=w * dev * dev)
        std = np.sqrt(ss / np.maximum(count - 1, 1))
        out = dev / (std[inv] + EPS)
    else:
        out = dev
    if singleton == "raw":
        return np.where(single, values, out)
    if singleton == "zero":
        return np.where(single, 0.0, out)
    raise ValueError(f"singleton must be 'raw' or 'zero', got {singleton!r}")
