"""Ray rollout workers on a local Ray (2 CPUs) started here: the same trajectories as in-process."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from turngym.agents.async_loop import AsyncSettings, run_episodes
from turngym.agents.hf import HFPolicy, load_tokenizer_and_model
from turngym.agents.policy import LoopConfig, SamplingParams
from turngym.agents.scripted import ScriptedPolicy
from turngym.agents.tiny import build_tiny
from turngym.envs import make
from turngym.trainers.config import TrainConfig
from turngym.trainers.ray_workers import RayRollout, split
from turngym.trainers.rollout import collect_rollouts
from turngym.trajectory import Trajectory

ray = pytest.importorskip("ray", reason="the ray extra is not installed")
pytestmark = [pytest.mark.integration, pytest.mark.slow]

MAZE = "turngym/Maze-v0"
MOVES = ("go north", "go south", "go east", "go west")


class ScriptedBuild:
    """Picklable builder of a policy that answers a function of the prompt (not of call order)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self) -> tuple[Any, Any]:
        tok = load_tokenizer_and_model(self.path)[0]
        return ScriptedPolicy(tok, lambda ids: MOVES[(len(ids) + sum(ids)) % 4]), tok


class HFBuild:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self) -> tuple[Any, Any]:
        policy = HFPolicy.from_pretrained(self.path, num_threads=1)
        return policy, policy.tokenizer


def _maze() -> Any:
    return make(MAZE, max_turns=3)


@pytest.fixture(scope="module")
def local_ray() -> Any:
    ray.init(num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("ray") / "tiny")


def _same(a: Sequence[Trajectory], b: Sequence[Trajectory]) -> None:
    assert [(t.task_id, t.seed, t.stop_reason, t.token_ids, t.loss_mask) for t in a] == [
        (t.task_id, t.seed, t.stop_reason, t.token_ids, t.loss_mask) for t in b
    ]
    assert [[turn.action_logprobs for turn in t.turns] for t in a] == [
        [turn.action_logprobs for turn in t.turns] for t in b
    ]


def test_split_covers_the_jobs_in_order() -> None:
    assert split(5, 2) == [range(0, 3), range(3, 5)]
    assert split(2, 3) == [range(0, 1), range(1, 2), range(2, 2)]


def test_ray_workers_give_the_in_process_trajectories(local_ray: Any, tiny: Path) -> None:
    jobs = [(task, 100 + task % 2) for task in range(7)]
    config = LoopConfig(sampling=SamplingParams(max_new_tokens=6, seed=9), env_id=MAZE)
    settings = AsyncSettings(max_concurrent=4)
    pool = RayRollout(2, ScriptedBuild(tiny))
    policy, tok = ScriptedBuild(tiny)()
    _same(pool.run(_maze, jobs, config, settings), run_episodes(_maze, policy, tok, jobs, config, settings))
    pool.close()

    # hf replicas get the learner's weights through the object store
    learner = HFPolicy.from_pretrained(tiny, num_threads=1)
    with torch.no_grad():
        learner.model.model.norm.weight.mul_(1.5)
    learner.version = 4
    pool = RayRollout(2, HFBuild(tiny))
    pool.sync(learner.model.state_dict(), learner.version)
    remote = pool.run(_maze, jobs, config, settings)
    local = []  # each actor's slice in-process: the same batches, so the same numbers
    for part in split(len(jobs), 2):
        chunk = jobs[part.start : part.stop]
        local += run_episodes(
            _maze, learner, learner.tokenizer, chunk, config, settings, first_index=part.start
        )
    _same(remote, local)
    assert {t.metadata["policy_version"] for t in remote} == {4}
    pool.close()


def test_the_trainer_rolls_out_through_ray_workers(local_ray: Any) -> None:
    base = TrainConfig()
    r = replace(base.rollout, group_size=2, groups_per_iteration=2, workers=2, max_new_tokens=3)
    config = replace(base, rollout=r, env=replace(base.env, kwargs={"size": 2, "max_turns": 2}))
    from turngym.agents.tiny import ensure_tiny

    policy = HFPolicy.from_pretrained(ensure_tiny(), num_threads=1)
    policy.update_weights({})  # version 1: the actors must hold it
    rollouts = collect_rollouts(policy, policy.tokenizer, config.validate(), iteration=1)
    assert len(rollouts.groups) == 2 and all(len(g) == 2 for g in rollouts.groups)
    assert {t.metadata["policy_version"] for g in rollouts.groups for t in g} == {1}
    assert all(t.turns and all(turn.action_ids for turn in t.turns) for g in rollouts.groups for t in g)
