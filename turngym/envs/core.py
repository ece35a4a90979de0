"""The environment contract: :class:`TextEnv`, a ``gymnasium.Env[str, str]``.

A subclass implements five small hooks and inherits the contract of DESIGN.md:

* ``_reset(task_id) -> str`` builds the task's initial state and returns the first observation.
  Any randomness must come from ``self.np_random``, which ``reset`` has already seeded.
* ``_step(action) -> StepOutcome`` applies one action. An invalid action is *never* an exception:
  return an observation that says what was wrong with ``invalid_action=True``.
* ``anchor() -> Hashable`` the canonical key of the current true state (GiGPO/SALT group on it).
  The default is the current observation text.
* ``admissible_actions() -> list[str] | None`` (default ``None``: free-form actions).
* ``expert_action() -> str`` the next action of the env's expert solver (optional).

Tasks and seeds. ``num_tasks`` says how many tasks the env's split holds. ``reset(seed=s,
options={"task_id": k})`` puts the env in task ``k`` with its randomness seeded by ``s``; the same
``(s, k)`` always gives the same initial state, which is how a group of G rollouts starts G copies
of one task. Without a ``task_id`` the task is drawn from the seeded generator; with neither, a
fresh seed is used (as in Gymnasium).

``info`` always holds ``task_id``, ``won`` (bool), ``anchor`` (hashable), ``admissible_actions``
(list of str or None), ``invalid_action`` (bool) and ``metrics`` (dict of floats with at least
``turns``, ``invalid_actions`` and ``parse_failures``). The base class counts turns and truncates
the episode after ``max_turns`` actions (``truncated=True``); ``step`` before ``reset`` or after
the episode ended raises :class:`~turngym.errors.ResetNeeded`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium
import numpy as np

from turngym.envs.spaces import FreeText
from turngym.errors import ResetNeeded

MAX_ACTION_CHARS = 65_536
"""Actions longer than this are rejected as invalid before the env sees them."""


@dataclass(frozen=True)
class StepOutcome:
    """What a subclass's ``_step`` returns for one action."""

    observation: str
    """The text the agent sees next."""
    reward: float = 0.0
    """The immediate reward of this action."""
    terminated: bool = False
    """The task ended (won or lost); a time limit is *not* termination."""
    won: bool = False
    """The task's goal holds."""
    invalid_action: bool = False
    """The action was not understood or not allowed; the observation says why."""
    parse_error: bool = False
    """The action text could not be parsed at all (counted in ``metrics['parse_failures']``)."""
    metrics: Mapping[str, float] = field(default_factory=dict)
    """Env-specific numbers merged into ``info['metrics']``."""


class TextEnv(gymnasium.Env[str, str]):
    """Base class of every turngym environment (text observations, text actions)."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "human"]}
    description: ClassVar[str] = ""
    """One line shown by ``turngym envs``."""
    requires: ClassVar[tuple[str, ...]] = ()
    """Importable modules the env needs beyond the core install (e.g. ``("textworld",)``)."""
    nonblocking: ClassVar[bool] = False
    """``reset``/``step`` take microseconds and never wait on I/O: an env server may run them on its
    event loop instead of a worker thread (no thread hop; deadlines cannot interrupt them)."""

    def __init__(
        self, *, max_turns: int = 50, max_obs_chars: int = 1_000_000, render_mode: str | None = None
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}"
            )
        self.render_mode = render_mode
        self.max_turns = max_turns
        self.observation_space = FreeText(max_obs_chars)
        self.action_space = FreeText(MAX_ACTION_CHARS)
        self._task_id: Any = None
        self._turns = 0
        self._done = True
        self._won = False
        self._observation = ""
        self._counts = {"invalid_actions": 0.0, "parse_failures": 0.0}
        self._env_metrics: dict[str, float] = {}
        self._closed = False

    # ---- hooks for subclasses -------------------------------------------------------------
    @property
    def num_tasks(self) -> int:
        """How many tasks this env's split holds (task ids are ``0..num_tasks-1``)."""
        raise NotImplementedError

    def _reset(self, task_id: Any) -> str:
        raise NotImplementedError

    def _step(self, action: str) -> StepOutcome:
        raise NotImplementedError

    def anchor(self) -> Hashable:
        """Canonical key of the current true state; default: the current observation."""
        return self._observation

    def admissible_actions(self) -> list[str] | None:
        """The actions allowed now, or ``None`` when actions are free-form."""
        return None

    def expert_action(self) -> str:
        """The expert solver's next action in the current state."""
        raise NotImplementedError(f"{type(self).__name__} has no expert solver")

    @property
    def system_prompt(self) -> str:
        """Instructions an LLM agent gets before the first observation (action format, tools)."""
        return ""

    # ---- the Gymnasium API ----------------------------------------------------------------
    @property
    def task_id(self) -> Any:
        """The id of the task of the current episode (``None`` before the first reset)."""
        return self._task_id

    @property
    def observation(self) -> str:
        """The last observation returned."""
        return self._observation

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        options = dict(options or {})
        task_id = options.pop("task_id", None)
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; the only option is 'task_id'")
        if task_id is None:
            task_id = int(self.np_random.integers(self.num_tasks))
        self._task_id = task_id
        self._turns = 0
        self._won = False
        self._counts = {"invalid_actions": 0.0, "parse_failures": 0.0}
        self._env_metrics = {}
        self._observation = self._reset(task_id)
        self._done = False
        return self._observation, self._info(invalid_action=False)

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self._done:
            raise ResetNeeded(
                "step() called before reset() or after the episode ended; call env.reset() first"
            )
        self._turns += 1
        outcome = self._checked_step(action)
        self._observation = outcome.observation
        self._won = outcome.won
        self._counts["invalid_actions"] += float(outcome.invalid_action)
        self._counts["parse_failures"] += float(outcome.parse_error)
        self._env_metrics.update(outcome.metrics)
        truncated = not outcome.terminated and self._turns >= self.max_turns
        self._done = outcome.terminated or truncated
        info = self._info(invalid_action=outcome.invalid_action)
        return self._observation, float(outcome.reward), outcome.terminated, truncated, info

    def _checked_step(self, action: Any) -> StepOutcome:
        if not isinstance(action, str):
            return StepOutcome(
                f"Invalid action: expected a string, got {type(action).__name__}.",
                invalid_action=True,
                parse_error=True,
            )
        if len(action) > MAX_ACTION_CHARS:
            return StepOutcome(
                f"Invalid action: {len(action)} characters is over the limit of {MAX_ACTION_CHARS}.",
                invalid_action=True,
                parse_error=True,
            )
        return self._step(action)

    def _info(self, *, invalid_action: bool) -> dict[str, Any]:
        metrics = {"turns": float(self._turns), **self._counts, **self._env_metrics}
        return {
            "task_id": self._task_id,
            "won": self._won,
            "anchor": self.anchor(),
            "admissible_actions": self.admissible_actions(),
            "invalid_action": invalid_action,
            "metrics": metrics,
        }

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return self._observation
        if self.render_mode == "human":
            print(self._observation)
        return None

    def close(self) -> None:
        self._closed = True
        self._done = True

    def random_action(self, rng: np.random.Generator) -> str:
        """A uniformly random admissible action (envs with free-form actions override this)."""
        actions = self.admissible_actions()
        if not actions:
            raise NotImplementedError(f"{type(self).__name__} has free-form actions and no random_action")
        return actions[int(rng.integers(len(actions)))]
