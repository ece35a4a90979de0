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
* ``WS /sessions/mux``: many sessions over one socket. A frame holds one channel message or a
  JSON array of them, each with a ``"session_id"``; they are answered concurrently (each session's
  calls in order) and every frame the server sends is a JSON array of replies, each tagged with its
  message's ``id`` and ``session_id``. A message without a string ``session_id`` gets a 422 error.
* ``WS /sessions/{id}/ws``: a channel for one session. The client sends ``{"type": "reset"|"step"|
  "close", "data": {...}, "id"?: any, "deadline_s"?: number}`` where ``data`` is the HTTP body; each
  message is answered with ``{"type": "result"|"error", "status", "data", "id"}`` where ``status`` and
  ``data`` are those of the HTTP call. A malformed message gets an error message; the socket stays.

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
import json
import math
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs

import pydantic
from fastapi import FastAPI, Request, Response, WebSocket
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from starlette.websockets import WebSocketDisconnect

from turngym.envs.core import TextEnv
from turngym.envs.openenv import add_openenv_routes
from turngym.envs.server_sessions import (
    BadReset,
    EnvService,
    Reply,
    ResetRequest,
    ServerLimits,
    Session,
    StepRequest,
    error,
    parse,
)
from turngym.tools.server import documented, read_body, read_json_body

__all__ = ["BadReset", "ResetRequest", "ServerLimits", "StepRequest", "create_env_app"]

DEADLINE_HEADER = "x-turngym-deadline-s"
RETRY_AFTER_S = "1"


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


def bearer(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if any."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _respond(reply: Reply) -> Response:
    status, body = reply
    if status == 204:
        return Response(status_code=204)
    headers = {"Retry-After": RETRY_AFTER_S} if status in (429, 503) else None
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    return JSONResponse(status_code=status, content=body, headers=headers)


def _deadline(raw: str | None, limit_s: float) -> float | Reply:
    """The call's deadline in seconds: the client's (capped at ``limit_s``) or ``limit_s``."""
    if raw is None:
        return limit_s
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        return error(422, f"{DEADLINE_HEADER} must be a positive number of seconds, got {raw!r}")
    return min(value, limit_s)


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

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        reaper = asyncio.create_task(service.reap_forever(interval))
        try:
            yield
        finally:
            reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reaper
            await service.close_all()

    app = FastAPI(title=f"turngym env server: {env_id}", lifespan=lifespan)
    app.state.service = service

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "sessions": len(service.sessions), "max_sessions": max_sessions, **meta}

    @app.get("/envs", **documented(401))
    def envs(request: Request) -> Any:
        denied = service.authorize(bearer(request.headers))
        return _respond(denied) if denied else {"envs": [meta]}

    @app.get("/metrics", response_class=PlainTextResponse, **documented(401))
    def metrics(request: Request) -> Response:
        denied = service.authorize(bearer(request.headers))
        if denied:
            return _respond(denied)
        return PlainTextResponse(
            service.metrics.render(service.gauges()), media_type="text/plain; version=0.0.4"
        )

    @app.post("/sessions", status_code=201, response_model=SessionCreated, **documented(401, 429, 500))
    async def create_session(request: Request) -> Response:
        return _respond(await service.create(bearer(request.headers)))

    async def http_call(sid: str, op: str, request: Request) -> Response:
        timeout = _deadline(request.headers.get(DEADLINE_HEADER), limits.request_timeout_s)
        if isinstance(timeout, tuple):
            return _respond(timeout)
        payload = await read_json_body(request, max_body_bytes)
        if isinstance(payload, JSONResponse):
            return payload
        return _respond(await service.call(sid, op, payload, bearer(request.headers), timeout))

    call_errors = (401, 403, 404, 409, 413, 422, 500, 503, 504)

    @app.post("/sessions/batch", response_model=BatchReply, **documented(401, 413, 422, body=BatchRequest))
    async def batch(request: Request) -> Response:
        token = bearer(request.headers)
        denied = service.authorize(token)
        if denied:
            return _respond(denied)
        timeout = _deadline(request.headers.get(DEADLINE_HEADER), limits.request_timeout_s)
        if isinstance(timeout, tuple):
            return _respond(timeout)
        payload = await read_json_body(request, max_body_bytes)
        if isinstance(payload, JSONResponse):
            return payload
        parsed = parse(BatchRequest, payload)
        if isinstance(parsed, tuple):
            return _respond(parsed)
        assert isinstance(parsed, BatchRequest)
        if len(parsed.calls) > limits.max_batch:
            return _respond(error(422, f"{len(parsed.calls)} calls is over the limit of {limits.max_batch}"))
        replies = await asyncio.gather(
            *(service.call(c.session_id, c.type, c.data, token, timeout) for c in parsed.calls)
        )
        return JSONResponse({"results": [{"status": s, "data": d} for s, d in replies]})

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
        return _respond(await service.delete(sid, bearer(request.headers)))

    @app.websocket("/sessions/mux")
    async def mux(websocket: WebSocket) -> None:
        await _serve_mux(websocket, service)

    @app.websocket("/sessions/{sid}/ws")
    async def channel(websocket: WebSocket, sid: str) -> None:
        await _serve_channel(websocket, sid, service)

    if openenv:
        add_openenv_routes(app, service, bearer)
    if html:
        _add_browser_ui(app, factory, env_id, max_body_bytes)
    return app


