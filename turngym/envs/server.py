"""Serve any registered environment over HTTP and WebSocket, one env instance per session.

Control API (the orchestrator's, never offered to a policy as a tool):

* ``GET /health`` → ``{"status", "env_id", "sessions", "max_sessions", "max_turns", "num_tasks"}``
  (open to anyone: a liveness probe).
* ``GET /envs`` → ``{"envs": [{"env_id", "max_turns", "num_tasks"}]}``; ``GET /metrics`` → the
  Prometheus text exposition (sessions, calls, errors by kind, a latency histogram per call).
* ``POST /sessions`` → 201 ``{"session_id"}``; 429 with ``Retry-After`` when ``max_sessions`` are
  open.
* ``POST /sessions/{id}/reset`` with ``{"seed": int|null, "task_id": any|null}`` →
  ``{"observation", "info"}``
* ``POST /sessions/{id}/step`` with ``{"action": str}`` →
  ``{"observation", "reward", "terminated", "truncated", "info"}``; 409 before reset.
* ``DELETE /sessions/{id}`` → 204.
* ``POST /sessions/batch`` with ``{"calls": [{"session_id", "type": "reset"|"step", "data": {...}}]}``
  → ``{"results": [{"status", "data"}]}``: many sessions' calls in one request, run concurrently,
  each answered as its own HTTP call would be.
* ``WS /ws`` and ``GET /schema``: OpenEnv's protocol (a session per connection), see
  :mod:`turngym.envs.openenv`; ``POST /reset``, ``POST /step``, ``GET /state`` and ``GET /metadata``:
  OpenEnv's stateless HTTP endpoints, see :mod:`turngym.envs.openenv_http`.
* ``WS /sessions/mux``: many sessions over one socket; ``WS /sessions/{id}/ws``: a channel for one
  session, each message answered as its HTTP call would be; see :mod:`turngym.envs.server_ws`.

Limits (:class:`~turngym.envs.server_sessions.ServerLimits`): sessions, env calls in flight (503 with
``Retry-After`` at once, never a queue), an idle TTL enforced by a background reaper, per-call
deadlines (header ``X-Turngym-Deadline-S`` or the server's ``request_timeout_s``, whichever is
smaller; 504 when passed) and body size (413). With ``tokens`` every endpoint but ``/health`` needs
``Authorization: Bearer <token>``, and a session answers only to the token that created it (403).

Errors are JSON ``{"detail": ...}``: 404 unknown session, 413 body over ``max_body_bytes``, 422
malformed JSON, a body failing the schema (naming the field) or a task the env refuses. ``info`` is
encoded with :func:`~turngym.trajectory.to_jsonable` so tuple anchors survive the trip. Env calls run
in worker threads (on the event loop for an env class declaring
:attr:`~turngym.envs.core.TextEnv.nonblocking`); each session's calls run one at a time.

With ``html=True`` a person can play in a browser at ``GET /ui/``: the page shows the env's
``render_html()`` fragment when it has one (forms there POST ``action`` to the relative URL
``act``), else the observation and a text box; ``POST /ui/act`` applies the action and
``GET /ui/reset`` starts a new episode.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any
from urllib.parse import parse_qs

import pydantic
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse

from turngym.envs.core import TextEnv
from turngym.envs.openenv import add_openenv_routes
from turngym.envs.server_sessions import (
    DEADLINE_HEADER,
    BadReset,
    EnvService,
    ResetRequest,
    ServerLimits,
    StepRequest,
    bearer,
    deadline,
    error,
    parse,
    respond,
)
from turngym.envs.server_ws import add_websocket_routes
from turngym.tools.server import documented, read_body, read_json_body

__all__ = ["BadReset", "ResetRequest", "ServerLimits", "StepRequest", "create_env_app"]


class SessionCreated(pydantic.BaseModel):
    session_id: str


class ResetReply(pydantic.BaseModel):
    observation: str
    info: dict[str, Any]


class StepReply(pydantic.BaseModel):
    observation: str
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]


class BatchCall(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    session_id: str
    type: str = pydantic.Field(pattern="^(reset|step)$")
    data: dict[str, Any] = pydantic.Field(default_factory=dict)


class BatchRequest(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    calls: list[BatchCall]


class BatchResult(pydantic.BaseModel):
    status: int
    data: Any


class BatchReply(pydantic.BaseModel):
    results: list[BatchResult]


def create_env_app(
    env_id: str,
    factory: Callable[[], TextEnv],
    *,
    max_sessions: int = 64,
    session_ttl_s: float = 600.0,
    max_body_bytes: int = 1 << 20,
    html: bool = False,
    max_inflight: int = 256,
    request_timeout_s: float = 60.0,
    tokens: Sequence[str] = (),
    reap_interval_s: float | None = None,
    openenv: bool = True,
) -> FastAPI:
    """An app serving sessions of the env that ``factory`` builds.

    The reaper runs every ``reap_interval_s`` (default: a quarter of the TTL, at most 30 s). With
    ``openenv`` the app also speaks OpenEnv's protocol at ``WS /ws`` (:mod:`turngym.envs.openenv`).
    """
    limits = ServerLimits(
        max_sessions=max_sessions,
        max_inflight=max_inflight,
        session_ttl_s=session_ttl_s,
        request_timeout_s=request_timeout_s,
        max_body_bytes=max_body_bytes,
    )
    probe = factory()
    meta = {"env_id": env_id, "max_turns": probe.max_turns, "num_tasks": probe.num_tasks}
    probe.close()
    service = EnvService(env_id, factory, limits, tokens)
    interval = reap_interval_s if reap_interval_s is not None else min(session_ttl_s / 4, 30.0)
    app = FastAPI(title=f"turngym env server: {env_id}", lifespan=_lifespan(service, interval))
    app.state.service = service
    _add_info_routes(app, service, meta)
    _add_session_routes(app, service)
    add_websocket_routes(app, service)
    if openenv:
        add_openenv_routes(app, service)
    if html:
        _add_browser_ui(app, factory, env_id, max_body_bytes)
    return app


def _lifespan(
    service: EnvService, interval_s: float
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """The app's lifespan: the reaper runs every ``interval_s`` while it serves, and at the end
    every session is closed."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        reaper = asyncio.create_task(service.reap_forever(interval_s))
        try:
            yield
        finally:
            reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reaper
            await service.close_all()

    return lifespan


