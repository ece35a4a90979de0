"""The hf backend under the asynchronous loop: a prompt new to the prefix cache joins a reused one."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from turngym.agents.hf import HFPolicy, sequence_logprobs
from turngym.agents.policy import SamplingParams


@pytest.mark.parametrize("text", ["a new episode starts with this rather long observation, longer", "go"])
def test_a_prompt_new_to_the_cache_runs_apart_and_merges_with_exact_logprobs(
    tiny_dir: Any, text: str
) -> None:
    policy = HFPolicy.from_pretrained(tiny_dir, num_threads=1)
    tok = policy.tokenizer
    prompts = [tok.encode(t, add_special_tokens=False) for t in ("a long first prompt here", "hi")]
    params = SamplingParams(temperature=0.9, max_new_tokens=5, seed=3)
    first = policy.generate(prompts, params)
    extended = prompts[0] + list(first[0].token_ids) + tok.encode("\nok", add_special_tokens=False)
    newcomer = tok.encode(text, add_special_tokens=False)  # wider / narrower than the cached rows
    before = policy.prefilled_tokens
    second = policy.generate([newcomer, extended], params)
    assert policy.cache_hits == 1
    # the continuing row runs only its new tokens, the newcomer its whole prompt
    assert policy.prefilled_tokens - before == len(newcomer) + len(extended) - len(prompts[0]) - (
        len(first[0].token_ids) - 1
    )
    for prompt, completion in zip([newcomer, extended], second, strict=True):
        reference = sequence_logprobs(policy.model, prompt, completion.token_ids, 0.9)
        assert torch.allclose(torch.tensor(completion.logprobs), reference, atol=1e-4, rtol=0)
    # the merged cache serves the next turn of both rows
    third = [p + list(c.token_ids) + [5, 6] for p, c in zip([newcomer, extended], second, strict=True)]
    hits = policy.cache_hits
    again = policy.generate(third, params)
    assert policy.cache_hits == hits + 1
    for prompt, completion in zip(third, again, strict=True):
        reference = sequence_logprobs(policy.model, prompt, completion.token_ids, 0.9)
        assert torch.allclose(torch.tensor(completion.logprobs), reference, atol=1e-4, rtol=0)
    policy.prefix_cache = False
    policy.clear_prefix_cache()
    alone = policy.generate([newcomer, extended], params)
    assert [c.token_ids for c in alone] == [c.token_ids for c in second]


def test_no_prompt_extending_the_cache_means_no_reuse(tiny_dir: Any) -> None:
    policy = HFPolicy.from_pretrained(tiny_dir, num_threads=1)
    params = SamplingParams(temperature=0, max_new_tokens=3)
    policy.generate([[5, 6, 7]], params)
    policy.generate([[8, 9, 10, 11]], params)
    assert policy.cache_hits == 0
