"""Small envs the foundation tests register or check: one correct env and deliberately broken ones."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import gymnasium
import numpy as np

from turngym.envs.core import StepOutcome, TextEnv


class CounterEnv(TextEnv):
    """Count up to ``target`` by answering 'inc'; the state is the counter (a correct env)."""

    description = "count to a target"

    def __init__(self, *, target: int = 3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = target
        self.count = 0

    @property
    def num_tasks(self) -> int:
        return 4

    def _reset(self, task_id: Any) -> str:
        self.count = int(task_id)
        return f"count {self.count} of {self.target + int(task_id)}"

    def _step(self, action: str) -> StepOutcome:
        if action != "inc":
            return StepOutcome(f"say 'inc', not {action[:20]!r}", invalid_action=True)
        self.count += 1
        done = self.count >= self.target + int(self.task_id)
        return StepOutcome(f"count {self.count}", reward=float(done), terminated=done, won=done)

    def anchor(self) -> Hashable:
        return ("count", self.count)

    def admissible_actions(self) -> list[str]:
        return ["inc"]

    def expert_action(self) -> str:
        return "inc"


class NondeterministicEnv(CounterEnv):
    """Observations depend on an unseeded global generator."""

    def _reset(self, task_id: Any) -> str:
        super()._reset(task_id)
        return f"noise {np.random.default_rng().integers(1 << 30)}"


class NondeterministicAnchorEnv(CounterEnv):
    """Observations are fine but the anchor holds an object identity (differs between runs)."""

    def anchor(self) -> Hashable:
        return ("count", self.count, object())


class MissingInfoKeyEnv(CounterEnv):
    """Drops ``anchor`` from info."""

    def _info(self, *, invalid_action: bool) -> dict[str, Any]:
        info = super()._info(invalid_action=invalid_action)
        del info["anchor"]
        return info


class RaisesOnBadActionEnv(CounterEnv):
    """Raises instead of answering an invalid action with an observation."""

    def _step(self, action: str) -> StepOutcome:
        if action != "inc":
            raise ValueError(f"bad action {action!r}")
        return super()._step(action)


class SilentInvalidEnv(CounterEnv):
    """Answers a bad action with an observation but does not flag it as invalid."""

    def _step(self, action: str) -> StepOutcome:
        if action != "inc":
            return StepOutcome("hmm?")
        return super()._step(action)


class IntRewardEnv(CounterEnv):
    """Returns an int reward (Gymnasium allows it; the turngym contract asks for float)."""

    def step(self, action: str) -> tuple[str, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, int(reward), terminated, truncated, info


class StringWonEnv(CounterEnv):
    """Reports ``won`` as a string."""

    def _info(self, *, invalid_action: bool) -> dict[str, Any]:
        return {**super()._info(invalid_action=invalid_action), "won": "no"}


class UnhashableAnchorEnv(CounterEnv):
    """Uses a list as the anchor."""

    def anchor(self) -> Hashable:
        return ["count", self.count]  # type: ignore[return-value]  # deliberately unhashable


class IntMetricsEnv(CounterEnv):
    """Puts an int into ``metrics``."""

    def _info(self, *, invalid_action: bool) -> dict[str, Any]:
        info = super()._info(invalid_action=invalid_action)
        return {**info, "metrics": {**info["metrics"], "turns": 1}}


class StepBeforeResetEnv(CounterEnv):
    """Lets ``step`` run before ``reset``."""

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        self._done = False
        return super().step(action)


class StepAfterEndEnv(CounterEnv):
    """Keeps accepting actions after the episode ended."""

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self.task_id is not None:
            self._done = False
        return super().step(action)


class CloseTwiceFailsEnv(CounterEnv):
    """Raises when closed a second time."""

    def close(self) -> None:
        if self._closed:
            raise RuntimeError("already closed")
        super().close()


class NotATextEnv(gymnasium.Env[str, str]):
    """A plain Gymnasium env registered by mistake under a turngym id."""

    def __init__(self) -> None:
        self.observation_space = gymnasium.spaces.Text(10)
        self.action_space = gymnasium.spaces.Text(10)


class NeedsMissingModuleEnv(CounterEnv):
    """Declares an optional dependency that is not installed."""

    requires = ("json", "turngym_absent_dependency", "turngym_absent_package.sub")