def _add_info_routes(app: FastAPI, service: EnvService, meta: dict[str, Any]) -> None:
    """``GET /health``, ``GET /envs`` and ``GET /metrics``."""

    @app.get("/health")
    def health() -> dict[str, Any]:
        sessions, limit = len(service.sessions), service.limits.max_sessions
        return {"status": "ok", "sessions": sessions, "max_sessions": limit, **meta}

    @app.get("/envs", **documented(401))
    def envs(request: Request) -> Any:
        denied = service.authorize(bearer(request.headers))
        return respond(denied) if denied else {"envs": [meta]}

    @app.get("/metrics", response_class=PlainTextResponse, **documented(401))
    def metrics(request: Request) -> Response:
        denied = service.authorize(bearer(request.headers))
        if denied:
            return respond(denied)
        return PlainTextResponse(
            service.metrics.render(service.gauges()), media_type="text/plain; version=0.0.4"
        )


def _add_session_routes(app: FastAPI, service: EnvService) -> None:
    """``POST /sessions``, ``POST /sessions/batch``, a session's ``reset`` and ``step``, and
    ``DELETE /sessions/{id}``."""
    limits = service.limits

    @app.post("/sessions", status_code=201, response_model=SessionCreated, **documented(401, 429, 500))
    async def create_session(request: Request) -> Response:
        return respond(await service.create(bearer(request.headers)))

    async def http_call(sid: str, op: str, request: Request) -> Response:
        read = await _deadline_and_body(request, limits)
        if isinstance(read, Response):
            return read
        timeout, payload = read
        return respond(await service.call(sid, op, payload, bearer(request.headers), timeout))

    call_errors = (401, 403, 404, 409, 413, 422, 500, 503, 504)

    @app.post("/sessions/batch", response_model=BatchReply, **documented(401, 413, 422, body=BatchRequest))
    async def batch(request: Request) -> Response:
        return await _batch(service, request)

    @app.post(
        "/sessions/{sid}/reset", response_model=ResetReply, **documented(*call_errors, body=ResetRequest)
    )
    async def reset(sid: str, request: Request) -> Response:
        return await http_call(sid, "reset", request)

    @app.post("/sessions/{sid}/step", response_model=StepReply, **documented(*call_errors, body=StepRequest))
    async def step(sid: str, request: Request) -> Response:
        return await http_call(sid, "step", request)

    @app.delete("/sessions/{sid}", status_code=204, **documented(401, 403, 404))
    async def delete_session(sid: str, request: Request) -> Response:
        return respond(await service.delete(sid, bearer(request.headers)))


