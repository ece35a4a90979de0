"""One PPO update on a fixed global batch, in one process or as one rank of an FSDP2 learner.

Run as ``torchrun --nproc-per-node N fsdp_case.py OUT.pt [chunked|plain]``: every rank builds the
same model and batch, shards the model, runs :func:`~turngym.trainers.update.ppo_update` over the
whole batch (each rank its share of the micro-batches) with log-probs from the chunked head (the
default) or the full logits, and rank 0 saves the diagnostics and the full updated weights to
``OUT.pt``. :func:`run` is the same update in the calling process.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Any

import torch

from turngym.trainers.batching import TrainBatch, build_batch
from turngym.trainers.update import UpdateSettings, ppo_update
from turngym.trajectory import StopReason, Trajectory, Turn

SETTINGS = UpdateSettings(
    epochs=2, mini_batch_rows=3, micro_batch_rows=1, grad_clip=0.5, kl_coef=0.05, entropy_coef=0.01
)
"""Six trajectories: mini-batches of three, one trajectory per micro-batch, so with two ranks one
rank runs a zero-weighted pass in every mini-batch; a clip norm the gradients exceed; KL to
reference log-probs and an entropy bonus."""


def model() -> torch.nn.Module:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=48, hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=True,
    )  # fmt: skip
    torch.manual_seed(0)
    return Qwen2ForCausalLM(config)


def batch() -> TrainBatch:
    gen = torch.Generator().manual_seed(1)

    def ids(n: int) -> tuple[int, ...]:
        return tuple(torch.randint(1, 48, (n,), generator=gen).tolist())

    groups = []
    for g in range(2):
        group = []
        for k in range(3):
            lengths = [2 + (g + k + t) % 3 for t in range(2)]
            turns = tuple(
                Turn("o", "a", 0.0, "s", prompt_ids=ids(3 + t), action_ids=ids(n),
                     action_logprobs=(-2.0 - 0.1 * k,) * n)
                for t, n in enumerate(lengths)
            )  # fmt: skip
            group.append(Trajectory("toy", g, 0, turns, StopReason.LOST, False, "full"))
        groups.append(group)
    advantages = [[[1.0 - k, 0.5 * k - g] for k in range(3)] for g in range(2)]
    return build_batch(groups, advantages, pad_id=0)


def run(learner: torch.nn.Module, world: Any = None, head: str = "chunked") -> dict[str, float]:
    """The update every process runs (``world``: this rank's :class:`~turngym.trainers.distributed.World`;
    ``head``: ``chunked`` or ``plain`` log-probs)."""
    from turngym.trainers.distributed import World

    optimizer = torch.optim.AdamW(learner.parameters(), lr=1e-2, weight_decay=0.01)
    generator = torch.Generator().manual_seed(7)
    rows = batch()
    reference = rows.old_logprobs - 0.1 * rows.loss_mask
    return ppo_update(
        learner,
        optimizer,
        None,
        rows,
        SETTINGS if head == "chunked" else replace(SETTINGS, logprob_chunk_tokens=0),
        generator=generator,
        ref_logprobs=reference,
        world=world or World(),
    )


def main(out: str, head: str) -> None:
    from turngym.trainers.distributed import close_world, full_state_dict, init_world, shard

    torch.set_num_threads(1)
    world = init_world()
    learner = shard(model(), world)
    stats = run(learner, world, head)
    state = full_state_dict(learner)
    if world.main:
        torch.save({"stats": stats, "state": state, "world": world.size}, out)
    close_world(world)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "chunked")
