"""The hf sampler's cache internals: length groups, in-place appends, rows kept across calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import MistralConfig, MistralForCausalLM

from turngym.agents.hf import HFPolicy, sequence_logprobs
from turngym.agents.kv import RoomyLayer, reserve, stack_rows
from turngym.agents.policy import SamplingParams
from turngym.agents.prefix_cache import CachedRow, PrefixStore, Reuse, length_groups, shared_heads


def test_length_groups_hand_example() -> None:
    assert length_groups([1000, 120, 900, 100, 70]) == [[0, 2], [1, 3, 4]]
    assert length_groups([100, 40]) == [[0, 1]]  # 60 tokens apart: cheaper to pad than to split
    assert length_groups([300, 100, 45]) == [[0], [1, 2]]  # 45 is under half of 100 but within 64
    assert length_groups([5, 5, 5]) == [[0, 1, 2]]
    assert length_groups([]) == []


def _row(tokens: list[int]) -> CachedRow:
    kv = torch.zeros(1, len(tokens), 2)
    return CachedRow(tuple(tokens), ((kv, kv),))


def test_extend_reuses_the_longest_kept_row_the_prompt_extends() -> None:
    store = PrefixStore()
    # a shared head first, then the whole row of the previous turn, then an unrelated row
    store.put([_row([1, 2]), _row([1, 2, 3, 4]), _row([9, 9, 9, 9, 9])], stamp="w")
    got = store.match([[1, 2, 3, 4, 5], [1, 2, 7], [1, 2, 3, 4], [8]], "extend", "w")
    assert got == [Reuse(1, 4), Reuse(0, 2), Reuse(0, 2), Reuse(-1, 0)]
    assert store.match([[1, 2, 3, 4, 5]], "extend", "other weights") == [Reuse(-1, 0)]


def test_stack_rows_right_aligns_each_cache_with_room_after() -> None:
    def cache(rows: int, width: int, value: float) -> Any:
        keys = torch.full((rows, 1, width, 2), value)
        return stack_rows([_OneLayer(keys)], room=0)

    merged = stack_rows([cache(1, 3, 1.0), cache(2, 5, 2.0)], room=4)
    layer = merged.layers[0]
    assert layer.keys.shape == (3, 1, 5, 2) and layer.room == 4
    assert layer.keys[0, 0, :, 0].tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]  # the narrow one, left-padded
    assert layer.keys[1:, 0, :, 0].eq(2.0).all()


class _OneLayer:
    """A stand-in cache of one layer whose keys and values are ``keys``."""

    def __init__(self, keys: torch.Tensor) -> None:
        self.layers = [RoomyLayer(keys, keys.clone(), keys.shape[-2])]


def test_roomy_layer_appends_what_cat_would() -> None:
    torch.manual_seed(0)
    keys, values = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
    layer = RoomyLayer.around(keys, values, room=3)
    steps = [(torch.randn(2, 3, 1, 5), torch.randn(2, 3, 1, 5)) for _ in range(5)]
    expect_k, expect_v = keys, values
    for k, v in steps:  # the last two overflow the room: the layer falls back to cat
        got_k, got_v = layer.update(k, v)
        expect_k, expect_v = torch.cat([expect_k, k], -2), torch.cat([expect_v, v], -2)
        assert torch.equal(got_k, expect_k) and torch.equal(got_v, expect_v)
    assert layer.room == 0 and layer.get_seq_length() == 9


def test_assigning_keys_gives_the_room_up() -> None:
    layer = RoomyLayer.around(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), room=4)
    assert layer.room == 4
    layer.keys = layer.keys.index_select(0, torch.tensor([0]))
    assert layer.room == 0
    k, _ = layer.update(torch.ones(1, 1, 1, 2), torch.ones(1, 1, 1, 2))
    assert k.shape == (1, 1, 3, 2) and k[0, 0, 2].tolist() == [1.0, 1.0]


def test_reserve_keeps_layers_with_enough_room() -> None:
    class Cache:
        def __init__(self) -> None:
            self.layers = [RoomyLayer.around(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), room=5)]

    cache = Cache()
    first = cache.layers[0]
    reserve(cache, 5)
    assert cache.layers[0] is first
    reserve(cache, 6)
    assert cache.layers[0] is not first and cache.layers[0].room == 6


def _record_widths(policy: HFPolicy) -> tuple[list[tuple[int, int]], torch.utils.hooks.RemovableHandle]:
    shapes: list[tuple[int, int]] = []
    handle = policy.model.register_forward_pre_hook(
        lambda module, args, kwargs: shapes.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True
    )
    return shapes, handle


def test_a_long_prompt_does_not_pad_the_short_ones(tiny_dir: Path) -> None:
    policy = HFPolicy.from_pretrained(tiny_dir, num_threads=1)
    tok = policy.tokenizer
    long = tok.encode("go north and then east and then look around. " * 20, add_special_tokens=False)
    short = [tok.encode(t, add_special_tokens=False) for t in ("hello", "go west")]
    assert len(long) > 200 and max(len(s) for s in short) < 10
    params = SamplingParams(temperature=0.9, max_new_tokens=5, seed=3)
    shapes, handle = _record_widths(policy)
    together = policy.generate([short[0], long, short[1]], params, seeds=[1, 2, 3])
    handle.remove()
    prefills = [s for s in shapes if s[1] > 1]
    assert sorted(prefills) == sorted([(1, len(long)), (2, max(len(s) for s in short))])
    policy.clear_prefix_cache()
    rows = [short[0], long, short[1]]
    alone = [policy.generate([p], params, seeds=[s])[0] for p, s in zip(rows, [1, 2, 3], strict=True)]
    assert [c.token_ids for c in together] == [c.token_ids for c in alone]
    for prompt, completion in zip(rows, together, strict=True):
        reference = sequence_logprobs(policy.model, prompt, completion.token_ids, 0.9)
        assert torch.allclose(torch.tensor(completion.logprobs), reference, atol=1e-4, rtol=0)


def test_rows_of_different_groups_are_all_kept_for_the_next_call(tiny_dir: Path) -> None:
    policy = HFPolicy.from_pretrained(tiny_dir, num_threads=1)
    tok = policy.tokenizer
    prompts = [
        tok.encode("look " * 150, add_special_tokens=False),
        tok.encode("hi", add_special_tokens=False),
    ]
    params = SamplingParams(temperature=0.9, max_new_tokens=4, seed=8)
    first = policy.generate(prompts, params)
    observation = tok.encode("\nyou see a door", add_special_tokens=False)
    nxt = [p + list(c.token_ids) + observation for p, c in zip(prompts, first, strict=True)]
    nxt.reverse()
    before = policy.prefilled_tokens
    second = policy.generate(nxt, params)
    assert policy.cache_hits == 1
    assert policy.prefilled_tokens - before == 2 * (1 + len(observation))  # new tokens only
    for prompt, completion in zip(nxt, second, strict=True):
        reference = sequence_logprobs(policy.model, prompt, completion.token_ids, 0.9)
        assert torch.allclose(torch.tensor(completion.logprobs), reference, atol=1e-4, rtol=0)


def test_a_sliding_window_model_samples_exactly_and_keeps_no_rows(
    tiny_tokenizer: Any, tmp_path: Path
) -> None:
    """A sliding-window layer keeps only its window of keys, not one column per token: such caches
    are never kept for reuse (the next call runs its prompts whole) and sampling stays exact."""
    config = MistralConfig(
        vocab_size=len(tiny_tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        sliding_window=6,
        pad_token_id=tiny_tokenizer.pad_token_id,
        eos_token_id=tiny_tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    MistralForCausalLM(config).save_pretrained(tmp_path / "mistral")
    tiny_tokenizer.save_pretrained(tmp_path / "mistral")
    policy = HFPolicy.from_pretrained(tmp_path / "mistral", num_threads=1)
    prompt = tiny_tokenizer.encode("go north then east then look around the hall", add_special_tokens=False)
    assert len(prompt) > 6
    params = SamplingParams(temperature=0.9, max_new_tokens=4, seed=1)
    (first,) = policy.generate([prompt], params)
    (second,) = policy.generate([prompt + list(first.token_ids) + prompt[:3]], params)
    assert policy.cache_hits == 0
    for row, completion in ((prompt, first), (prompt + list(first.token_ids) + prompt[:3], second)):
        reference = sequence_logprobs(policy.model, row, completion.token_ids, 0.9)
        assert torch.allclose(torch.tensor(completion.logprobs), reference, atol=1e-4, rtol=0)


def test_shared_heads_hand_example() -> None:
    rows = [[1, 2, 3, 4, 5, 6], [9, 9], [1, 2, 3, 4, 5, 7, 8], [1, 2, 8]]
    assert shared_heads(rows, min_shared=2) == [([0, 2], 5)]
    assert shared_heads(rows, min_shared=6) == []
    # three tasks x four copies behind one system prompt: each task's copies share all of it
    system = [7] * 30
    group = [[*system, *[task] * 40, k] for task in (1, 2, 3) for k in range(4)]
    assert shared_heads(group, min_shared=16) == [
        ([0, 1, 2, 3], 70),
        ([4, 5, 6, 7], 70),
        ([8, 9, 10, 11], 70),
    ]
    assert shared_heads([[5] * 20, [5] * 20], min_shared=16) == [([0, 1], 19)]  # one token left to run


def test_a_group_of_copies_runs_its_prompt_once(tiny_dir: Path) -> None:
    policy = HFPolicy.from_pretrained(tiny_dir, num_threads=1)
    tok = policy.tokenizer
    prompt = tok.encode("You are in the library. Exits: south, east. Where now?", add_special_tokens=False)
    assert len(prompt) > 16
    params = SamplingParams(temperature=0.9, max_new_tokens=4, seed=0)
    seeds = [10, 11, 12, 13]
    before = policy.prefilled_tokens
    together = policy.generate([prompt] * 4, params, seeds=seeds)
    assert policy.prefilled_tokens - before == len(prompt) - 1 + 4  # the head once, each last token
    policy.clear_prefix_cache()
    policy.prefix_cache = False
    alone = [policy.generate([prompt], params, seeds=[s])[0] for s in seeds]
    assert [c.token_ids for c in together] == [c.token_ids for c in alone]
    for completion in together:
        reference = sequence_logprobs(policy.model, prompt, completion.token_ids, 0.9)
        assert torch.allclose(torch.tensor(completion.logprobs), reference, atol=1e-4, rtol=0)


def test_finished_rows_leave_the_running_decode(tiny_dir: Path) -> None:
    """Three rows stop at their first token: the decode goes on with the fourth row alone instead
    of feeding them padding, and every row's numbers stay those of the row sampled alone."""
    policy = HFPolicy.from_pretrained(tiny_dir, num_threads=1)
    tok = policy.tokenizer
    greedy = SamplingParams(temperature=0, max_new_tokens=8)
    first = tok.encode("You are in the library. Where now?", add_special_tokens=False)
    (lead,) = policy.generate([first], greedy)
    stop_token = lead.token_ids[0]
    others = ["go", "north", "the hall", "a key", "east of here", "look"]
    other = next(
        ids
        for ids in (tok.encode(t, add_special_tokens=False) for t in others)
        if stop_token not in policy.generate([ids], greedy)[0].token_ids
    )
    policy.eos_ids = policy.eos_ids | {stop_token}
    policy.clear_prefix_cache()
    shapes, handle = _record_widths(policy)
    together = policy.generate([first, first, first, other], greedy)
    handle.remove()
    assert [c.token_ids for c in together[:3]] == [(stop_token,)] * 3
    assert all(c.finish_reason == "stop" for c in together[:3])
    decode_rows = [rows for rows, width in shapes if width == 1]
    assert decode_rows and set(decode_rows) == {1}  # the finished rows were dropped at once
    policy.clear_prefix_cache()
    (alone,) = policy.generate([other], greedy)
    assert together[3].token_ids == alone.token_ids and len(alone.token_ids) == 8
    reference = sequence_logprobs(policy.model, other, alone.token_ids, 0.0)
    assert torch.allclose(torch.tensor(together[3].logprobs), reference, atol=1e-4, rtol=0)
