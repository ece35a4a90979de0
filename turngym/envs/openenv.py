"""OpenEnv interoperability, both ways, over OpenEnv's WebSocket protocol (``WS /ws``); its
stateless plain-HTTP endpoints are :mod:`turngym.envs.openenv_http`.

OpenEnv (PyPI ``openenv``) clients open ``WS /ws``, which gives the connection its own env
instance, and exchange ``{"type": "reset"|"step"|"state"|"close", "data": {...}}`` messages. A
reset or step is answered with ``{"type": "observation", "data": {"observation": {...}, "reward",
"done"}}``, a state query with ``{"type": "state", "data": {...}}`` and any failure with
``{"type": "error", "data": {"message", "code"}}`` (codes ``INVALID_JSON``, ``UNKNOWN_TYPE``,
``VALIDATION_ERROR``, ``EXECUTION_ERROR``, ``CAPACITY_REACHED``).

* **Serving** (:func:`add_openenv_routes`, on by default in ``turngym serve env``): the env server
  speaks that protocol at ``WS /ws``, on top of its own sessions (same limits, tokens and
  metrics). A turngym action is ``{"action": "<text>"}``; a reset takes ``seed``, ``task_id`` and
  OpenEnv's ``episode_id``; the observation is ``{"text", "info", "truncated"}`` and ``done`` is
  ``terminated or truncated``. ``GET /schema`` describes the action and observation.
* **Wrapping** (:class:`OpenEnvEnv`): any OpenEnv server becomes a turngym
  :class:`~turngym.envs.core.TextEnv`. The action text goes into the field ``action_field`` of
  the OpenEnv action; the observation text is the field ``text_field`` of its observation (or the
  whole observation as sorted JSON); ``done`` is termination, and an episode counts as won when it
  ends with a positive reward. A step the server refuses (its action schema) is an invalid
  action, never an exception, as the turngym contract requires.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import Any

from fastapi import FastAPI, WebSocket
from starlette.websockets import WebSocketDisconnect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import ClientConnection, connect

from turngym.envs.core import StepOutcome, TextEnv
from turngym.envs.openenv_http import add_openenv_http_routes
from turngym.envs.server_sessions import EnvService, Reply, StepRequest, bearer
from turngym.errors import EnvError

CODES = {401: "SESSION_ERROR", 403: "SESSION_ERROR", 404: "SESSION_ERROR", 409: "EXECUTION_ERROR",
         413: "VALIDATION_ERROR", 422: "VALIDATION_ERROR", 429: "CAPACITY_REACHED",
         500: "EXECUTION_ERROR", 503: "CAPACITY_REACHED", 504: "EXECUTION_ERROR"}  # fmt: skip
"""OpenEnv's error code for each status of the turngym API."""

OBSERVATION_SCHEMA = {
    "type": "object",
    "properties": {
        "text": {"type": "string"},
        "info": {"type": "object"},
        "truncated": {"type": "boolean"},
        "done": {"type": "boolean"},
        "reward": {"type": ["number", "null"]},
    },
}


def _error(message: str, code: str) -> dict[str, Any]:
    return {"type": "error", "data": {"message": message, "code": code}}


def _failed(reply: Reply) -> dict[str, Any]:
    status, body = reply
    detail = body.get("detail", body) if isinstance(body, dict) else body
    return _error(f"{status}: {detail}", CODES.get(status, "EXECUTION_ERROR"))


def add_openenv_routes(app: FastAPI, service: EnvService) -> None:
    """``WS /ws``, ``GET /schema`` and the stateless ``POST /reset``, ``POST /step`` and
    ``GET /state`` (:mod:`turngym.envs.openenv_http`) in OpenEnv's shapes, served by ``service``'s
    sessions."""
    add_openenv_http_routes(app, service)

    @app.get("/schema")
    def schema() -> dict[str, Any]:
        return {
            "action": StepRequest.model_json_schema(),
            "observation": OBSERVATION_SCHEMA,
            "state": {"type": "object", "properties": {"episode_id": {}, "step_count": {"type": "integer"}}},
        }

    @app.websocket("/ws")
    async def openenv_channel(websocket: WebSocket) -> None:
        token = bearer(websocket.headers)
        await websocket.accept()
        status, body = await service.create(token)
        if status != 201:
            await websocket.send_json(_failed((status, body)))
            await websocket.close(code=1008)
            return
        sid = body["session_id"]
        state: dict[str, Any] = {"episode_id": None, "step_count": 0}
        try:
            while True:
                frame = await websocket.receive()
                if frame["type"] == "websocket.disconnect":
                    return
                answer = await _answer(service, sid, token, frame, state)
                if answer is None:
                    return
                await websocket.send_json(answer)
        except WebSocketDisconnect:
            return
        finally:
            if sid in service.sessions:
                await service.delete(sid, token)


