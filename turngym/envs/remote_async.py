"""``AsyncRemoteEnv``: an env on a ``turngym serve env`` server, driven from asyncio.

The same contract as :class:`~turngym.envs.remote.RemoteEnv` (and the same failure rule, from
:mod:`turngym.envs.remote_session`), with ``await``-able ``reset``/``step``/``close``, so one event
loop can run thousands of episodes without a thread each::

    env = await AsyncRemoteEnv.open("http://127.0.0.1:8000", transport="ws")
    obs, info = await env.reset(seed=0, options={"task_id": 3})
    obs, reward, terminated, truncated, info = await env.step("go north")
    await env.close()

The server counts turns and truncates; the client keeps the episode's state (done, turns) and
changes it only when a call succeeds. A reset without a seed draws one from the client's own
generator, so every episode can be replayed on a new session.
"""

from __future__ import annotations

import random
from types import TracebackType
from typing import Any

import httpx

from turngym.envs.remote_session import RemoteSession, RetryPolicy, Transport
from turngym.errors import ResetNeeded


class AsyncRemoteEnv:
    """Async client of one session on a ``turngym serve env`` server."""

    def __init__(self, session: RemoteSession) -> None:
        self._session = session
        health = session.health
        self.env_id: str = health["env_id"]
        self.max_turns = int(health["max_turns"])
        self.num_tasks = int(health["num_tasks"])
        self.turns = 0
        self.done = True
        self._rng = random.Random()

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        transport: Transport = "http",
        timeout_s: float = 60.0,
        retries: int = 10,
        backoff_s: float = 0.05,
        token: str | None = None,
        recover: bool = True,
        http_transport: httpx.AsyncBaseTransport | None = None,
    ) -> AsyncRemoteEnv:
        """Connect to the server at ``url`` and open a session."""
        session = RemoteSession(
            url,
            transport=transport,
            timeout_s=timeout_s,
            retry=RetryPolicy(retries=retries, backoff_s=backoff_s),
            token=token,
            recover=recover,
            http_transport=http_transport,
        )
        try:
            await session.open()
        except BaseException:
            await session.close()
            raise
        return cls(session)

    @property
    def recoveries(self) -> int:
        """How many times the session was re-created and its episode replayed."""
        return self._session.recoveries

    async def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        options = dict(options or {})
        task_id = options.pop("task_id", None)
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; the only option is 'task_id'")
        self.done = True  # stays so if the reset fails
        data = await self._session.reset(self._rng.randrange(2**31) if seed is None else seed, task_id)
        self.turns, self.done = 0, False
        return str(data["observation"]), data["info"]

    async def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self.done:
            raise ResetNeeded("step() called before reset() or after the episode ended; call reset() first")
        data = await self._session.step(action)
        self.turns += 1
        terminated, truncated = bool(data["terminated"]), bool(data["truncated"])
        self.done = terminated or truncated
        return (
            str(data["observation"]),
            float(data["reward"]),
            terminated,
            truncated,
            data["info"],
        )

    async def close(self) -> None:
        """Delete the session; never raises because the server is gone."""
        self.done = True
        await self._session.close()

    async def __aenter__(self) -> AsyncRemoteEnv:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
