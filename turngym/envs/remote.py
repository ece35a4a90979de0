"""``RemoteEnv``: a :class:`~turngym.envs.core.TextEnv` whose state lives on an env server.

It opens a session on construction, forwards ``reset``/``step`` over HTTP, a WebSocket per session
or one WebSocket shared by all sessions (``transport="http"|"ws"|"mux"``) and deletes the session on
``close``. The base class still counts turns and checks reset-before-step locally, and
``max_turns``/``num_tasks`` come from the server's ``/health``, so a remote env behaves — and
passes ``check_env`` — exactly like the local one: same seed and task, same observations and
anchors.

Failures follow :mod:`turngym.envs.remote_session`: an unreachable or full server is retried with
jittered backoff, a lost session (server restart, reaper) is re-created and the episode replayed
and checked, anything else raises :class:`~turngym.errors.EnvError` with the server's message. A
failed ``step`` leaves the turn counter as it was; a failed ``reset`` leaves the env needing a
reset; ``close`` never raises because the server is gone.

The calls run on one event loop in a background thread shared by every ``RemoteEnv`` of the
process, so many envs stepped from many threads share the client's connections and one core.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Hashable
from typing import Any, TypeVar

import httpx

from turngym.envs.core import StepOutcome, TextEnv
from turngym.envs.remote_session import RemoteSession, RetryPolicy, Transport

T = TypeVar("T")


class _Loop:
    """The process's background event loop for synchronous clients (started on first use)."""

    _loop: asyncio.AbstractEventLoop | None = None
    _guard = threading.Lock()

    @classmethod
    def run(cls, coro: Coroutine[Any, Any, T]) -> T:
        with cls._guard:
            if cls._loop is None:
                cls._loop = asyncio.new_event_loop()
                threading.Thread(target=cls._loop.run_forever, name="turngym-remote", daemon=True).start()
        return asyncio.run_coroutine_threadsafe(coro, cls._loop).result()


class RemoteEnv(TextEnv):
    """Client of a ``turngym serve env`` server."""

    def __init__(
        self,
        url: str,
        *,
        transport: Transport = "http",
        timeout_s: float = 60.0,
        retries: int = 10,
        backoff_s: float = 0.05,
        token: str | None = None,
        recover: bool = True,
        http_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._session = RemoteSession(
            url,
            transport=transport,
            timeout_s=timeout_s,
            retry=RetryPolicy(retries=retries, backoff_s=backoff_s),
            token=token,
            recover=recover,
            http_transport=http_transport,
        )
        try:
            _Loop.run(self._session.open())
        except BaseException:
            _Loop.run(self._session.close())
            raise
        health = self._session.health
        super().__init__(max_turns=int(health["max_turns"]))
        self.env_id: str = health["env_id"]
        self._num_tasks = int(health["num_tasks"])
        self._remote_info: dict[str, Any] = {}
        self._seed_given: int | None = None

    @property
    def num_tasks(self) -> int:
        return self._num_tasks

    @property
    def recoveries(self) -> int:
        """How many times the session was re-created and its episode replayed."""
        return self._session.recoveries

    def _reset(self, task_id: Any) -> str:
        seed = int(self.np_random.integers(2**31)) if self._seed_given is None else self._seed_given
        data = _Loop.run(self._session.reset(seed, task_id))
        self._remote_info = data["info"]
        return str(data["observation"])

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        self._seed_given = seed
        self._done = True  # stays so if the reset fails: no step on a half-reset env
        return super().reset(seed=seed, options=options)

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        turns = self._turns
        try:
            return super().step(action)
        except BaseException:
            self._turns = turns  # a failed call changes nothing here
            raise

    def _step(self, action: str) -> StepOutcome:
        data = _Loop.run(self._session.step(action))
        info = data["info"]
        self._remote_info = info
        return StepOutcome(
            observation=data["observation"],
            reward=float(data["reward"]),
            terminated=bool(data["terminated"]),
            won=bool(info["won"]),
            invalid_action=bool(info["invalid_action"]),
            metrics=info["metrics"],
        )

    def anchor(self) -> Hashable:
        return self._remote_info.get("anchor")

    def admissible_actions(self) -> list[str] | None:
        return self._remote_info.get("admissible_actions")

    def close(self) -> None:
        if self._session.sid is not None:
            _Loop.run(self._session.close())
        super().close()
