"""ARPO: the note's fixture (branch probabilities, attribution), the branching rollout's budget rule
over random entropy sequences, loss masks of branched copies, and hard vs soft gradients."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from turngym.agents.hf import HFPolicy, load_tokenizer_and_model, sequence_logprobs
from turngym.agents.policy import Completion, LoopConfig, SamplingParams
from turngym.agents.tiny import build_tiny
from turngym.envs import make
from turngym.envs.core import StepOutcome
from turngym.envs.toy.calculator import CalculatorEnv
from turngym.errors import ConfigError
from turngym.trainers import advantages as credit
from turngym.trainers.arpo import ArpoConfig, branch_probability, global_samples, segment_entropy
from turngym.trainers.arpo.attribution import attribute, turn_owners
from turngym.trainers.arpo.metrics import arpo_metrics, tool_call_metrics, tool_calls
from turngym.trainers.arpo.rollout import run_branching
from turngym.trainers.batching import build_batch
from turngym.trainers.config_load import load_config
from turngym.trainers.update import UpdateSettings, minibatch_loss, token_logprobs
from turngym.trajectory import StopReason, Trajectory, Turn

CALC = "turngym/Calculator-v0"
TOOL = '<tool_call>{"name": "calculator", "arguments": {"expression": "1 + 1"}}</tool_call>'
ANSWER = "<answer>2</answer>"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("cache") / "tiny")


@pytest.fixture(scope="module")
def tokenizer(tiny_dir: Path) -> Any:
    return load_tokenizer_and_model(tiny_dir)[0]


@dataclass
class EntropyScript:
    """A policy whose reply and first-token entropy are functions of the call's seed and turn.

    The first position's top log-probs are uniform over ``spread(seed, turn)`` tokens, the others
    are one token of probability 1, so a segment's H is log(spread) / log|V|.
    """

    tokenizer: Any
    reply: Callable[[int], str]
    spread: Callable[[int, int], int]
    name: str = "entropy-script"
    prompts: list[list[int]] = field(default_factory=list)

    def generate(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams, seeds: Sequence[int] | None = None
    ) -> list[Completion]:
        assert seeds is not None and params.top_logprobs > 0
        out = []
        for prompt, seed in zip(prompts, seeds, strict=True):
            self.prompts.append(list(prompt))
            ids = [
                *self.tokenizer.encode(self.reply(seed), add_special_tokens=False),
                self.tokenizer.eos_token_id,
            ]
            turn = self.tokenizer.decode(prompt).count("<|im_start|>assistant") - 1
            n = self.spread(seed, turn)
            top = (tuple((j, -math.log(n)) for j in range(n)), *(((i, 0.0),) for i in ids[1:]))
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            out.append(Completion(tuple(ids), (0.0,) * len(ids), text, "stop", top_logprobs=top))
        return out


class Draws:
    """Injected uniforms, consumed in order (the branching rollout's ``rng``)."""

    def __init__(self, values: Sequence[float]) -> None:
        self.values, self.used = list(values), 0

    def random(self) -> float:
        value = self.values[self.used % len(self.values)]
        self.used += 1
        return value


def _loop(max_new_tokens: int = 64) -> LoopConfig:
    sampling = SamplingParams(max_new_tokens=max_new_tokens, seed=3, top_logprobs=10)
    return LoopConfig(sampling=sampling, max_context_tokens=4096, env_id=CALC)


def _calc(max_turns: int = 4) -> Callable[[], Any]:
    return lambda: make(CALC, max_turns=max_turns)


# ---- the note's fixture (§3.4) and the pure functions --------------------------------------------
def test_branch_probability_fixture() -> None:
    assert branch_probability(0.5, 0.5, 0.2) == pytest.approx(0.6)
    assert branch_probability(-0.5, 0.5, 0.2) == pytest.approx(0.4)
    assert branch_probability(3.0, 0.5, 0.2) == 1.0
    assert branch_probability(-9.0, 0.5, 0.2) == 0.0
    # AEPO's consecutive-branch penalty: (1 - p)^l on top
    assert branch_probability(0.5, 0.5, 0.2, streak=2, penalty=0.5) == pytest.approx(0.15)


def test_segment_entropy_sums_the_first_k_positions() -> None:
    half = ((1, math.log(0.5)), (2, math.log(0.5)))
    assert segment_entropy([half, half], k=20, vocab_size=4) == pytest.approx(1.0)  # 2 log 2 / log 4
    assert segment_entropy([half, half, half], k=2, vocab_size=4) == pytest.approx(1.0)  # a sum over k
    assert segment_entropy([((7, 0.0),)], k=20, vocab_size=4) == 0.0


def test_global_samples() -> None:
    assert global_samples(8, 1.0, 1.0, beta=1.0) == 4
    assert global_samples(8, 3.0, 1.0, beta=1.0) == round(8 / (1 + math.exp(-2)))  # 7
    assert global_samples(8, -50.0, 0.0, beta=1.0) == 1  # never below one global sample


def _traj(reward: float, actions: Sequence[tuple[int, ...]], meta: dict[str, Any]) -> Trajectory:
    turns = tuple(
        Turn(
            "obs",
            "a",
            reward if t == len(actions) - 1 else 0.0,
            None,
            {},
            (100 + t, 101 + t),
            ids,
            (-0.5,) * len(ids),
        )
        for t, ids in enumerate(actions)
    )
    stop = StopReason.WON if reward else StopReason.LOST
    return Trajectory(CALC, 0, 0, turns, stop, won=bool(reward), metadata={"arpo": meta})


def _fixture_group() -> list[Trajectory]:
    """Rewards [1, 0, 1, 0]; trajectory 1 branched from 0 at turn 1 (turn 0 shared)."""
    shared = (5, 6)
    return [
        _traj(1.0, [shared, (7,)], {"parent": None, "branch_turn": None}),
        _traj(0.0, [shared, (8,)], {"parent": 0, "branch_turn": 1}),
        _traj(1.0, [(9, 9), (7,)], {"parent": None, "branch_turn": None}),
        _traj(0.0, [(9, 8), (8,)], {"parent": None, "branch_turn": None}),
    ]


def test_attribution_fixture() -> None:
    group = _fixture_group()
    adv = credit.compute("grpo", [group])
    assert [a[0] for a in adv[0]] == pytest.approx([0.866, -0.866, 0.866, -0.866], abs=1e-3)
    assert turn_owners(group) == [[0, 0], [0, 1], [2, 2], [3, 3]]
    (soft_group,), (soft,) = attribute("soft", [group], adv)
    # soft: the two copies of the shared turn carry +A and -A and cancel in the first update
    assert soft[0][0] + soft[1][0] == pytest.approx(0.0, abs=1e-9)
    (hard_group,), (hard,) = attribute("hard", [group], adv)
    assert hard[0][0] == pytest.approx(0.0) and hard[1][0] == pytest.approx(0.0)
    assert hard[0][1] == pytest.approx(0.866, abs=1e-3) and hard[1][1] == pytest.approx(-0.866, abs=1e-3)
    assert hard[2] == soft[2]
    # hard counts the shared turn once: only its owner (trajectory 0) trains on it
    batch = build_batch([hard_group], [hard], pad_id=0)
    assert batch.input_ids[1, :5].tolist() == [100, 101, 5, 6, 101]  # same tokens as the parent
    assert batch.loss_mask[0, :5].tolist() == [0, 0, 1, 1, 0]
    assert batch.loss_mask[1, :5].tolist() == [0, 0, 0, 0, 0]
    soft_batch = build_batch([soft_group], [soft], pad_id=0)
    assert soft_batch.loss_mask[1, :5].tolist() == [0, 0, 1, 1, 0]


def test_metrics_count_every_sampled_segment_once() -> None:
    group = _fixture_group()
    entropies = [[0.2, 0.6], [0.2, 0.1], [0.4, 0.4], [0.3, 0.9]]  # trajectory 1 shares turn 0
    kinds = ["initial", "branch", "initial", "fill"]
    group = [
        replace(t, metadata={"arpo": {**t.metadata["arpo"], "entropy": h, "kind": k}})
        for t, h, k in zip(group, entropies, kinds, strict=True)
    ]
    m = arpo_metrics([group])
    assert m["arpo/trajectories"] == 4 and m["arpo/branches"] == 1 and m["arpo/fill_rollouts"] == 1
    assert m["arpo/entropy_initial"] == pytest.approx((0.2 + 0.4 + 0.3) / 3)
    assert m["arpo/entropy_after_tool"] == pytest.approx((0.6 + 0.1 + 0.4 + 0.9) / 4)
    assert m["arpo/entropy_delta"] == pytest.approx((0.4 - 0.1 + 0.0 + 0.6) / 4)
    # two turns each; the winners (0, 2) and losers end with their answer: one tool call each
    assert tool_call_metrics([group]) == {
        "rollout/tool_calls_per_trajectory": 1.0,
        "rollout/tool_calls_per_correct": 2.0,
    }


def test_attribution_rejects_a_parent_after_its_child() -> None:
    group = _fixture_group()
    group[0] = replace(group[0], metadata={"arpo": {"parent": 1, "branch_turn": 1}})
    with pytest.raises(Exception, match="parent must come earlier"):
        turn_owners(group)


# ---- the branching rollout ------------------------------------------------------------------------
REPLIES = (TOOL, ANSWER, "hello")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    spreads=st.lists(st.integers(1, 10), min_size=1, max_size=12),
    replies=st.lists(st.sampled_from(REPLIES), min_size=1, max_size=8),
    draws=st.lists(st.floats(0, 0.999), min_size=1, max_size=10),
    budget=st.integers(2, 7),
    initial_share=st.floats(0, 1),
    alpha=st.floats(0, 1),
    beta=st.floats(-2, 2),
    beam=st.integers(2, 4),
    dynamic=st.booleans(),
)
def test_budget_is_filled_exactly_and_never_exceeded(
    tokenizer: Any,
    spreads: list[int],
    replies: list[str],
    draws: list[float],
    budget: int,
    initial_share: float,
    alpha: float,
    beta: float,
    beam: int,
    dynamic: bool,
) -> None:
    initial = 1 + round(initial_share * (budget - 1))
    arpo = ArpoConfig(initial=initial, alpha=alpha, beta=beta, beam=beam, dynamic_budget=dynamic, k=4)
    policy = EntropyScript(
        tokenizer, lambda s: replies[s % len(replies)], lambda s, t: spreads[(s >> 7) % len(spreads)]
    )
    groups = run_branching(
        _calc(3), policy, tokenizer, [(1, 11), (2, 22)], _loop(), arpo, budget=budget, rng=Draws(draws)
    )
    assert [len(g) for g in groups] == [budget, budget]
    for group in groups:
        kinds = [t.metadata["arpo"]["kind"] for t in group]
        assert [t.metadata["arpo"]["id"] for t in group] == list(range(budget))
        assert kinds.count("initial") <= budget and kinds[0] == "initial"
        if not dynamic:
            assert kinds[:initial] == ["initial"] * initial and "initial" not in kinds[initial:]
        for traj in group:
            assert not traj.stop_reason.is_failure, traj.metadata.get("error")
            info = traj.metadata["arpo"]
            assert len(info["entropy"]) == len(traj.turns)
            if info["parent"] is None:
                continue
            parent, b = group[info["parent"]], info["branch_turn"]
            assert info["parent"] < info["id"] and b >= 1
            assert traj.turns[:b] == parent.turns[:b]  # the shared prefix, token for token
            assert traj.turns[b].prompt_ids == parent.turns[b].prompt_ids  # the tool result
            assert info["h_initial"] == parent.metadata["arpo"]["h_initial"]
    metrics = arpo_metrics(groups)
    assert metrics["arpo/trajectories"] == budget == metrics["arpo/trajectories_max"]


