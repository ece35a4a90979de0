"""Serve any registered environment over HTTP, one env instance per session.

Control API (the orchestrator's, never offered to a policy as a tool):

* ``GET /health`` → ``{"status", "env_id", "sessions", "max_sessions", "max_turns", "num_tasks"}``
* ``POST /sessions`` → 201 ``{"session_id"}``; 429 when ``max_sessions`` are open.
* ``POST /sessions/{id}/reset`` with ``{"seed": int|null, "task_id": any|null}`` →
  ``{"observation", "info"}``
* ``POST /sessions/{id}/step`` with ``{"action": str}`` →
  ``{"observation", "reward", "terminated", "truncated", "info"}``; 409 before reset.
* ``DELETE /sessions/{id}`` → 204.

Errors are JSON: 404 unknown session, 413 body over ``max_body_bytes``, 422 malformed JSON, a
body failing the schema (naming the field) or a task the env refuses. ``info`` is encoded with
:func:`~turngym.trajectory.to_jsonable` so tuple anchors survive the trip. Sessions idle longer than
``session_ttl_s`` are closed when a new one is requested. Each session has a lock, so concurrent
calls on one session run one at a time; env calls run in a worker thread.

With ``html=True`` a person can play in a browser at ``GET /ui/``: the page shows the env's
``render_html()`` fragment when it has one (forms there POST ``action`` to the relative URL
``act``), else the observation and a text box; ``POST /ui/act`` applies the action and
``GET /ui/reset`` starts a new episode.
"""

from __future__ import annotations

import html
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import pydantic
from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from turngym.envs.core import TextEnv
from turngym.errors import ResetNeeded
from turngym.tools.server import error_response, read_body, read_json_body
from turngym.tools.spec import describe_validation_error
from turngym.trajectory import to_jsonable


class ResetRequest(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    seed: int | None = pydantic.Field(default=None, ge=0, lt=2**63)
    task_id: int | str | None = None


class BadReset(Exception):
    """The env refused the requested task (e.g. an out-of-range task id): the client's mistake."""


class StepRequest(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    action: str


@dataclass
class _Session:
    env: TextEnv
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_used: float = field(default_factory=time.monotonic)


class _Sessions:
    """Open sessions with a cap and idle expiry."""

    def __init__(self, factory: Callable[[], TextEnv], max_sessions: int, ttl_s: float) -> None:
        self._factory, self._max, self._ttl = factory, max_sessions, ttl_s
        self._open: dict[str, _Session] = {}
        self._guard = threading.Lock()

    def __len__(self) -> int:
        return len(self._open)

    def create(self) -> str | None:
        with self._guard:
            now = time.monotonic()
            for sid in [s for s, v in self._open.items() if now - v.last_used > self._ttl]:
                self._open.pop(sid).env.close()
            if len(self._open) >= self._max:
                return None
            sid = uuid.uuid4().hex
            self._open[sid] = _Session(self._factory())
            return sid

    def get(self, sid: str) -> _Session | None:
        session = self._open.get(sid)
        if session is not None:
            session.last_used = time.monotonic()
        return session

    def delete(self, sid: str) -> bool:
        with self._guard:
            session = self._open.pop(sid, None)
        if session is not None:
            session.env.close()
        return session is not None

    def close_all(self) -> None:
        for sid in list(self._open):
            self.delete(sid)


def _parse(model: type[pydantic.BaseModel], payload: Any) -> pydantic.BaseModel | JSONResponse:
    if not isinstance(payload, dict):
        return error_response(422, f"request body must be a JSON object, got {type(payload).__name__}")
    try:
        return model.model_validate(payload)
    except pydantic.ValidationError as exc:
        errors = describe_validation_error(exc)
        problems = "; ".join(f"{e['field']}: {e['problem']}" for e in errors)
        return error_response(422, f"invalid request body: {problems}", errors=errors)


def _reset(env: TextEnv, request: ResetRequest) -> dict[str, Any]:
    options = None if request.task_id is None else {"task_id": request.task_id}
    try:
        obs, info = env.reset(seed=request.seed, options=options)
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise BadReset(f"cannot reset to task {request.task_id!r}: {exc}") from exc
    return {"observation": obs, "info": to_jsonable(info)}


def _step(env: TextEnv, action: str) -> dict[str, Any]:
    obs, reward, terminated, truncated, info = env.step(action)
    return {
        "observation": obs,
        "reward": reward,
        "terminated": terminated,
        "truncated": truncated,
        "info": to_jsonable(info),
    }


def create_env_app(
    env_id: str,
    factory: Callable[[], TextEnv],
    *,
    max_sessions: int = 64,
    session_ttl_s: float = 600.0,
    max_body_bytes: int = 1 << 20,
    html: bool = False,
) -> FastAPI:
    """An app serving sessions of the env that ``factory`` builds."""
    probe = factory()
    meta = {"env_id": env_id, "max_turns": probe.max_turns, "num_tasks": probe.num_tasks}
    probe.close()
    sessions = _Sessions(factory, max_sessions, session_ttl_s)
    app = FastAPI(title=f"turngym env server: {env_id}")
    app.router.add_event_handler("shutdown", sessions.close_all)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "sessions": len(sessions), "max_sessions": max_sessions, **meta}

    @app.post("/sessions", status_code=201)
    def create_session() -> Any:
        sid = sessions.create()
        if sid is None:
            return error_response(
                429, f"all {max_sessions} sessions are in use; DELETE finished sessions or retry later"
            )
        return {"session_id": sid}

    async def _run(
        sid: str, request: Request, model: type[pydantic.BaseModel], fn: Callable[..., Any]
    ) -> Any:
        session = sessions.get(sid)
        if session is None:
            return error_response(404, f"no session {sid!r}; create one with POST /sessions")
        payload = await read_json_body(request, max_body_bytes)
        if isinstance(payload, JSONResponse):
            return payload
        parsed = _parse(model, payload)
        if isinstance(parsed, JSONResponse):
            return parsed

        def locked() -> Any:
            with session.lock:
                return fn(session.env, parsed)

        try:
            return await run_in_threadpool(locked)
        except ResetNeeded as exc:
            return error_response(409, str(exc))
        except BadReset as exc:
            return error_response(422, str(exc))

    @app.post("/sessions/{sid}/reset")
    async def reset(sid: str, request: Request) -> Any:
        return await _run(sid, request, ResetRequest, _reset)

    @app.post("/sessions/{sid}/step")
    async def step(sid: str, request: Request) -> Any:
        return await _run(sid, request, StepRequest, lambda env, req: _step(env, req.action))

    @app.delete("/sessions/{sid}", status_code=204)
    def delete_session(sid: str) -> Response:
        if not sessions.delete(sid):
            return error_response(404, f"no session {sid!r}")
        return Response(status_code=204)

    if html:
        _add_browser_ui(app, factory, env_id, max_body_bytes)
    return app


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
