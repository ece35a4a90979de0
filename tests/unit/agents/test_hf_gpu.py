"""The hf backend on a CUDA GPU: the same exactness guarantees as on CPU (skipped without a GPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from turngym.agents.hf import HFPolicy, sequence_logprobs
from turngym.agents.loop import run_group
from turngym.agents.policy import LoopConfig, SamplingParams
from turngym.envs import make

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def gpu_policy(tiny_dir: Path) -> HFPolicy:
    return HFPolicy.from_pretrained(tiny_dir, device="cuda")


def test_cuda_logprobs_match_a_forward_pass_with_padding_and_reuse(gpu_policy: HFPolicy) -> None:
    tok = gpu_policy.tokenizer
    prompts = [tok.encode(t, add_special_tokens=False) for t in ("hi", "You are in the hall. Exits: north.")]
    params = SamplingParams(n=2, temperature=0.7, max_new_tokens=10, seed=3)
    first = gpu_policy.generate(prompts, params)
    again = gpu_policy.generate(prompts, params)
    assert [c.token_ids for c in first] == [c.token_ids for c in again]
    for i, completion in enumerate(first):
        reference = sequence_logprobs(gpu_policy.model, prompts[i // 2], completion.token_ids, 0.7).cpu()
        assert torch.allclose(torch.tensor(completion.logprobs), reference, atol=1e-4, rtol=0)


def test_cuda_full_mode_rollouts_stay_exact(gpu_policy: HFPolicy) -> None:
    config = LoopConfig(sampling=SamplingParams(max_new_tokens=6, seed=1))
    trajs = run_group(
        lambda: make("turngym/Maze-v0", max_turns=3), gpu_policy, gpu_policy.tokenizer, 0, 0, 4, config
    )
    hits = gpu_policy.cache_hits
    assert hits >= 2  # turns 2 and 3 reused the cache
    for traj in trajs:
        ids, consumed = traj.token_ids, 0
        for turn in traj.turns:
            consumed += len(turn.prompt_ids)
            reference = sequence_logprobs(gpu_policy.model, ids[:consumed], turn.action_ids).cpu()
            assert torch.allclose(torch.tensor(turn.action_logprobs), reference, atol=1e-4, rtol=0)
            consumed += len(turn.action_ids)
