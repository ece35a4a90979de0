"""The partial rollout of one iteration and the groups carried between iterations (see
:mod:`turngym.trainers.april`)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from turngym.agents.async_loop import AsyncSettings
from turngym.agents.loop import Job
from turngym.agents.partial import POLICY_VERSION, Paused, run_partial_episodes
from turngym.agents.policy import Policy, derive_seed
from turngym.trainers.config import TrainConfig
from turngym.trainers.rollout import Rollouts, env_factory, loop_config
from turngym.trajectory import Trajectory

_Member = Trajectory | Paused | Job


@dataclass
class _Group:
    job: Job
    members: list[_Member]
    first_iteration: int

    def finished(self) -> bool:
        return all(isinstance(m, Trajectory) for m in self.members)

    def failed(self) -> list[str]:
        return [
            m.stop_reason.value
            for m in self.members
            if isinstance(m, Trajectory) and m.stop_reason.is_failure
        ]

    def close(self) -> None:
        for member in self.members:
            if isinstance(member, Paused):
                member.close()


@dataclass
class PartialRollouts:
    """The groups carried between iterations; :meth:`collect` plays one iteration's rollouts."""

    carried: list[_Group] = field(default_factory=list)

    def collect(
        self, policy: Policy, tokenizer: Any, config: TrainConfig, iteration: int, round_: int = 0
    ) -> Rollouts:
        """Exactly ``groups_per_iteration`` whole groups (fewer only when the launched groups run
        out), in launch order, with the ``rollout/`` and ``april/`` statistics."""
        r, a = config.rollout, config.rollout.april
        need = r.groups_per_iteration
        launch = max(math.ceil(a.oversample * need), need)
        fresh = min(max(launch - len(self.carried), 0), config.env.train_tasks)
        rng = np.random.default_rng([config.seed, iteration, round_])
        tasks = rng.choice(config.env.train_tasks, size=fresh, replace=False)
        groups = list(self.carried)
        for task in tasks:
            job = (int(task), derive_seed(config.seed, iteration, round_, int(task)))
            groups.append(_Group(job, [job] * r.group_size, iteration))
        self.carried = []
        where = [(g, m) for g, group in enumerate(groups) for m in range(len(group.members))]
        where = [(g, m) for g, m in where if not isinstance(groups[g].members[m], Trajectory)]
        starts = [groups[g].members[m] for g, m in where]
        group_of = {group.job: g for g, group in enumerate(groups)}
        open_members = Counter(g for g, _ in where)
        failed = {g for g, group in enumerate(groups) if group.failed()}
        good = [sum(group.finished() and not group.failed() for group in groups)]

        def on_episode(trajectory: Trajectory) -> None:
            g = group_of[(trajectory.task_id, trajectory.seed)]
            open_members[g] -= 1
            if trajectory.stop_reason.is_failure:
                failed.add(g)
            if open_members[g] == 0 and g not in failed:
                good[0] += 1

        cfg = loop_config(
            r,
            config.env.env_id,
            temperature=r.temperature,
            seed=derive_seed(config.seed, iteration, round_, 7),
            entropies=config.credit.estimator == "empg",
            batch=len(starts),
        )
        settings = AsyncSettings(max_concurrent=r.max_concurrent_episodes, max_wait_s=r.batch_wait_s)
        # raising, the run closes every env it was given, and nothing is carried (emptied above)
        out = run_partial_episodes(
            env_factory(config, "train"), policy, tokenizer, starts, cfg,
            lambda: good[0] >= need, settings, on_episode,
        )  # fmt: skip
        cancelled = 0
        for (g, m), start, member in zip(where, starts, out, strict=True):
            groups[g].members[m] = member
            cancelled += isinstance(member, Paused) and member is not start
        return self._settle(groups, need, a.carry, cancelled)

    def _settle(self, groups: list[_Group], need: int, carry: bool, cancelled: int) -> Rollouts:
        """The first ``need`` whole groups to train on; failed groups dropped, the rest carried."""
        done: list[list[Trajectory]] = []
        failures: Counter[str] = Counter()
        dropped = 0
        for group in groups:
            if failed := group.failed():  # never trained on: its unfinished episodes are closed
                failures.update(failed)
                group.close()
                dropped += 1
            elif group.finished() and len(done) < need:
                task, seed = group.job
                meta = {"group": f"{task}:{seed}", "attempt": 0, "april_launched": group.first_iteration}
                done.append([replace(t, metadata={**t.metadata, **meta}) for t in group.members])  # type: ignore[union-attr]
            elif carry:
                self.carried.append(group)
            else:
                group.close()
                dropped += 1
        stats = {
            "rollout/retried_groups": 0.0,
            "rollout/dropped_groups": float(dropped),
            "april/carried_groups": float(len(self.carried)),
            "april/cancelled_episodes": float(cancelled),
        }
        stats.update({f"rollout/failures/{reason}": float(n) for reason, n in sorted(failures.items())})
        return Rollouts(done, stats)

    def close(self) -> None:
        """Close the envs of every carried episode (the end of the run)."""
        for group in self.carried:
            group.close()
        self.carried = []


def version_lag_metrics(groups: Sequence[Sequence[Trajectory]], version: int) -> dict[str, float]:
    """``april/version_lag_mean`` and ``_max`` over the turns of ``groups``: ``version`` minus the
    version that sampled the turn (turns without one count as current)."""
    lags = [version - turn.info.get(POLICY_VERSION, version) for g in groups for t in g for turn in t.turns]
    return {
        "april/version_lag_mean": float(np.mean(lags)) if lags else 0.0,
        "april/version_lag_max": float(max(lags)) if lags else 0.0,
    }


def turn_lags(groups: Sequence[Sequence[Trajectory]], version: int) -> list[list[list[float]]]:
    """Per group, trajectory and turn: ``version`` minus the turn's policy version (0 when unknown)."""
    return [
        [[float(version - turn.info.get(POLICY_VERSION, version)) for turn in t.turns] for t in g]
        for g in groups
    ]
