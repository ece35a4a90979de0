"""From trajectories and per-turn advantages to padded token tensors (:class:`TrainBatch`).

Rows. A ``full``-context trajectory is one row: the concatenation of every turn's
``prompt_ids + action_ids`` (exactly the sequence the policy saw). A ``window:k`` trajectory gives
one row per turn (each turn had its own prompt). Every position carries

* ``loss_mask`` 1 on the policy's sampled tokens, 0 on prompt / observation / padding tokens;
* ``advantage`` = the advantage of the turn the token belongs to (broadcast), 0 elsewhere;
* ``old_logprob`` = the sampling log-prob recorded by the agent loop (0 elsewhere).

Tensors are aligned with ``input_ids``: the log-prob of token j comes from the logits at j − 1, so
position 0 never carries loss. Padding happens here, after the advantages were computed; a row
without action tokens has an all-zero loss mask and enters neither a group's statistics nor the loss.

``seq_ids`` [B] names the trajectory of every row, so the loss aggregation and GSPO's sequence
ratio count trajectories, not rows, and both context modes weigh an episode the same
(``losses.aggregation``). :func:`sequence_chunks` cuts a batch into mini- or micro-batches of whole
trajectories: a trajectory split across two optimizer steps would have no well-defined per-sequence
mean, and GSPO needs all of its tokens in one forward pass.

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
    """Right-padded tensors of shape [B, T], and the trajectory id of every row."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    loss_mask: torch.Tensor
    advantages: torch.Tensor
    old_logprobs: torch.Tensor
    seq_ids: torch.Tensor = None  # type: ignore[assignment]  # filled in __post_init__
    """[B] long: rows with the same id are turns of one trajectory (default: one row each)."""
    tis_weights: torch.Tensor | None = None
    """[B, T] per-token weights of the policy loss (truncated importance sampling of partial
    rollouts, :mod:`turngym.trainers.losses.tis`); None: all 1."""

    def __post_init__(self) -> None:
        if self.seq_ids is None:
            object.__setattr__(self, "seq_ids", torch.arange(self.input_ids.shape[0]))
        elif self.seq_ids.shape != self.input_ids.shape[:1]:
            raise TrainerError(
                f"seq_ids has shape {tuple(self.seq_ids.shape)}; it needs one id per row "
                f"({self.input_ids.shape[0]} rows)"
            )

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
            seq_ids=self.seq_ids[index],
            tis_weights=None if self.tis_weights is None else self.tis_weights[index][:, :width],
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


def collate(rows: Sequence[TokenRow], pad_id: int, seq_ids: Sequence[int] | None = None) -> TrainBatch:
    """Right-pad ``rows`` into a :class:`TrainBatch` (``seq_ids``: each row's trajectory; default
    one trajectory per row)."""
    if not rows:
        raise TrainerError("cannot build a batch from zero rows")
    if seq_ids is not None and len(seq_ids) != len(rows):
        raise TrainerError(f"got {len(seq_ids)} sequence ids for {len(rows)} rows; pass one per row")
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
    seq = None if seq_ids is None else torch.tensor(list(seq_ids), dtype=torch.long)
    return TrainBatch(ids, attn, loss, adv, old, seq)


def build_batch(
    groups: Sequence[Sequence[Trajectory]], advantages: Sequence[Sequence[Sequence[float]]], pad_id: int
) -> TrainBatch:
    """Every trajectory's rows with its turns' advantages, right-padded; ``seq_ids`` numbers the
    trajectories 0, 1, ... in order (a trajectory's rows share its number)."""
    trajectories = [
        (traj, traj_adv)
        for group, group_adv in zip(groups, advantages, strict=True)
        for traj, traj_adv in zip(group, group_adv, strict=True)
    ]
    rows: list[TokenRow] = []
    seq_ids: list[int] = []
    for number, (traj, traj_adv) in enumerate(trajectories):
        made = trajectory_rows(traj, traj_adv)
        rows += made
        seq_ids += [number] * len(made)
    return collate(rows, pad_id, seq_ids)


def sequence_chunks(
    seq_ids: torch.Tensor, max_rows: int, *, generator: torch.Generator | None = None
) -> list[list[int]]:
    """Row indices in chunks of whole trajectories (mini- or micro-batches).

    Trajectories are taken in order of first appearance, or in a random order drawn from
    ``generator``; a chunk takes the next trajectory while it stays within ``max_rows`` rows, and a
    trajectory with more rows than that is a chunk of its own. One row per trajectory (``full``
    context) gives plain chunks of ``max_rows`` rows. Example: ids [0, 0, 1, 2, 2, 2], 3 rows →
    [[0, 1, 2], [3, 4, 5]].
    """
    if max_rows < 1:
        raise TrainerError(f"max_rows={max_rows}: a chunk needs room for at least one row")
    rows_of: dict[int, list[int]] = {}
    for row, seq in enumerate(seq_ids.tolist()):
        rows_of.setdefault(seq, []).append(row)
    order = list(rows_of.values())
    if generator is not None:
        order = [order[i] for i in torch.randperm(len(order), generator=generator).tolist()]
    chunks: list[list[int]] = []
    for rows in order:
        if chunks and len(chunks[-1]) + len(rows) <= max_rows:
            chunks[-1] += rows
        else:
            chunks.append(list(rows))
    return chunks


def token_budget_chunks(
    seq_ids: torch.Tensor,
    lengths: torch.Tensor,
    max_tokens: int,
    *,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """Row indices in chunks of whole trajectories whose padded size fits ``max_tokens``.

    A chunk's cost is what its forward pass computes: rows × the longest row (``lengths`` [B] are
    the rows' real lengths). Trajectories are taken longest first (by their longest row; ties in
    order of first appearance, or shuffled by ``generator`` before the stable sort), so rows of
    similar length share a chunk and little padding is computed; a chunk takes the next trajectory
    while the padded size stays within ``max_tokens``, and a trajectory over the budget alone is
    a chunk of its own. Example: one row per trajectory, lengths [3, 9, 4, 8], budget 18 →
    [[1, 3], [2, 0]] (costs 2 × 9 = 18 and 2 × 4 = 8; adding row 2 to the first would cost 27).
    """
    if max_tokens < 1:
        raise TrainerError(f"max_tokens={max_tokens}: a micro-batch needs room for at least one token")
    rows_of: dict[int, list[int]] = {}
    for row, seq in enumerate(seq_ids.tolist()):
        rows_of.setdefault(seq, []).append(row)
    order = list(rows_of.values())
    if generator is not None:
        order = [order[i] for i in torch.randperm(len(order), generator=generator).tolist()]
    size = lengths.tolist()
    order.sort(key=lambda rows: -max(size[r] for r in rows))
    chunks: list[list[int]] = []
    width = 0
    for rows in order:
        longest = max(size[r] for r in rows)
        if chunks and (len(chunks[-1]) + len(rows)) * max(width, longest) <= max_tokens:
            chunks[-1] += rows
            width = max(width, longest)
        else:
            chunks.append(list(rows))
            width = longest
    return chunks


def informative_groups(groups: Sequence[Sequence[Trajectory]], tol: float = 1e-9) -> list[int]:
    """Indices of the groups whose trajectory returns are not all equal (dynamic sampling)."""
    keep = []
    for g, group in enumerate(groups):
        returns = [t.total_reward for t in group]
        if returns and max(returns) - min(returns) > tol:
            keep.append(g)
    return keep