def test_injected_draws_decide_branches_and_copies_share_the_context(tokenizer: Any) -> None:
    # every segment after a tool result has the entropy of the first one (spread 4): dH = 0, P = alpha
    policy = EntropyScript(tokenizer, lambda s: TOOL, lambda s, t: 4)
    arpo = ArpoConfig(initial=1, alpha=0.6, beta=0.0, beam=2)
    # draws: 0.59 < 0.6 branches at the parent's first node, 0.61 at its second and at the copy's
    # next node do not; the copy does not branch again at the node it was made at
    groups = run_branching(
        _calc(3), policy, tokenizer, [(4, 44)], _loop(), arpo, budget=3, rng=Draws([0.59, 0.61, 0.61])
    )
    (group,) = groups
    kinds = [t.metadata["arpo"]["kind"] for t in group]
    assert kinds == ["initial", "branch", "fill"]
    copy = group[1].metadata["arpo"]
    assert copy["parent"] == 0 and copy["branch_turn"] == 1
    # the copy's first prompt was exactly the parent's prompt of turn 1 (its context up to the result)
    parent_context = [
        *group[0].turns[0].prompt_ids,
        *group[0].turns[0].action_ids,
        *group[0].turns[1].prompt_ids,
    ]
    assert group[1].token_ids[: len(parent_context)] == tuple(parent_context)
    # sampled from by the parent, the copy and the fill rollout (which replays the same replies)
    assert policy.prompts.count(parent_context) == 3
    assert tool_calls(group[0]) == 3  # three calculator calls, the episode truncated after them
    assert Trajectory.from_dict(group[1].to_dict()) == group[1]  # the tree survives JSONL


