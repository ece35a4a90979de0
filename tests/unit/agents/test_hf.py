"""The hf backend: exact log-probs under padding, seeded determinism, stops, weights updates."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from turngym.agents.hf import HFPolicy, sequence_logprobs
from turngym.agents.policy import SamplingParams, TrainablePolicy
from turngym.errors import ConfigError, PolicyError


def _prompts(tokenizer: Any) -> list[list[int]]:
    texts = ["hello", "You are in the library. Exits: south, east. The treasure is 2 rooms west.", "go"]
    return [tokenizer.encode(t, add_special_tokens=False) for t in texts]


def test_is_a_trainable_policy(tiny_policy: HFPolicy) -> None:
    assert isinstance(tiny_policy, TrainablePolicy)


@pytest.mark.parametrize("temperature", [1.0, 0.7, 0.0])
def test_logprobs_match_a_separate_forward_pass_with_padding(
    tiny_policy: HFPolicy, temperature: float
) -> None:
    prompts = _prompts(tiny_policy.tokenizer)
    assert len({len(p) for p in prompts}) == 3  # rows of different lengths: the batch is left-padded
    params = SamplingParams(n=2, temperature=temperature, max_new_tokens=12, seed=5)
    completions = tiny_policy.generate(prompts, params)
    assert len(completions) == 6
    for i, completion in enumerate(completions):
        assert len(completion.token_ids) == len(completion.logprobs) > 0
        reference = sequence_logprobs(tiny_policy.model, prompts[i // 2], completion.token_ids, temperature)
        assert torch.allclose(torch.tensor(completion.logprobs), reference, atol=1e-4, rtol=0)


def test_same_seed_same_tokens_other_seed_other_tokens(tiny_policy: HFPolicy) -> None:
    prompts = _prompts(tiny_policy.tokenizer)
    a = tiny_policy.generate(prompts, SamplingParams(max_new_tokens=10, seed=1))
    b = tiny_policy.generate(prompts, SamplingParams(max_new_tokens=10, seed=1))
    c = tiny_policy.generate(prompts, SamplingParams(max_new_tokens=10, seed=2))
    assert [x.token_ids for x in a] == [x.token_ids for x in b]
    assert [x.token_ids for x in a] != [x.token_ids for x in c]


def test_greedy_equals_a_tiny_nucleus(tiny_policy: HFPolicy) -> None:
    prompts = _prompts(tiny_policy.tokenizer)
    greedy = tiny_policy.generate(prompts, SamplingParams(temperature=0, max_new_tokens=8))
    nucleus = tiny_policy.generate(prompts, SamplingParams(top_p=1e-6, max_new_tokens=8, seed=9))
    assert [g.token_ids for g in greedy] == [n.token_ids for n in nucleus]
    with torch.no_grad():
        first = tiny_policy.model(torch.tensor([prompts[0]])).logits[0, -1]
    assert greedy[0].token_ids[0] == int(first.argmax())


def test_entropies_and_top_logprobs(tiny_policy: HFPolicy) -> None:
    prompt = _prompts(tiny_policy.tokenizer)[1]
    params = SamplingParams(temperature=0.5, max_new_tokens=4, seed=3, entropies=True, top_logprobs=3)
    (completion,) = tiny_policy.generate([prompt], params)
    with torch.no_grad():
        logits = tiny_policy.model(torch.tensor([prompt])).logits[0, -1].float() / 0.5
    dist = torch.log_softmax(logits, -1)
    expected_entropy = float(-(dist.exp() * dist).sum())
    assert math.isclose(completion.entropies[0], expected_entropy, abs_tol=1e-4)
    top = completion.top_logprobs[0]
    assert [t for t, _ in top] == dist.topk(3).indices.tolist()
    assert all(math.isclose(lp, float(dist[t]), abs_tol=1e-5) for t, lp in top)
    assert len(completion.entropies) == len(completion.top_logprobs) == len(completion.token_ids)


def test_stops_at_eos_and_reports_length_otherwise(tiny_policy: HFPolicy) -> None:
    eos = next(iter(tiny_policy.eos_ids))
    with torch.no_grad():  # make the end-of-turn token overwhelmingly likely
        bias = torch.zeros(tiny_policy.model.config.vocab_size)
        bias[eos] = 50.0
        original = tiny_policy.model.lm_head.bias
        tiny_policy.model.lm_head.bias = torch.nn.Parameter(bias)
        try:
            (done,) = tiny_policy.generate([[5, 6]], SamplingParams(max_new_tokens=5, seed=0))
        finally:
            tiny_policy.model.lm_head.bias = original
    assert done.token_ids == (eos,) and done.finish_reason == "stop" and done.text == ""
    (cut,) = tiny_policy.generate([[5, 6]], SamplingParams(temperature=0, max_new_tokens=3))
    assert cut.finish_reason == "length" and len(cut.token_ids) == 3


def test_stop_strings_end_a_sample(tiny_policy: HFPolicy) -> None:
    (free,) = tiny_policy.generate([[5, 6, 7]], SamplingParams(temperature=0, max_new_tokens=12))
    stop = tiny_policy.tokenizer.decode(free.token_ids[2:4])
    (stopped,) = tiny_policy.generate(
        [[5, 6, 7]], SamplingParams(temperature=0, max_new_tokens=12, stop=(stop,))
    )
    assert stopped.finish_reason == "stop"
    assert stop in tiny_policy.tokenizer.decode(stopped.token_ids)
    assert stopped.token_ids == free.token_ids[: len(stopped.token_ids)] and len(stopped.token_ids) <= 4


def test_update_weights_changes_samples_and_bumps_version(tiny_dir: Any) -> None:
    policy = HFPolicy.from_pretrained(tiny_dir, num_threads=1)
    before = policy.generate([[5, 6, 7]], SamplingParams(temperature=0, max_new_tokens=6))
    state = {k: v * 3 for k, v in policy.model.state_dict().items() if k.endswith("mlp.down_proj.weight")}
    policy.update_weights(state)
    assert policy.version == 1
    assert torch.equal(
        policy.model.state_dict()["model.layers.0.mlp.down_proj.weight"],
        state["model.layers.0.mlp.down_proj.weight"],
    )
    after = policy.generate([[5, 6, 7]], SamplingParams(temperature=0, max_new_tokens=6))
    assert before[0].logprobs != pytest.approx(after[0].logprobs, abs=1e-3)
    with pytest.raises(ConfigError, match="unknown parameter names"):
        policy.update_weights({"nope.weight": torch.zeros(1)})
    norm = policy.model.state_dict()["model.norm.weight"].clone()
    with pytest.raises(ConfigError, match="has shape"):  # nothing is copied when any entry is wrong
        policy.update_weights({"model.norm.weight": norm + 1, "model.embed_tokens.weight": torch.zeros(3)})
    assert policy.version == 1
    assert torch.equal(policy.model.state_dict()["model.norm.weight"], norm)


def test_bad_inputs(tiny_policy: HFPolicy) -> None:
    assert tiny_policy.generate([], SamplingParams()) == []
    with pytest.raises(PolicyError, match="empty prompt"):
        tiny_policy.generate([[]], SamplingParams())
    with pytest.raises(ConfigError, match="top_p"):
        SamplingParams(top_p=0)
    with pytest.raises(ConfigError, match="temperature"):
        SamplingParams(temperature=-1)


def test_prefix_reuse_keeps_logprobs_exact_and_skips_the_history(tiny_dir: Any) -> None:
    policy = HFPolicy.from_pretrained(tiny_dir, num_threads=1)
    tok = policy.tokenizer
    prompts = [tok.encode(t, add_special_tokens=False) for t in ("a long first prompt here", "hi")]
    params = SamplingParams(temperature=0.9, max_new_tokens=6, seed=1)
    first = policy.generate(prompts, params)
    # The next prompts extend each sequence by its whole sample and a differently long observation.
    observations = [tok.encode(t, add_special_tokens=False) for t in ("\nok", "\nyou are in the hall now")]
    extended = [p + list(c.token_ids) + o for p, c, o in zip(prompts, first, observations, strict=True)]
    extended.reverse()  # rows may come back in any order
    before = policy.prefilled_tokens
    second = policy.generate(extended, params)
    assert policy.cache_hits == 1
    assert policy.prefilled_tokens - before == sum(len(o) + 1 for o in observations)  # new tokens only
    for prompt, completion in zip(extended, second, strict=True):
        reference = sequence_logprobs(policy.model, prompt, completion.token_ids, 0.9)
        assert torch.allclose(torch.tensor(completion.logprobs), reference, atol=1e-4, rtol=0)
    policy.prefix_cache = False
    policy.clear_prefix_cache()
    policy.generate(prompts, params)
    fresh = policy.generate(extended, params)
    assert [c.token_ids for c in fresh] == [c.token_ids for c in second] and policy.cache_hits == 1


def test_prompts_that_only_share_a_prefix_reuse_it(tiny_dir: Any) -> None:
    """ARPO's next round: the parent goes on after its action and a tool result, its copy re-samples
    the parent's last prompt, a fresh rollout starts from a prompt sharing only the head."""
    policy = HFPolicy.from_pretrained(tiny_dir, num_threads=1)
    tok = policy.tokenizer
    prompt = tok.encode("you are in the hall now, go north", add_special_tokens=False)
    params = SamplingParams(temperature=0.9, max_new_tokens=5, seed=4)
    (first,) = policy.generate([prompt], params, seeds=[11])
    policy.prefix_match = "longest"
    result = tok.encode("\nResult: 42", add_special_tokens=False)
    fresh = prompt[:3] + tok.encode(" kitchen", add_special_tokens=False)
    rows = [prompt + list(first.token_ids) + result, prompt, fresh]
    before = policy.prefilled_tokens
    second = policy.generate(rows, params, seeds=[12, 11, 13])
    assert policy.cache_hits == 1
    # new tokens only: the parent's last sampled token and the result, the copy's last prompt
    # token, the fresh prompt after the 3 tokens it shares
    assert policy.prefilled_tokens - before == (1 + len(result)) + 1 + (len(fresh) - 3)
    for row, completion in zip(rows, second, strict=True):
        reference = sequence_logprobs(policy.model, row, completion.token_ids, 0.9)
        assert torch.allclose(torch.tensor(completion.logprobs), reference, atol=1e-4, rtol=0)
    assert second[1].token_ids == first.token_ids  # same seed and prompt: the same sample
    policy.prefix_match = "extend"  # the default: only rows that extend a cached sequence reuse it
    before = policy.prefilled_tokens
    policy.generate(rows, params, seeds=[12, 11, 13])
    assert policy.cache_hits == 2
    # the parent's row extends the copy's cached sequence (the same sample, all but its last
    # token); the copy's and the fresh prompt extend nothing and run whole
    assert policy.prefilled_tokens - before == (1 + len(result)) + len(prompt) + len(fresh)