def _envelope(text: str | None, data: bytes | None, limit: int) -> dict[str, Any] | Reply:
    """A WebSocket message as an object with a known ``type``, or an error reply naming the fault."""
    raw: str | bytes = text if text is not None else (data or b"")
    if len(raw) > limit:
        return error(413, f"message of {len(raw)} bytes is over the limit of {limit}")
    try:
        message = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        return error(422, f"message is not valid JSON: {exc}")
    return _checked(message)


def _checked(message: Any) -> dict[str, Any] | Reply:
    """A decoded channel message, or the error reply naming what is wrong with it."""
    if not isinstance(message, dict):
        return error(422, f"message must be a JSON object, got {type(message).__name__}")
    kind = message.get("type")
    if kind not in ("reset", "step", "close"):
        return error(422, f"message 'type' must be 'reset', 'step' or 'close', got {kind!r}")
    if not isinstance(message.get("data", {}), dict):
        return error(422, "message 'data' must be a JSON object (the HTTP call's body)")
    return message


async def _serve_channel(websocket: WebSocket, sid: str, service: EnvService) -> None:
    """One session's WebSocket channel: answer each message in turn until the client leaves."""
    token = bearer(websocket.headers)
    await websocket.accept()
    found = service.lookup(sid, token)
    try:
        if not isinstance(found, Session):
            status, body = found
            await websocket.send_json({"type": "error", "status": status, "data": body, "id": None})
            await websocket.close(code=1008)
            return
        while True:
            frame = await websocket.receive()
            if frame["type"] == "websocket.disconnect":
                return
            message = _envelope(frame.get("text"), frame.get("bytes"), service.limits.max_body_bytes)
            msg_id = message.get("id") if isinstance(message, dict) else None
            if isinstance(message, tuple):
                reply = message
            else:
                message["session_id"] = sid
                reply = await _answer(service, message, token)
            status, body = reply
            kind = "error" if status >= 400 else "result"
            await websocket.send_json({"type": kind, "status": status, "data": body, "id": msg_id})
            if isinstance(message, dict) and message["type"] == "close" and status < 400:
                await websocket.close(code=1000)
                return
    except WebSocketDisconnect:
        return


async def _answer(service: EnvService, message: dict[str, Any], token: str | None) -> Reply:
    """The reply to one well-formed channel message about session ``message["session_id"]``."""
    sid = message["session_id"]
    if message["type"] == "close":
        return await service.delete(sid, token)
    raw = message.get("deadline_s")
    timeout = _deadline(None if raw is None else str(raw), service.limits.request_timeout_s)
    if isinstance(timeout, tuple):
        return timeout
    return await service.call(sid, message["type"], message.get("data", {}), token, timeout)


def _mux_messages(text: str | None, data: bytes | None, limit: int) -> list[tuple[dict[str, Any], Any]]:
    """A multiplexed frame's messages (one object, or an array of them), each checked like a channel
    message and for a string ``session_id``: pairs of the raw message (``{}`` if not an object, for
    its ``id``) and the checked message or the error reply naming its fault."""
    raw: str | bytes = text if text is not None else (data or b"")
    if len(raw) > limit:
        return [({}, error(413, f"message of {len(raw)} bytes is over the limit of {limit}"))]
    try:
        decoded = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        return [({}, error(422, f"message is not valid JSON: {exc}"))]
    out: list[tuple[dict[str, Any], Any]] = []
    for item in decoded if isinstance(decoded, list) else [decoded]:
        message = _checked(item)
        if isinstance(message, dict) and not isinstance(message.get("session_id"), str):
            message = error(422, "a multiplexed message needs a string 'session_id'")
        out.append((item if isinstance(item, dict) else {}, message))
    return out


async def _serve_mux(websocket: WebSocket, service: EnvService) -> None:
    """Many sessions over one WebSocket (see the module docstring). A call to a session whose env is
    :attr:`~turngym.envs.core.TextEnv.nonblocking` is answered on the spot; any other runs as its own
    task, so a slow env never holds up the socket. Replies ready together leave in one frame."""
    token = bearer(websocket.headers)
    await websocket.accept()
    denied = service.authorize(token)
    if denied is not None:
        await websocket.send_json([{"type": "error", "status": denied[0], "data": denied[1], "id": None}])
        await websocket.close(code=1008)
        return
    outbox: list[dict[str, Any]] = []
    ready = asyncio.Event()
    pending: set[asyncio.Task[None]] = set()

    def post(message: dict[str, Any], reply: Reply) -> None:
        status, body = reply
        outbox.append({"type": "error" if status >= 400 else "result", "status": status, "data": body,
                       "id": message.get("id"), "session_id": message.get("session_id")})  # fmt: skip
        ready.set()

    async def handle(message: dict[str, Any]) -> None:
        post(message, await _answer(service, message, token))

    async def write() -> None:
        while True:
            await ready.wait()
            ready.clear()
            batch = outbox.copy()
            outbox.clear()
            await websocket.send_text(json.dumps(batch))

    writer = asyncio.create_task(write())
    try:
        while True:
            frame = await websocket.receive()
            if frame["type"] == "websocket.disconnect":
                return
            limit = service.limits.max_body_bytes
            for raw, message in _mux_messages(frame.get("text"), frame.get("bytes"), limit):
                if isinstance(message, tuple):
                    post(raw, message)
                    continue
                session = service.sessions.get(message["session_id"])
                inline = session is not None and type(session.env).nonblocking and not session.lock.locked()
                if inline and message["type"] != "close":
                    post(message, await _answer(service, message, token))
                else:
                    task = asyncio.create_task(handle(message))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
    except WebSocketDisconnect:
        return
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
            await writer


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