async def _deadline_and_body(request: Request, limits: ServerLimits) -> tuple[float, Any] | Response:
    """A call's ``(timeout, JSON body)``, or the 4xx response to a bad deadline header or body."""
    timeout = deadline(request.headers.get(DEADLINE_HEADER), limits.request_timeout_s)
    if isinstance(timeout, tuple):
        return respond(timeout)
    payload = await read_json_body(request, limits.max_body_bytes)
    if isinstance(payload, JSONResponse):
        return payload
    return timeout, payload


async def _batch(service: EnvService, request: Request) -> Response:
    """``POST /sessions/batch``: every call of the body run concurrently, each answered as its own
    HTTP call would be."""
    limits = service.limits
    token = bearer(request.headers)
    denied = service.authorize(token)
    if denied:
        return respond(denied)
    read = await _deadline_and_body(request, limits)
    if isinstance(read, Response):
        return read
    timeout, payload = read
    parsed = parse(BatchRequest, payload)
    if isinstance(parsed, tuple):
        return respond(parsed)
    assert isinstance(parsed, BatchRequest)
    if len(parsed.calls) > limits.max_batch:
        return respond(error(422, f"{len(parsed.calls)} calls is over the limit of {limits.max_batch}"))
    replies = await asyncio.gather(
        *(service.call(c.session_id, c.type, c.data, token, timeout) for c in parsed.calls)
    )
    return JSONResponse({"results": [{"status": s, "data": d} for s, d in replies]})


def _add_browser_ui(app: FastAPI, factory: Callable[[], TextEnv], env_id: str, max_body_bytes: int) -> None:
    """``/ui/``: one browser session playing the env."""
    env = factory()
    lock = threading.Lock()
    state = {"seed": 0, "last_reward": 0.0, "done": False}

    def new_episode() -> None:
        env.reset(seed=state["seed"])
        state.update(seed=state["seed"] + 1, last_reward=0.0, done=False)

    def page() -> str:
        render = getattr(env, "render_html", None)
        body = render() if callable(render) else f"<pre>{html.escape(env.observation)}</pre>"
        focus = "" if callable(render) else " autofocus"  # the env's own page keeps the focus
        actions = env.admissible_actions() or []
        options = "".join(f'<option value="{html.escape(a)}">' for a in actions)
        form = (
            ""
            if state["done"]
            else '<form method="post" action="act"><label>action: <input name="action" list="admissible" '
            f'size="60"{focus}></label><datalist id="admissible">{options}</datalist>'
            "<button>act</button></form>"
        )
        status = f"reward {state['last_reward']:g}" + (" &mdash; episode over" if state["done"] else "")
        return (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(env_id)}</title></head>"
            f"<body><h1>{html.escape(env_id)}</h1><p id='status'>{status} "
            f"<a href='reset'>new episode</a></p><div id='page'>{body}</div>{form}</body></html>"
        )

    @app.get("/ui", include_in_schema=False)
    def ui_root() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=307)

    @app.get("/ui/", response_class=HTMLResponse)
    def ui() -> str:
        with lock:
            if env.task_id is None:
                new_episode()
            return page()

    @app.get("/ui/reset", include_in_schema=False)
    def ui_reset() -> RedirectResponse:
        with lock:
            new_episode()
        return RedirectResponse("/ui/", status_code=303)

    @app.post("/ui/act", include_in_schema=False)
    async def ui_act(request: Request) -> Any:
        body = await read_body(request, max_body_bytes)
        if isinstance(body, JSONResponse):
            return body
        form = parse_qs(body.decode("utf-8", "replace"))
        action = form.get("action", [""])[0]
        with lock:
            if env.task_id is None or state["done"]:
                return RedirectResponse("/ui/", status_code=303)
            _, reward, terminated, truncated, _ = env.step(action)
            state.update(last_reward=reward, done=terminated or truncated)
        return RedirectResponse("/ui/", status_code=303)