def test_changed_weights_drop_the_cache(tiny_dir: Any) -> None:
    policy = HFPolicy.from_pretrained(tiny_dir, num_threads=1)
    params = SamplingParams(temperature=0, max_new_tokens=3)
    (c,) = policy.generate([[5, 6, 7]], params)
    with torch.no_grad():
        policy.model.model.norm.weight.mul_(2.0)  # an optimizer step in place, no update_weights
    policy.generate([[5, 6, 7, *c.token_ids, 9]], params)
    assert policy.cache_hits == 0


def test_sampling_runs_in_eval_mode_and_restores_training_mode(tiny_dir: Any) -> None:
    policy = HFPolicy.from_pretrained(tiny_dir, num_threads=1)
    seen: list[bool] = []
    policy.model.register_forward_pre_hook(lambda module, args: seen.append(module.training))
    policy.model.train()
    policy.generate([[5, 6]], SamplingParams(max_new_tokens=2, seed=0))
    assert seen and not any(seen)
    assert policy.model.training


def test_prefill_computes_logits_of_the_last_position_only(tiny_dir: Any) -> None:
    """A real vocabulary makes [B, T, V] prefill logits the biggest tensor of a call (64 prompts of
    1k tokens at 152k vocab: 39 GB in fp32): only the last position's are computed."""
    policy = HFPolicy.from_pretrained(tiny_dir, num_threads=1)
    shapes: list[tuple[int, ...]] = []
    policy.model.lm_head.register_forward_hook(lambda module, args, out: shapes.append(tuple(out.shape)))
    prompts = _prompts(policy.tokenizer)
    policy.generate(prompts, SamplingParams(max_new_tokens=3, seed=0))
    vocab = policy.model.config.vocab_size
    assert shapes[0] == (3, 1, vocab) and all(s[1] == 1 for s in shapes)
