"""The expert solves every task; random play never crashes; text never reveals hidden contents."""

from __future__ import annotations

import re

import numpy as np
import pytest

from turngym.envs.alfworld.env import ALFWorldEnv
from turngym.envs.alfworld.expert import expert_command
from turngym.envs.alfworld.sim import Simulator
from turngym.envs.alfworld.world import SPLITS, generate


def _solve(split: str, index: int) -> int:
    sim = Simulator(generate(split, index))
    for step in range(1, 51):
        command = expert_command(sim)
        assert command in sim.admissible(), (split, index, command)
        sim.execute(command)
        if sim.won():
            return step
    raise AssertionError(f"expert did not solve {split}/{index} in 50 steps")


@pytest.mark.parametrize("split", sorted(SPLITS))
def test_expert_solves_tasks_of_every_split(split: str) -> None:
    steps = [_solve(split, k) for k in range(min(SPLITS[split], 140))]
    assert max(steps) <= 15


def test_expert_recovers_after_random_moves() -> None:
    rng = np.random.default_rng(0)
    for k in range(60):
        sim = Simulator(generate("train", k))
        for _ in range(15):
            actions = sim.admissible()
            sim.execute(actions[int(rng.integers(len(actions)))])
        for _ in range(50):
            if sim.won():
                break
            sim.execute(expert_command(sim))
        assert sim.won(), k


def _check_no_leak(sim: Simulator, text: str) -> None:
    """Objects named in a receptacle description are exactly those visible in it."""
    for r, name in enumerate(sim.rnames):
        if sim.openable[r] and not sim.opened[r]:
            assert f"The {name} is open" not in text
        match = re.search(rf"(?:In it|On the {re.escape(name)}), you see (.*?)\.(?: |$)", text)
        if match and (f"The {name} is open" in text or f"On the {name}," in text):
            shown = set(re.findall(r"a (\w+ \d+)", match.group(1)))
            assert shown == {sim.onames[o] for o in sim.contents[r]}, (name, text)


def _random_play(split: str, first: int, count: int) -> None:
    rng = np.random.default_rng(first)
    for k in range(first, first + count):
        sim = Simulator(generate(split, k))
        assert not sim.won()
        assert sim.house.goal in sim.intro()
        for _ in range(30):
            actions = sim.admissible()
            assert actions == sorted(set(actions))
            # closed receptacles: nothing inside can be taken or examined
            for r in range(len(sim.rnames)):
                if sim.openable[r] and not sim.opened[r]:
                    hidden = {sim.onames[o] for o in sim.contents[r]}
                    assert not any(
                        a.startswith("take ") and a.split(" from ")[0][5:] in hidden for a in actions
                    )
            if rng.random() < 0.1:
                text, executed = sim.execute("take nothing from nowhere")
                assert (text, executed) == ("Nothing happens.", False)
            text, executed = sim.execute(actions[int(rng.integers(len(actions)))])
            assert executed
            _check_no_leak(sim, text)
        assert _solve_from(sim)


def _solve_from(sim: Simulator) -> bool:
    for _ in range(50):
        if sim.won():
            return True
        sim.execute(expert_command(sim))
    return sim.won()


def test_random_play_on_a_sample_keeps_every_invariant() -> None:
    for split in SPLITS:
        _random_play(split, 0, 40)


def test_property_over_thousands_of_tasks() -> None:
    """Every one of 4,000 generated tasks is solved by the expert, and random play obeys the rules."""
    for split, n in SPLITS.items():
        for k in range(min(n, 1000)):
            _solve(split, k)
    for split in SPLITS:
        _random_play(split, 0, 250)


def test_random_baseline_succeeds_rarely() -> None:
    env = ALFWorldEnv(split="valid_seen")
    rng = np.random.default_rng(0)
    wins = 0
    for k in range(env.num_tasks):
        env.reset(seed=k, options={"task_id": k})
        while True:
            _, _, terminated, truncated, info = env.step(env.random_action(rng))
            if terminated or truncated:
                break
        wins += info["won"]
    assert (
        wins / env.num_tasks < 0.03
    )  # measured over 2,000 train tasks: 0.4 % (benchmarks/alfworld_speed.py)