def test_entropy_state_belongs_to_one_batch(tokenizer: Any) -> None:
    # P = clip(0 + 100·dH, 0, 1): branch exactly when a segment is more uncertain than the first one
    arpo = ArpoConfig(initial=2, alpha=0.0, beta=100.0)
    flat = EntropyScript(tokenizer, lambda s: TOOL, lambda s, t: 9)
    (first,) = run_branching(_calc(3), flat, tokenizer, [(1, 1)], _loop(), arpo, budget=4, rng=Draws([0.5]))
    assert [t.metadata["arpo"]["kind"] for t in first] == ["initial", "initial", "fill", "fill"]
    # the next batch starts at spread 2 and rises to 9: measured against its own H_initial it branches
    # (a table of H_initial kept from the batch before, as the reference code keeps it, would not)
    rising = EntropyScript(tokenizer, lambda s: TOOL, lambda s, t: 2 if t == 0 else 9)
    (second,) = run_branching(
        _calc(3), rising, tokenizer, [(1, 1)], _loop(), arpo, budget=4, rng=Draws([0.5])
    )
    assert [t.metadata["arpo"]["kind"] for t in second] == ["initial", "initial", "branch", "branch"]
    h0 = math.log(2) / math.log(len(tokenizer))
    assert all(t.metadata["arpo"]["h_initial"] == pytest.approx(h0) for t in second)


