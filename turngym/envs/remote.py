"""``RemoteEnv``: a :class:`~turngym.envs.core.TextEnv` whose state lives on an env server.

It opens a session on construction (``POST /sessions``), forwards ``reset``/``step`` and deletes
the session on ``close``. The base class still counts turns and checks reset-before-step locally,
and ``max_turns``/``num_tasks`` come from the server's ``/health``, so a remote env behaves — and
passes ``check_env`` — exactly like the local one: same seed and task, same observations and
anchors. Connection failures are retried (bounded, with backoff); HTTP errors raise
:class:`~turngym.errors.EnvError` with the server's message.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import httpx

from turngym.envs.core import StepOutcome, TextEnv
from turngym.errors import EnvError
from turngym.http import send
from turngym.trajectory import from_jsonable


class RemoteEnv(TextEnv):
    """Client of a ``turngym serve env`` server."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 60.0,
        retries: int = 3,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(base_url=url, timeout=timeout_s, transport=transport)
        self._retries = retries
        health = self._call("GET", "/health")
        super().__init__(max_turns=int(health["max_turns"]))
        self.env_id: str = health["env_id"]
        self._num_tasks = int(health["num_tasks"])
        self._sid: str | None = self._call("POST", "/sessions")["session_id"]
        self._remote_info: dict[str, Any] = {}
        self._seed_given: int | None = None

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = send(
            self._http, method, path, retries=self._retries, backoff_s=0.1,
            error=EnvError, server="env server", json=body,
        )  # fmt: skip
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text[:300]
            raise EnvError(f"env server answered {response.status_code} to {method} {path}: {detail}")
        return response.json() if response.content else None

    @property
    def num_tasks(self) -> int:
        return self._num_tasks

    def _path(self, verb: str) -> str:
        if self._sid is None:
            raise EnvError("this RemoteEnv is closed; create a new one")
        return f"/sessions/{self._sid}/{verb}"

    def _reset(self, task_id: Any) -> str:
        seed = int(self.np_random.integers(2**31)) if self._seed_given is None else self._seed_given
        data = self._call("POST", self._path("reset"), {"seed": seed, "task_id": task_id})
        self._remote_info = from_jsonable(data["info"])
        return str(data["observation"])

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        self._seed_given = seed
        return super().reset(seed=seed, options=options)

    def _step(self, action: str) -> StepOutcome:
        data = self._call("POST", self._path("step"), {"action": action})
        info = from_jsonable(data["info"])
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
        if self._sid is not None:
            sid, self._sid = self._sid, None
            try:
                self._call("DELETE", f"/sessions/{sid}")
            finally:
                self._http.close()
        super().close()
