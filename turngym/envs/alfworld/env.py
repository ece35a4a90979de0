"""``turngym/ALFWorld-v0``: procedurally generated ALFWorld households, simulated in-process.

Task ``k`` of a split is :func:`~turngym.envs.alfworld.world.generate` ``(split, k)``; the
simulator (:mod:`~turngym.envs.alfworld.sim`) answers commands with ALFWorld's exact strings and
its admissible commands. Reward ``win_reward`` (10, as verl-agent) when the goal holds, which ends
the episode; 50 steps at most. The anchor is the observation text (what GiGPO groups on) or, with
``anchor="state"``, the full hidden state (location, held object, receptacle contents, opened
receptacles, object flags) for studying aliasing. ``put_wording=True`` switches the placing
command to the older ``put O in/on R`` form and its ``You put the O in/on the R.`` feedback;
either wording is accepted as input.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np

from turngym.envs.alfworld.expert import expert_command
from turngym.envs.alfworld.prompts import SYSTEM_PROMPT, Step, step_prompt
from turngym.envs.alfworld.sim import Simulator
from turngym.envs.alfworld.world import SPLITS, Household, generate
from turngym.envs.core import StepOutcome, TextEnv
from turngym.errors import ConfigError

ANCHORS = ("observation", "state")


def task_index(task_id: Any) -> int:
    """``task_id`` as an int; a clear error for anything that is not an integer."""
    if isinstance(task_id, bool) or not isinstance(task_id, (int, np.integer)):
        raise ConfigError(f"task_id must be an integer task index, got {task_id!r}")
    return int(task_id)


class ALFWorldEnv(TextEnv):
    """Household tasks of ALFWorld's six types, generated and simulated in-process."""

    description = "ALFWorld household tasks (6 types), generated procedurally and simulated in-process"

    def __init__(
        self,
        *,
        split: str = "train",
        num_tasks: int | None = None,
        task_types: tuple[int, ...] | list[int] = (1, 2, 3, 4, 5, 6),
        anchor: str = "observation",
        win_reward: float = 10.0,
        put_wording: bool = False,
        max_turns: int = 50,
        **kwargs: Any,
    ) -> None:
        if split not in SPLITS:
            raise ConfigError(f"unknown ALFWorld split {split!r}; expected one of {sorted(SPLITS)}")
        if anchor not in ANCHORS:
            raise ConfigError(f"anchor must be one of {ANCHORS}, got {anchor!r}")
        if num_tasks is not None and num_tasks < 1:
            raise ConfigError(f"num_tasks must be >= 1, got {num_tasks}")
        super().__init__(max_turns=max_turns, **kwargs)
        self._steps: list[Step] = []
        self.split = split
        self.task_types = tuple(sorted(set(task_types)))
        self.anchor_mode = anchor
        self.win_reward = win_reward
        self.put_wording = put_wording
        self._num_tasks = SPLITS[split] if num_tasks is None else num_tasks
        self.sim: Simulator | None = None
        generate(split, 0, self.task_types)  # validates task_types early

    @property
    def num_tasks(self) -> int:
        return self._num_tasks

    @property
    def system_prompt(self) -> str:
        return SYSTEM_PROMPT

    @property
    def household(self) -> Household:
        return self._sim.house

    @property
    def _sim(self) -> Simulator:
        if self.sim is None:
            raise ConfigError("the ALFWorld env has no task yet; call reset() first")
        return self.sim

    def _reset(self, task_id: Any) -> str:
        index = task_index(task_id)
        if not 0 <= index < self._num_tasks:
            raise ConfigError(
                f"task_id must be in 0..{self._num_tasks - 1} for split {self.split!r}, got {task_id!r}"
            )
        self.sim = Simulator(generate(self.split, index, self.task_types), put_wording=self.put_wording)
        self._steps = []
        return self.sim.intro()

    def _step(self, action: str) -> StepOutcome:
        sim = self._sim
        self._steps.append(Step(self._observation, action))
        feedback, executed = sim.execute(action)
        if not executed:
            return StepOutcome(feedback, invalid_action=True)
        if sim.won():
            return StepOutcome(feedback, reward=self.win_reward, terminated=True, won=True)
        return StepOutcome(feedback)

    def prompt(self, history_length: int = 2) -> str:
        """The ALFWorld-style user message for the current step (see :func:`.prompts.step_prompt`):
        task, the last ``history_length`` steps, the current observation, the admissible actions."""
        return step_prompt(
            self._sim.house.goal,
            self._observation,
            self.admissible_actions() or [],
            self._steps,
            history_length=history_length,
        )

    def anchor(self) -> Hashable:
        if self.anchor_mode == "state" and self.sim is not None:
            return self.sim.hidden_state()
        return self._observation

    def admissible_actions(self) -> list[str] | None:
        return None if self.sim is None else self.sim.admissible()

    def expert_action(self) -> str:
        return expert_command(self._sim)