def test_tool_result_tokens_have_loss_mask_zero_in_copies(tokenizer: Any) -> None:
    arpo = ArpoConfig(initial=1, alpha=1.0, beta=0.0)
    (group,) = run_branching(
        _calc(3),
        EntropyScript(tokenizer, lambda s: TOOL if s % 3 else ANSWER, lambda s, t: 3),
        tokenizer,
        [(2, 5)],
        _loop(),
        arpo,
        budget=4,
        rng=Draws([0.0]),
    )
    copies = [i for i, t in enumerate(group) if t.metadata["arpo"]["parent"] is not None]
    assert copies
    adv = credit.compute("grpo", [group])
    for mode in ("soft", "hard"):
        groups, advantages = attribute(mode, [group], adv)
        batch = build_batch(groups, advantages, pad_id=0)
        for i in copies:
            traj, b = group[i], group[i].metadata["arpo"]["branch_turn"]
            mask = batch.loss_mask[i].tolist()
            at = 0
            for t, turn in enumerate(traj.turns):
                prompt = range(at, at + len(turn.prompt_ids))
                action = range(prompt.stop, prompt.stop + len(turn.action_ids))
                assert not any(mask[j] for j in prompt)  # observations and tool results: never trained
                own = mode == "soft" or t >= b
                assert all(mask[j] == own for j in action)
                at = action.stop


def test_a_copy_whose_replay_diverges_is_an_env_error(tokenizer: Any) -> None:
    made = iter(range(100))

    class Drifting(CalculatorEnv):
        """Stamps every observation with the env's serial number: replay cannot reproduce it."""

        def __init__(self) -> None:
            super().__init__(max_turns=3)
            self.serial = next(made)

        def _step(self, action: str) -> StepOutcome:
            outcome = super()._step(action)
            return replace(outcome, observation=f"{outcome.observation} (env {self.serial})")

    arpo = ArpoConfig(initial=1, alpha=1.0, beta=0.0)
    (group,) = run_branching(
        Drifting,
        EntropyScript(tokenizer, lambda s: TOOL, lambda s, t: 3),
        tokenizer,
        [(1, 1)],
        _loop(),
        arpo,
        budget=2,
        rng=Draws([0.0]),
    )
    assert group[1].stop_reason is StopReason.ENV_ERROR
    assert "deterministic" in group[1].metadata["error"]


