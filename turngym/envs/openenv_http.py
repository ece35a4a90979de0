"""OpenEnv's plain-HTTP simulation endpoints, ``POST /reset``, ``POST /step`` and ``GET /state``.

OpenEnv's HTTP server (``openenv.core.env_server.http_server``) keeps no session between requests:
every call builds a fresh env instance, runs one call on it and closes it. Multi-turn episodes go
over ``WS /ws``; these endpoints are its stateless path, mirrored here with the same bodies:

* ``POST /reset`` with ``{"seed"?: int >= 0, "episode_id"?: str, "task_id"?: int|str}`` →
  ``{"observation": {"text", "info", "truncated"}, "reward": null, "done": false}``.
* ``POST /step`` with ``{"action": {"action": str}, "timeout_s"?: number > 0, "request_id"?: str,
  "seed"?, "task_id"?}`` → ``{"observation", "reward", "done"}``. A turngym env must be reset
  before it steps, so the fresh env is reset with the request's ``seed`` and ``task_id`` first: a
  one-step episode, which is what OpenEnv's HTTP path gives any env.
* ``GET /state`` → a fresh env's state, ``{"episode_id": null, "step_count": 0}``, as OpenEnv's.
* ``GET /metadata`` → ``{"name": <env id>, "description": <first line of the env class's
  docstring>, "version": <turngym's>}``.

Each call is a turngym session underneath, so the server's session and in-flight limits, tokens,
deadlines (``timeout_s``, capped at the server's) and metrics hold. A malformed body is a 4xx with
``{"detail": ...}`` naming the field.
"""

from __future__ import annotations

from typing import Any

import pydantic
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from turngym import __version__
from turngym.envs.server_sessions import EnvService, Reply, bearer, parse, respond
from turngym.tools.server import documented, read_json_body


class OpenEnvResetRequest(pydantic.BaseModel):
    """OpenEnv's reset body; ``task_id`` is turngym's extra field."""

    model_config = pydantic.ConfigDict(extra="forbid")
    seed: int | None = pydantic.Field(default=None, ge=0, lt=2**63)
    episode_id: str | None = pydantic.Field(default=None, max_length=255)
    task_id: int | str | None = None


class TextAction(pydantic.BaseModel):
    """A turngym action in OpenEnv's shape."""

    model_config = pydantic.ConfigDict(extra="forbid")
    action: str


class OpenEnvStepRequest(pydantic.BaseModel):
    """OpenEnv's step body; ``seed`` and ``task_id`` choose the episode the fresh env plays."""

    model_config = pydantic.ConfigDict(extra="forbid")
    action: TextAction
    timeout_s: float | None = pydantic.Field(default=None, gt=0)
    request_id: str | None = pydantic.Field(default=None, max_length=255)
    seed: int | None = pydantic.Field(default=None, ge=0, lt=2**63)
    task_id: int | str | None = None


class OpenEnvResult(pydantic.BaseModel):
    """OpenEnv's reply to a reset or a step."""

    observation: dict[str, Any]
    reward: float | None = None
    done: bool = False


class OpenEnvMetadata(pydantic.BaseModel):
    name: str
    description: str
    version: str


class OpenEnvState(pydantic.BaseModel):
    episode_id: str | None = None
    step_count: int = 0


def add_openenv_http_routes(app: FastAPI, service: EnvService) -> None:
    """``POST /reset``, ``POST /step`` and ``GET /state`` in OpenEnv's shapes (module docstring)."""
    limit_s = service.limits.request_timeout_s
    probe = service.factory()
    doc = (type(probe).__doc__ or "").strip()
    probe.close()
    metadata = OpenEnvMetadata(
        name=service.env_id, description=doc.splitlines()[0] if doc else service.env_id, version=__version__
    ).model_dump()

    async def one_shot(request: Request, model: type[pydantic.BaseModel]) -> Response:
        payload = await read_json_body(request, service.limits.max_body_bytes)
        if isinstance(payload, JSONResponse):
            return payload
        parsed = parse(model, payload)
        if isinstance(parsed, tuple):
            return respond(parsed)
        token = bearer(request.headers)
        created = await service.create(token)
        if created[0] != 201:
            return respond(created)
        sid = created[1]["session_id"]
        try:
            return respond(await _play(service, sid, token, parsed, limit_s))
        finally:
            if sid in service.sessions:
                await service.delete(sid, token)

    @app.post("/reset", response_model=OpenEnvResult, **documented(401, 413, 422, 429, 500, 503, 504,
                                                                   body=OpenEnvResetRequest))  # fmt: skip
    async def reset(request: Request) -> Response:
        return await one_shot(request, OpenEnvResetRequest)

    @app.post("/step", response_model=OpenEnvResult, **documented(401, 413, 422, 429, 500, 503, 504,
                                                                 body=OpenEnvStepRequest))  # fmt: skip
    async def step(request: Request) -> Response:
        return await one_shot(request, OpenEnvStepRequest)

    @app.get("/state", response_model=OpenEnvState, **documented(401))
    def state(request: Request) -> Response:
        denied = service.authorize(bearer(request.headers))
        return respond(denied or (200, OpenEnvState().model_dump()))

    @app.get("/metadata", response_model=OpenEnvMetadata, **documented(401))
    def describe(request: Request) -> Response:
        denied = service.authorize(bearer(request.headers))
        return respond(denied or (200, metadata))


async def _play(
    service: EnvService, sid: str, token: str | None, request: pydantic.BaseModel, limit_s: float
) -> Reply:
    """Reset session ``sid`` as ``request`` says and, for a step request, take its action."""
    episode = {k: v for k in ("seed", "task_id") if (v := getattr(request, k)) is not None}
    timeout = min(getattr(request, "timeout_s", None) or limit_s, limit_s)
    status, reset = await service.call(sid, "reset", episode, token, timeout)
    if status != 200:
        return status, reset
    if not isinstance(request, OpenEnvStepRequest):
        observation = {"text": reset["observation"], "info": reset["info"], "truncated": False}
        return 200, {"observation": observation, "reward": None, "done": False}
    status, result = await service.call(sid, "step", {"action": request.action.action}, token, timeout)
    if status != 200:
        return status, result
    observation = {"text": result["observation"], "info": result["info"], "truncated": result["truncated"]}
    done = bool(result["terminated"] or result["truncated"])
    return 200, {"observation": observation, "reward": result["reward"], "done": done}
