"""Supervised warm start: fine-tune the policy on its env's expert demonstrations.

Demos are real agent-loop episodes played by the env's expert solver (``ExpertPolicy``) through
the policy's own tokenizer and chat template, in the context mode training will use, so the
fine-tuned prompts are exactly those RL will see. The loss is the token-mean negative
log-likelihood of the expert's action tokens (loss mask 1); prompt and observation tokens carry no
loss. Demo tasks start at ``sft.task_offset`` in the ``train`` split, away from RL's tasks, and
held-out evaluation uses the ``test`` split.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from turngym.agents.hf import HFPolicy
from turngym.agents.loop import run_batch
from turngym.agents.scripted import ExpertPolicy
from turngym.errors import ConfigError
from turngym.trainers.batching import collate, trajectory_rows
from turngym.trainers.config import TrainConfig
from turngym.trainers.rollout import derive_seed, env_factory, loop_config

if TYPE_CHECKING:
    from turngym.agents.vllm import VLLMPolicy
from turngym.trainers.update import token_logprobs
from turngym.trajectory import Trajectory


def load_policy(config: TrainConfig) -> HFPolicy | VLLMPolicy:
    """The trainable policy of ``config.model`` (``tiny`` is built on first use).

    ``vllm:...`` samples with a vLLM engine and trains its ``transformers`` copy (on the CPU);
    ``update_weights({})`` pushes the trained weights into the engine.
    """
    backend, _, spec = config.model.model.partition(":")
    if spec == "tiny":
        from turngym.agents.tiny import ensure_tiny

        spec = str(ensure_tiny())
    if backend == "vllm":
        from turngym.agents.vllm import VLLMConfig, VLLMPolicy

        return VLLMPolicy(spec, VLLMConfig(trainable=True, seed=config.seed, dtype=config.model.dtype))
    return HFPolicy.from_pretrained(spec, device=config.model.device, dtype=config.model.dtype)


def expert_demos(tokenizer: Any, config: TrainConfig) -> list[Trajectory]:
    """``sft.demos`` expert episodes of training tasks (token-level, in the training context mode)."""
    s = config.sft
    jobs = [(s.task_offset + k, derive_seed(config.seed, 55, k)) for k in range(s.demos)]
    cfg = loop_config(
        config.rollout, config.env.env_id, temperature=1.0, seed=0, entropies=False, batch=max(len(jobs), 1)
    )
    return run_batch(env_factory(config, "train"), ExpertPolicy(tokenizer), tokenizer, jobs, cfg)


def supervised_finetune(
    model: torch.nn.Module, pad_id: int, demos: list[Trajectory], config: TrainConfig
) -> dict[str, float]:
    """``sft.steps`` AdamW steps of action-token NLL on random mini-batches of the demos' rows."""
    s = config.sft
    rows = [row for t in demos for row in trajectory_rows(t, [1.0] * len(t.turns))]
    if not rows and s.steps > 0:
        reasons = sorted({f"{t.stop_reason.value}: {t.metadata.get('error', '')}" for t in demos})
        raise ConfigError(
            f"sft: none of the {len(demos)} expert demos played a turn ({'; '.join(reasons)[:300]}); "
            "check sft.task_offset and sft.demos against the env's number of training tasks"
        )
    if not rows:
        return {"sft/steps": 0.0}
    optimizer = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(derive_seed(config.seed, 56))
    model.train()
    losses = []
    for _ in range(s.steps):
        pick = torch.randint(len(rows), (min(s.batch_rows, len(rows)),), generator=generator).tolist()
        batch = collate([rows[i] for i in pick], pad_id)
        m = config.model
        logp = token_logprobs(
            model, batch, chunk_tokens=m.logprob_chunk_tokens, vocab_chunk=m.logprob_vocab_chunk
        ).logprobs
        mask = batch.loss_mask.to(device=logp.device, dtype=logp.dtype)
        loss = -(logp * mask).sum() / mask.sum().clamp(min=1.0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
        optimizer.step()
        losses.append(float(loss.detach()))
    model.eval()
    return {
        "sft/steps": float(s.steps),
        "sft/demos": float(len(demos)),
        "sft/rows": float(len(rows)),
        "sft/loss_first": losses[0] if losses else 0.0,
        "sft/loss_last": losses[-1] if losses else 0.0,
    }


def run_sft(config: TrainConfig, out_dir: str | Path) -> tuple[Path, dict[str, float]]:
    """The ``turngym sft`` command: fine-tune and save a model directory usable as ``hf:DIR``."""
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.model.threads)
    policy = load_policy(config)
    demos = expert_demos(policy.tokenizer, config)
    stats = supervised_finetune(policy.model, policy.pad_id, demos, config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    policy.model.save_pretrained(out)
    policy.tokenizer.save_pretrained(out)
    return out, stats
