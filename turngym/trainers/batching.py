"""From trajectories and per-turn advantages to padded token tensors (:class:`TrainBatch`).

Rows. A ``full``-context trajectory is one row: the concatenation of every turn's
``prompt_ids + action_ids`` (exactly the sequence the policy saw). A ``window:k`` trajectory gives
one row per turn (each turn had its own prompt). Every position carries

* ``loss_mask`` 1 on the policy's sampled tokens, 0 on prompt / observation / padding tokens;
* ``advantage`` = the advantage of the turn the token belongs to (broadcast), 0 elsewhere;
* ``old_logprob`` = the sampling log-prob recorded by the agent loop (0 elsewhere).

Tensors are aligned with ``input_ids``: the log-prob of token j comes from the logits at j − 1, so
position 0 never carries loss. Padding happens here, after the advantages were computed, and pad
rows (``pad_rows``) have an all-zero loss mask, so they never enter a group's statistics or the
loss (the research note's warning about verl-agent's duplicated rows).

Dynamic sampling (DAPO): :func:`informative_groups` keeps the groups whose trajectories do not all
have the same return (those give every trajectory a zero group-relative advantage).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from turngym.errors import TrainerError
from turngym.trajectory import Trajectory


@dataclass(frozen=True)
class TokenRow:
    """One training sequence before padding."""

    input_ids: tuple[int, ...]
    loss_mask: tuple[int, ...]
    advantages: tuple[float, ...]
    old_logprobs: tuple[float, ...]


@dataclass(frozen=True)
class TrainBatch:
    """Right-padded tensors, all of shape [B, T]."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    loss_mask: torch.Tensor
    advantages: torch.Tensor
    old_logprobs: torch.Tensor

    @property
    def num_rows(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def num_loss_tokens(self) -> int:
        return int(self.loss_mask.sum())

    def select(self, rows: Sequence[int] | slice) -> TrainBatch:
        """The sub-batch of ``rows`` (trailing all-padding columns removed)."""
        index = rows if isinstance(rows, slice) else torch.as_tensor(list(rows), dtype=torch.long)
        attn = self.attention_mask[index]
        width = max(int(attn.sum(dim=-1).max()) if attn.numel() else 1, 1)
        return TrainBatch(
            *(t[index][:, :width] for t in (self.input_ids, self.attention_mask, self.loss_mask)),
            advantages=self.advantages[index][:, :width],
            old_logprobs=self.old_logprobs[index][:, :width],
        )


def trajectory_rows(trajectory: Trajectory, turn_advantages: Sequence[float]) -> list[TokenRow]:
    """The token rows of one trajectory (one row in ``full`` mode, one per turn in ``window:k``)."""
    if len(turn_advantages) != len(trajectory.turns):
        raise TrainerError(
            f"got {len(turn_advantages)} advantages for a trajectory of {len(trajectory.turns)} turns"
        )
    pieces: list[TokenRow] = []
    for turn, adv in zip(trajectory.turns, turn_advantages, strict=True):
        if turn.action_ids and len(turn.action_logprobs) != len(turn.action_ids):
            raise TrainerError(
                "a turn has action tokens without their log-probs; roll out with a token policy"
            )
        n_prompt, n_action = len(turn.prompt_ids), len(turn.action_ids)
        pieces.append(
            TokenRow(
                input_ids=(*turn.prompt_ids, *turn.action_ids),
                loss_mask=(0,) * n_prompt + (1,) * n_action,
                advantages=(0.0,) * n_prompt + (float(adv),) * n_action,
                old_logprobs=(0.0,) * n_prompt + tuple(turn.action_logprobs),
            )
        )
    if trajectory.context_mode != "full":
        return [p for p in pieces if p.input_ids]
    joined = TokenRow(
        input_ids=tuple(i for p in pieces for i in p.input_ids),
        loss_mask=tuple(i for p in pieces for i in p.loss_mask),
        advantages=tuple(a for p in pieces for a in p.advantages),
        old_logprobs=tuple(a for p in pieces for a in p.old_logprobs),
    )
    return [joined] if joined.input_ids else []


def pad_rows(rows: Sequence[TokenRow], multiple: int, pad_id: int) -> list[TokenRow]:
    """``rows`` plus all-masked one-token rows up to a multiple of ``multiple``."""
    missing = (-len(rows)) % multiple
    return [*rows, *(TokenRow((pad_id,), (0,), (0.0,), (0.0,)) for _ in range(missing))]


def collate(rows: Sequence[TokenRow], pad_id: int) -> TrainBatch:
    """Right-pad ``rows`` into a :class:`TrainBatch`."""
    if not rows:
        raise TrainerError("cannot build a batch from zero rows")
    width = max(len(r.input_ids) for r in rows)
    batch = len(rows)
    ids = torch.full((batch, width), pad_id, dtype=torch.long)
    attn = torch.zeros((batch, width), dtype=torch.long)
    loss = torch.zeros((batch, width), dtype=torch.long)
    adv = torch.zeros((batch, width), dtype=torch.float32)
    old = torch.zeros((batch, width), dtype=torch.float32)
    for i, r in enumerate(rows):
        n = len(r.input_ids)
        ids[i, :n] = torch.tensor(r.input_ids)
        attn[i, :n] = 1
        loss[i, :n] = torch.tensor(r.loss_mask)
        adv[i, :n] = torch.tensor(r.advantages)
        old[i, :n] = torch.tensor(r.old_logprobs)
    loss[:, 0] = 0  # nothing predicts the first token
    return TrainBatch(ids, attn, loss, adv, old)


def build_batch(
    groups: Sequence[Sequence[Trajectory]], advantages: Sequence[Sequence[Sequence[float]]], pad_id: int
) -> TrainBatch:
    """Every trajectory's rows with its turns' advantages, right-padded."""
    rows = [
        row
        for group, group_adv in zip(groups, advantages, strict=True)
        for traj, traj_adv in zip(group, group_adv, strict=True)
        for row in trajectory_rows(traj, traj_adv)
    ]
    return collate(rows, pad_id)


def informative_groups(groups: Sequence[Sequence[Trajectory]], tol: float = 1e-9) -> list[int]:
    """Indices of the groups whose trajectory returns are not all equal (dynamic sampling)."""
    keep = []
    for g, group in enumerate(groups):
        returns = [t.total_reward for t in group]
        if returns and max(returns) - min(returns) > tol:
            keep.append(g)
    return keep
