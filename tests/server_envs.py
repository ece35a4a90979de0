"""Small envs whose behaviour a server test controls: slow steps, failing steps, a per-process twist."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

from turngym.envs.core import StepOutcome, TextEnv


class ScriptedEnv(TextEnv):
    """Echoes actions; ``sleep <s>`` sleeps, ``wait`` blocks until ``release`` is set, ``boom`` raises.

    The observation after a step is ``"<turn>: <action>"``; ``num_tasks`` is 10, task ``k``'s first
    observation is ``"task k"``. With ``twist`` every observation ends with it (a server that gives
    each process its own twist is a non-deterministic env as far as a replaying client can tell).
    """

    release = threading.Event()

    def __init__(self, *, twist: str = "", max_turns: int = 50) -> None:
        super().__init__(max_turns=max_turns)
        self.twist = twist

    @property
    def num_tasks(self) -> int:
        return 10

    def _reset(self, task_id: Any) -> str:
        if not 0 <= int(task_id) < 10:
            raise IndexError(f"task {task_id} out of range")
        return f"task {task_id}{self.twist}"

    def _step(self, action: str) -> StepOutcome:
        if action.startswith("sleep "):
            time.sleep(float(action.split()[1]))
        elif action == "wait":
            self.release.wait(timeout=10)
        elif action == "boom":
            raise RuntimeError("boom")
        return StepOutcome(f"{self._turns}: {action}{self.twist}", reward=float(action == "win"),
                           terminated=action == "win", won=action == "win")  # fmt: skip


_counter = itertools.count()


def twisted_env() -> ScriptedEnv:
    """A ScriptedEnv whose observations differ from one call of this factory to the next."""
    return ScriptedEnv(twist=f" #{next(_counter)}")
