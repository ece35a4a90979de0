"""turngym/KernelGym-v0 episodes with a scripted evaluator: feedback, rewards, termination, anchors,
expert."""

from __future__ import annotations

import json

import pytest

import turngym.envs.kernel.env as kernel_env
from turngym.envs.kernel.env import KernelGymEnv, extract_code, fenced
from turngym.envs.kernel.evaluate import EvalConfig, EvalResult
from turngym.envs.kernel.hacks import HackFinding


class Scripted:
    """Stands in for evaluate(): returns the result queued for each candidate source, counts calls."""

    def __init__(self, results: dict[str, EvalResult]) -> None:
        self.results = results
        self.calls: list[str] = []

    def __call__(self, reference: str, candidate: str, config: EvalConfig) -> EvalResult:
        self.calls.append(candidate)
        return self.results[candidate.strip()]


def ok(speedup: float | None) -> EvalResult:
    return EvalResult(
        "correct", compiled=True, correct=True, correctness_trials=(3, 3), speedup=speedup, coverage=0.8
    )


@pytest.fixture()
def scripted(monkeypatch: pytest.MonkeyPatch) -> Scripted:
    kernel_env._CACHE.clear()
    fake = Scripted(
        {
            "slow": ok(0.4),
            "fast": ok(1.6),
            "wrong": EvalResult("incorrect", compiled=True, correctness_trials=(0, 3), max_difference=0.7),
            "cheat": EvalResult(
                "correct",
                compiled=True,
                correct=True,
                speedup=9.0,
                hacks=(HackFinding("reference_op", "torch.relu"),),
            ),
        }
    )
    monkeypatch.setattr(kernel_env, "evaluate", fake)
    return fake


def make(**kw) -> KernelGymEnv:
    env = KernelGymEnv(**kw)
    env.reset(seed=0, options={"task_id": 0})
    return env


def test_first_observation_is_the_task(scripted: Scripted) -> None:
    env = make()
    assert env.observation.startswith("Task 1_ReLU (level 1).")
    assert "class Model(nn.Module)" in env.observation and "ModelNew" in env.observation
    assert env.anchor() == ("start", None)


def test_answer_without_code_is_invalid_and_not_evaluated(scripted: Scripted) -> None:
    obs, reward, terminated, _truncated, info = make().step("I think a kernel would help.")
    assert info["invalid_action"] and reward == 0.0 and not terminated
    assert "no ```python``` code block" in obs
    assert scripted.calls == [] and info["anchor"] == ("no_code", None)


def test_refinement_until_target_speedup(scripted: Scripted) -> None:
    env = make(target_speedup=1.0)
    obs, reward, terminated, _, info = env.step(fenced("slow"))
    assert not terminated and reward == pytest.approx(0.5 + 0.5 * 0.4)
    feedback = json.loads(obs[obs.index("{") : obs.rindex("}") + 1])
    assert feedback["status"] == "correct" and feedback["speedup"] == 0.4
    assert info["anchor"] == ("correct", 0.4)
    obs, reward, terminated, _, info = env.step("Better:\n" + fenced("fast"))
    assert terminated and info["won"] and reward == pytest.approx(0.5 + 0.5 * 1.6)
    assert info["metrics"]["speedup"] == pytest.approx(1.6)
    assert obs.endswith("The episode is over.")


def test_turn_limit_ends_the_episode_with_the_last_verdict(scripted: Scripted) -> None:
    env = make(max_turns=2)
    env.step(fenced("wrong"))
    _, reward, terminated, truncated, info = env.step(fenced("slow"))
    assert terminated and not truncated and info["won"]
    env.reset(seed=0, options={"task_id": 0})
    env.step(fenced("slow"))
    _, reward, terminated, _, info = env.step(fenced("wrong"))
    assert terminated and not info["won"] and reward == 0.0
    assert info["anchor"] == ("incorrect", None)


def test_hacked_answer_gets_the_penalty_and_the_reason(scripted: Scripted) -> None:
    obs, reward, terminated, _, info = make().step(fenced("cheat"))
    assert reward == -1.0 and not info["won"] and not terminated
    assert "reference_op: torch.relu" in obs
    assert info["anchor"] == ("hacked", 9.0) and info["metrics"]["hacked"] == 1.0


def test_identical_answers_are_evaluated_once(scripted: Scripted) -> None:
    env = make(max_turns=3)
    first = env.step(fenced("slow"))
    second = env.step(fenced("slow"))
    assert first[0] == second[0] and len(scripted.calls) == 1


def test_expert_walks_the_refinement_stages(scripted: Scripted) -> None:
    env = KernelGymEnv()
    matmul = next(i for i, t in enumerate(env.tasks) if t.task_id == "11_Matmul")
    env.reset(seed=0, options={"task_id": matmul})
    stages = env.task.solutions["cpp"]
    assert extract_code(env.expert_action()).strip() == stages[0].strip()
    scripted.results[stages[0].strip()] = ok(0.1)
    scripted.results[stages[1].strip()] = ok(0.3)
    env.step(env.expert_action())
    assert extract_code(env.expert_action()).strip() == stages[1].strip()
    env.step(env.expert_action())
    _, _, terminated, _, info = env.step(env.expert_action())
    assert terminated and info["won"]


def test_triton_backend_keeps_tasks_with_triton_solutions(scripted: Scripted) -> None:
    env = KernelGymEnv(backend="triton")
    assert env.tasks and all("triton" in t.solutions for t in env.tasks)


def test_extract_code_takes_the_last_block() -> None:
    assert extract_code("```python\na\n```\ntext\n```\nb\n```") == "b\n"
    assert extract_code("no code") is None