def test_arpo_config_errors() -> None:
    with pytest.raises(ConfigError, match="attribution"):
        load_config(None, ["rollout.strategy=arpo", "rollout.arpo.attribution=medium"])
    with pytest.raises(ConfigError, match="initial=9"):
        load_config(None, ["rollout.strategy=arpo", "rollout.arpo.initial=9"])
    with pytest.raises(ConfigError, match="strategy"):
        load_config(None, ["rollout.strategy=beam"])
    cfg = load_config(None, ["rollout.strategy=arpo", "rollout.arpo.budget=6"])
    assert cfg.rollout.arpo.budget_of(cfg.rollout.group_size) == 6
    assert cfg.rollout.arpo.initial_of(cfg.rollout.group_size) == 3


@pytest.mark.parametrize(("root", "tool", "globals_"), [(9, 2, 4), (2, 9, 1)])
def test_pre_monitoring_splits_the_budget(tokenizer: Any, root: int, tool: int, globals_: int) -> None:
    """AEPO: the first trajectory of a task runs alone; m = M·σ(β·(H_root − mean H_tool)) global
    samples in all, branches (and fills) for the rest. β = 100 pushes σ to 0 or 1."""
    arpo = ArpoConfig(dynamic_budget=True, budget_beta=100.0, alpha=1.0, beta=0.0)
    script = EntropyScript(tokenizer, lambda s: TOOL, lambda s, t: root if t == 0 else tool)
    (group,) = run_branching(_calc(3), script, tokenizer, [(3, 3)], _loop(), arpo, budget=4, rng=Draws([0.0]))
    kinds = [t.metadata["arpo"]["kind"] for t in group]
    assert kinds.count("initial") == globals_ and len(group) == 4
    assert group[0].metadata["arpo"]["parent"] is None
    assert all(t.metadata["arpo"]["parent"] != 0 for t in group[1:])  # the probe never branches


def test_consecutive_branch_penalty(tokenizer: Any) -> None:
    """AEPO: with p = 1 a path that just branched cannot branch at its next node, then can again."""
    arpo = ArpoConfig(initial=1, alpha=1.0, beta=0.0, branch_penalty=1.0)
    script = EntropyScript(tokenizer, lambda s: TOOL, lambda s, t: 3)
    (group,) = run_branching(_calc(4), script, tokenizer, [(3, 3)], _loop(), arpo, budget=8, rng=Draws([0.0]))
    children_of_0 = [t.metadata["arpo"]["branch_turn"] for t in group if t.metadata["arpo"]["parent"] == 0]
    assert children_of_0 == [1, 3]  # nodes at turns 1, 2, 3: branch, penalised, branch
    without = replace(arpo, branch_penalty=0.0)
    (free,) = run_branching(
        _calc(4), script, tokenizer, [(3, 3)], _loop(), without, budget=8, rng=Draws([0.0])
    )
    assert [t.metadata["arpo"]["branch_turn"] for t in free if t.metadata["arpo"]["parent"] == 0] == [1, 2, 3]


def test_draws_come_from_the_injected_generator(tokenizer: Any) -> None:
    arpo = ArpoConfig(initial=1, alpha=0.5, beta=0.0)

    def tree(seed: int) -> list[tuple[str, Any]]:
        script = EntropyScript(tokenizer, lambda s: TOOL, lambda s, t: 3)
        rng = np.random.default_rng(seed)
        (group,) = run_branching(_calc(4), script, tokenizer, [(1, 1)], _loop(), arpo, budget=5, rng=rng)
        return [(t.metadata["arpo"]["kind"], t.metadata["arpo"]["parent"]) for t in group]

    trees = {seed: tree(seed) for seed in range(6)}
    assert tree(0) == trees[0]  # the same draws give the same tree
    assert len({tuple(t) for t in trees.values()}) > 1  # and the draws decide it