async def _answer(
    service: EnvService, sid: str, token: str | None, frame: dict[str, Any], state: dict[str, Any]
) -> dict[str, Any] | None:
    """The reply to one OpenEnv message, or None for ``close``."""
    raw = frame.get("text") if frame.get("text") is not None else frame.get("bytes") or b""
    if len(raw) > service.limits.max_body_bytes:
        return _error(
            f"message is over the limit of {service.limits.max_body_bytes} bytes", "VALIDATION_ERROR"
        )
    try:
        message = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        return _error(f"Invalid JSON: {exc}", "INVALID_JSON")
    if not isinstance(message, dict):
        return _error("a message must be a JSON object", "VALIDATION_ERROR")
    kind, data = message.get("type"), message.get("data", {})
    if kind == "close":
        return None
    if kind == "state":
        return {"type": "state", "data": dict(state)}
    if kind not in ("reset", "step"):
        return _error(f"Unknown message type: {kind}", "UNKNOWN_TYPE")
    if not isinstance(data, dict):
        return _error("'data' must be a JSON object", "VALIDATION_ERROR")
    if kind == "reset":
        body = {k: data[k] for k in ("seed", "task_id") if k in data}
        reply = await service.call(sid, "reset", body, token, None)
        if reply[0] != 200:
            return _failed(reply)
        state.update(episode_id=data.get("episode_id") or uuid.uuid4().hex, step_count=0)
        result = reply[1]
        observation = {"text": result["observation"], "info": result["info"], "truncated": False}
        return {"type": "observation", "data": {"observation": observation, "reward": None, "done": False}}
    body = {k: v for k, v in data.items() if k != "metadata"}  # OpenEnv actions carry metadata
    reply = await service.call(sid, "step", body, token, None)
    if reply[0] != 200:
        return _failed(reply)
    result = reply[1]
    state["step_count"] += 1
    observation = {"text": result["observation"], "info": result["info"], "truncated": result["truncated"]}
    done = bool(result["terminated"] or result["truncated"])
    return {
        "type": "observation",
        "data": {"observation": observation, "reward": result["reward"], "done": done},
    }


class OpenEnvEnv(TextEnv):
    """A turngym env played on an OpenEnv server (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        action_field: str = "action",
        text_field: str | None = None,
        num_tasks: int = 1,
        max_turns: int = 50,
        timeout_s: float = 60.0,
        token: str | None = None,
    ) -> None:
        super().__init__(max_turns=max_turns)
        self.url = url
        self.action_field, self.text_field = action_field, text_field
        self._num_tasks, self._timeout_s = num_tasks, timeout_s
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            self._ws: ClientConnection | None = connect(
                "ws" + url.rstrip("/").removeprefix("http") + "/ws",
                additional_headers=headers, open_timeout=timeout_s, max_size=None, proxy=None,
            )  # fmt: skip
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise EnvError(f"cannot reach the OpenEnv server at {url}: {exc!r}") from exc

    @property
    def num_tasks(self) -> int:
        return self._num_tasks

    def _exchange(self, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        if self._ws is None:
            raise EnvError("this OpenEnvEnv is closed; create a new one")
        try:
            self._ws.send(json.dumps({"type": kind, "data": data}))
            return json.loads(self._ws.recv(timeout=self._timeout_s))
        except (ConnectionClosed, TimeoutError) as exc:
            raise EnvError(f"the OpenEnv server at {self.url} did not answer {kind}: {exc!r}") from exc

    def _text(self, observation: dict[str, Any]) -> str:
        if self.text_field is None:
            return json.dumps(observation, sort_keys=True)
        return str(observation.get(self.text_field, ""))

    def _reset(self, task_id: Any) -> str:
        seed = int(self.np_random.integers(2**31))
        reply = self._exchange("reset", {"seed": seed, "episode_id": f"task-{task_id}-seed-{seed}"})
        if reply.get("type") == "error":
            raise EnvError(f"the OpenEnv server refused reset: {reply['data'].get('message')}")
        return self._text(reply["data"].get("observation", {}))

    def _step(self, action: str) -> StepOutcome:
        reply = self._exchange("step", {self.action_field: action})
        if reply.get("type") == "error":
            message = reply["data"].get("message", "refused")
            return StepOutcome(f"Invalid action: {message}", invalid_action=True)
        data = reply["data"]
        reward, done = float(data.get("reward") or 0.0), bool(data.get("done"))
        return StepOutcome(self._text(data.get("observation", {})), reward=reward, terminated=done,
                           won=done and reward > 0)  # fmt: skip

    def close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(ConnectionClosed):
                ws.send(json.dumps({"type": "close"}))
            ws.close()
        super().close()
