"""``turngym/ALFWorld-TW-v0``: the real ALFWorld text engine behind turngym's env contract.

It plays ALFWorld game files (``game.tw-pddl``) with TextWorld's PDDL environment and ALFWorld's
name demangler, exactly as ALFWorld's ``AlfredTWEnv`` does, so the PDDL domain, the grammar's
texts and the admissible commands all come from the installed ``textworld`` and ``alfworld``
packages. Games come from either

* ``game_dir``: a directory of the user's own ALFWorld game files (searched recursively for
  ``game.tw-pddl``, sorted by path; games marked ``"solvable": false`` are skipped, as ALFWorld
  does), task ``k`` being the ``k``-th file; or
* ``split`` (default ``valid_seen``): our generated task ``k`` of that split, exported on first use
  to ``cache_dir`` (default ``$TURNGYM_CACHE/alfworld`` or ``~/.cache/turngym/alfworld``).

Commands are normalised as in ``ALFWorld-v0`` (lowercase, single spaces, either placing wording);
an unknown command answers the engine's ``Nothing happens.`` and is marked invalid. The expert
follows the game's walkthrough while the episode stays on it, and otherwise asks TextWorld's
planner (Fast Downward) for a new plan. Anchors: the observation text, or with
``anchor="state"`` the engine's set of true PDDL facts.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Hashable
from pathlib import Path
from typing import Any

from turngym.envs.alfworld.env import task_index
from turngym.envs.alfworld.prompts import SYSTEM_PROMPT, Step, step_prompt, task_of
from turngym.envs.alfworld.sim import NOTHING
from turngym.envs.alfworld.world import SPLITS, generate
from turngym.envs.core import StepOutcome, TextEnv
from turngym.errors import ConfigError

GAME_FILE = "game.tw-pddl"
KEEP_LOADED = 4


def default_cache_dir() -> Path:
    root = os.environ.get("TURNGYM_CACHE") or Path.home() / ".cache" / "turngym"
    return Path(root) / "alfworld"


def find_games(game_dir: str | Path) -> list[Path]:
    """The solvable ``game.tw-pddl`` files under ``game_dir``, sorted by path."""
    root = Path(game_dir)
    if not root.is_dir():
        raise ConfigError(f"game_dir must be a directory of ALFWorld game files, got {str(root)!r}")
    games = []
    for path in sorted(root.rglob(GAME_FILE)):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path} is not a readable game.tw-pddl JSON file: {exc}") from exc
        missing = [k for k in ("pddl_domain", "grammar", "pddl_problem") if k not in data]
        if missing:
            raise ConfigError(f"{path} lacks the game.tw-pddl fields {missing}; is it an ALFWorld game file?")
        if data.get("solvable", True):
            games.append(path)
    if not games:
        raise ConfigError(f"no solvable {GAME_FILE} files found under {str(root)!r}")
    return games


def normalize(command: str) -> str:
    """Lowercase, single-spaced; ``put O in/on R`` (and ``in``/``on``) becomes ``move O to R``."""
    text = " ".join(command.lower().split())
    if text.startswith("put "):
        for sep in (" in/on ", " in ", " on "):
            if sep in text:
                obj, _, recep = text[len("put ") :].partition(sep)
                return f"move {obj} to {recep}"
    return text


class ALFWorldTWEnv(TextEnv):
    """ALFWorld game files played by the real TextWorld PDDL engine."""

    description = "ALFWorld game files (ours exported, or your own) played by the real TextWorld engine"
    requires = ("textworld", "alfworld")

    def __init__(
        self,
        *,
        game_dir: str | None = None,
        split: str = "valid_seen",
        num_tasks: int | None = None,
        cache_dir: str | None = None,
        anchor: str = "observation",
        win_reward: float = 10.0,
        max_turns: int = 50,
        **kwargs: Any,
    ) -> None:
        if anchor not in ("observation", "state"):
            raise ConfigError(f"anchor must be 'observation' or 'state', got {anchor!r}")
        if game_dir is None and split not in SPLITS:
            raise ConfigError(f"unknown ALFWorld split {split!r}; expected one of {sorted(SPLITS)}")
        super().__init__(max_turns=max_turns, **kwargs)
        self._steps: list[Step] = []
        self._task = ""
        import textworld
        from alfworld.agents.environment.alfred_tw_env import AlfredDemangler

        self._textworld, self._demangler = textworld, AlfredDemangler
        self.games = find_games(game_dir) if game_dir is not None else None
        self.split = split
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        available = len(self.games) if self.games is not None else SPLITS[split]
        self._num_tasks = available if num_tasks is None else min(num_tasks, available)
        self.anchor_mode = anchor
        self.win_reward = win_reward
        self._env: Any = None
        self._engines: OrderedDict[Path, Any] = OrderedDict()
        self._state: Any = None
        self._walkthrough: list[str] = []
        self._history: list[str] = []

    @property
    def num_tasks(self) -> int:
        return self._num_tasks

    @property
    def system_prompt(self) -> str:
        return SYSTEM_PROMPT

    def game_file(self, task_id: int) -> Path:
        """The game file of task ``task_id`` (exporting our generated task if needed)."""
        if not 0 <= task_id < self._num_tasks:
            raise ConfigError(f"task_id must be in 0..{self._num_tasks - 1}, got {task_id!r}")
        if self.games is not None:
            return self.games[task_id]
        from turngym.envs.alfworld.export import export_game, task_folder

        house = generate(self.split, task_id)
        path = self.cache_dir / task_folder(house) / GAME_FILE
        return path if path.is_file() else export_game(house, self.cache_dir)

    def _reset(self, task_id: Any) -> str:
        path = self.game_file(task_index(task_id))
        self._env = self._engine(path)
        self._state = self._env.reset()
        self._walkthrough = list(json.loads(path.read_text()).get("walkthrough") or [])
        self._history = []
        self._steps = []
        self._task = task_of(str(self._state.feedback))
        return str(self._state.feedback)

    def _engine(self, path: Path) -> Any:
        """The loaded engine of ``path``; the last :data:`KEEP_LOADED` games stay loaded (loading
        a game parses the domain, grammar and problem, which takes seconds)."""
        if path in self._engines:
            self._engines.move_to_end(path)
            return self._engines[path]
        infos = self._textworld.EnvInfos(
            won=True, admissible_commands=True, facts=self.anchor_mode == "state"
        )
        engine = self._textworld.start(str(path), request_infos=infos, wrappers=[self._demangler])
        self._engines[path] = engine
        if len(self._engines) > KEEP_LOADED:
            self._engines.popitem(last=False)[1].close()
        return engine

    def _step(self, action: str) -> StepOutcome:
        self._steps.append(Step(self._observation, action))
        command = normalize(action)
        admissible = self._state["admissible_commands"]
        self._state, _, _ = self._env.step(command)
        self._history.append(command)
        feedback = str(self._state.feedback)
        if command not in admissible:
            return StepOutcome(feedback or NOTHING, invalid_action=True)
        if self._state["won"]:
            return StepOutcome(feedback, reward=self.win_reward, terminated=True, won=True)
        return StepOutcome(feedback)

    def prompt(self, history_length: int = 2) -> str:
        """The ALFWorld-style user message for the current step (see :func:`.prompts.step_prompt`):
        task, the last ``history_length`` steps, the current observation, the admissible actions."""
        return step_prompt(
            self._task,
            self._observation,
            self.admissible_actions() or [],
            self._steps,
            history_length=history_length,
        )

    def anchor(self) -> Hashable:
        if self.anchor_mode == "state" and self._state is not None:
            return frozenset(str(f) for f in self._state["facts"])
        return self._observation

    def admissible_actions(self) -> list[str] | None:
        return None if self._state is None else list(self._state["admissible_commands"])

    def expert_action(self) -> str:
        if self._state is None:
            raise ConfigError("the ALFWorld-TW env has no game yet; call reset() first")
        done = len(self._history)
        if self._history == self._walkthrough[:done] and done < len(self._walkthrough):
            return self._walkthrough[done]
        engine = self._env
        while hasattr(engine, "_wrapped_env"):
            engine = engine._wrapped_env
        plan = engine._pddl_state.replan(engine._entity_infos)
        return plan[0] if plan else "look"

    def close(self) -> None:
        for engine in self._engines.values():
            engine.close()
        self._engines.clear()
        self._env = None
        super().close()