def test_branching_with_the_tiny_model_reuses_its_kv_cache(tiny_dir: Path) -> None:
    """Every round after the first reuses the previous call's cache (copies re-sample a cached
    prompt, parents extend theirs), and the log-probs stay those of a plain forward pass."""
    policy = HFPolicy.from_pretrained(tiny_dir, num_threads=1)
    calls: list[int] = []
    generate = policy.generate
    policy.generate = lambda *args, **kwargs: calls.append(1) or generate(*args, **kwargs)  # type: ignore[method-assign]
    arpo = ArpoConfig(initial=2, alpha=1.0, beta=0.0)

    class Echo(CalculatorEnv):
        """Every action is a valid tool call (the untrained model's text included)."""

        def _step(self, action: str) -> StepOutcome:
            return StepOutcome(f"Result: {len(action)}")

    env = lambda: Echo(max_turns=3)  # noqa: E731
    loop = _loop(max_new_tokens=3)
    groups = run_branching(env, policy, policy.tokenizer, [(0, 1)], loop, arpo, budget=4, rng=Draws([0.0]))
    assert [len(g) for g in groups] == [4]
    assert any(t.metadata["arpo"]["kind"] == "branch" for g in groups for t in g)
    assert len(calls) > 3 and policy.cache_hits == len(calls) - 1
    for traj in (t for g in groups for t in g if t.metadata["arpo"]["parent"] is not None):
        b = traj.metadata["arpo"]["branch_turn"]
        prompt = [i for turn in traj.turns[:b] for i in (*turn.prompt_ids, *turn.action_ids)]
        prompt += traj.turns[b].prompt_ids
        reference = sequence_logprobs(policy.model, prompt, traj.turns[b].action_ids)
        assert torch.allclose(torch.tensor(traj.turns[b].action_logprobs), reference, atol=1e-4, rtol=0)


# ---- hard vs soft on the tiny model --------------------------------------------------------------
def _flat_grad(model: Any) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def _trainer_grad(model: Any, batch: Any) -> torch.Tensor:
    """The gradient the trainer's PPO loss (token-mean) takes on ``batch``."""
    model.zero_grad(set_to_none=True)
    minibatch_loss(model, batch, UpdateSettings(mini_batch_rows=8, micro_batch_rows=8))
    return _flat_grad(model)


def _summed_grad(model: Any, batch: Any, mask: torch.Tensor) -> torch.Tensor:
    """∇ of −Σ A·log π over the tokens of ``mask`` (no normalisation): the policy gradient at ratio 1."""
    model.zero_grad(set_to_none=True)
    logp = token_logprobs(model, batch).logprobs
    (-(batch.advantages * logp * mask).sum()).backward()
    return _flat_grad(model)


def test_hard_and_soft_gradients_point_the_same_way(tiny_dir: Path) -> None:
    """Trajectories 0 and 1 share turn 0 (d = 2 branches), trajectory 2 is independent; rewards
    [1, 1, 0]. On the shared prefix, soft's gradient is exactly d times hard's; over all tokens the
    two gradients point the same way (note §3.2)."""
    _, model = load_tokenizer_and_model(tiny_dir)
    shared = tuple(range(300, 312))
    group = [
        _traj(1.0, [shared, tuple(range(400, 410))], {"parent": None, "branch_turn": None}),
        _traj(1.0, [shared, tuple(range(500, 510))], {"parent": 0, "branch_turn": 1}),
        _traj(0.0, [tuple(range(600, 612)), tuple(range(700, 710))], {"parent": None, "branch_turn": None}),
    ]
    adv = credit.compute("grpo", [group])
    batches = {}
    for mode in ("soft", "hard"):
        groups, advantages = attribute(mode, [group], adv)
        batch = build_batch(groups, advantages, pad_id=0)
        with torch.no_grad():  # the first update: π_old = π, every ratio 1
            old = token_logprobs(model, batch).logprobs
        batches[mode] = replace(batch, old_logprobs=old)
    # the shared turn: its prompt (2 ids) and action, in rows 0 and 1
    in_prefix = (torch.arange(batches["soft"].loss_mask.shape[1]) < 2 + len(shared)) & (
        torch.arange(3) < 2
    ).unsqueeze(-1)
    soft_p, hard_p = (_summed_grad(model, b, b.loss_mask * in_prefix) for b in batches.values())
    assert float(hard_p.norm()) > 0
    assert torch.allclose(soft_p, 2 * hard_p, atol=1e-6, rtol=1e-4)
    soft, hard = (_trainer_grad(model, batches[m]) for m in ("soft", "hard"))
    cosine = float(torch.nn.functional.cosine_similarity(soft, hard, dim=0))
    assert cosine > 0.5, cosine
