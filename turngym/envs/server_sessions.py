"""The env server's sessions and the one code path that runs a call on them, whatever the channel.

HTTP routes, the WebSocket channel and the batch endpoint all go through :class:`EnvService`,
which answers ``(status, body)`` pairs with the HTTP status codes of the API (each channel reads a
call's token with :func:`bearer` and its deadline with :func:`deadline`):

* admission: 401 without a valid bearer token (when the server has tokens), 403 for a session
  created with another token, 404 for an unknown session, 429 when ``max_sessions`` are open,
  503 when ``max_inflight`` env calls are already running (both at once, never queued);
* the call: 422 for a body failing its schema or a task the env refuses, 409 for a step before
  reset (or after a call that overran its deadline), 504 when the deadline passes, 500 when the
  env itself raised.

Everything here runs on the server's event loop; env code (construction, reset, step, close) runs
in worker threads, so a slow env never blocks the others, except the ``reset``/``step`` of an env
class declaring :attr:`~turngym.envs.core.TextEnv.nonblocking`, which run on the loop (a thread
hop costs more than such a step). One ``asyncio.Lock`` per session keeps a
session's calls in order. A background reaper closes sessions idle for longer than ``ttl_s``.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pydantic
from fastapi import Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from turngym.envs.core import TextEnv
from turngym.envs.server_metrics import ServerMetrics
from turngym.errors import ResetNeeded
from turngym.tools.spec import describe_validation_error
from turngym.trajectory import to_jsonable

Reply = tuple[int, Any]
"""An HTTP status and its JSON body."""

DEADLINE_HEADER = "x-turngym-deadline-s"


class ResetRequest(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    seed: int | None = pydantic.Field(default=None, ge=0, lt=2**63)
    task_id: int | str | None = None


class StepRequest(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    action: str


class BadReset(Exception):
    """The env refused the requested task (e.g. an out-of-range task id): the client's mistake."""


@dataclass(frozen=True)
class ServerLimits:
    """What one env server accepts before it says no."""

    max_sessions: int = 64
    """Open sessions; one more ``POST /sessions`` gets 429."""
    max_inflight: int = 256
    """Env calls (reset/step) running at once; one more gets 503."""
    session_ttl_s: float = 600.0
    """A session idle this long is closed by the reaper."""
    request_timeout_s: float = 60.0
    """Deadline of a call when the client names none; also the most a client may ask for."""
    max_body_bytes: int = 1 << 20
    """Largest request body (HTTP) or message (WebSocket)."""
    max_batch: int = 1024
    """Most calls in one ``POST /sessions/batch``."""

    def __post_init__(self) -> None:
        for name in ("max_sessions", "max_inflight", "max_body_bytes", "max_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("session_ttl_s", "request_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


@dataclass
class Session:
    env: TextEnv
    owner: str | None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_used: float = field(default_factory=time.monotonic)
    busy: int = 0
    overran: bool = False
    """A call passed its deadline while the env kept running: the state is unknown until a reset."""


def _same_token(a: str | None, b: str | None) -> bool:
    """Constant-time equality of two optional tokens (header text may hold any character)."""
    if a is None or b is None:
        return a is b
    return hmac.compare_digest(a.encode(), b.encode())


def error(status: int, detail: str, **extra: Any) -> Reply:
    return status, {"detail": detail, **extra}


RETRY_AFTER_S = "1"
"""The ``Retry-After`` of a 429 or 503: seconds a client waits before trying again."""


def respond(reply: Reply) -> Response:
    """The HTTP response of a ``(status, body)`` reply: 204 with no body; ``Retry-After`` on 429 and
    503; ``WWW-Authenticate: Bearer`` on 401."""
    status, body = reply
    if status == 204:
        return Response(status_code=204)
    headers = {"Retry-After": RETRY_AFTER_S} if status in (429, 503) else None
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    return JSONResponse(status_code=status, content=body, headers=headers)


def bearer(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if any."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def deadline(raw: str | None, limit_s: float) -> float | Reply:
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


def parse(model: type[pydantic.BaseModel], payload: Any) -> pydantic.BaseModel | Reply:
    """``payload`` validated as ``model``, or a 422 naming each bad field."""
    if not isinstance(payload, dict):
        return error(422, f"request body must be a JSON object, got {type(payload).__name__}")
    try:
        return model.model_validate(payload)
    except pydantic.ValidationError as exc:
        errors = describe_validation_error(exc)
        problems = "; ".join(f"{e['field']}: {e['problem']}" for e in errors)
        return error(422, f"invalid request body: {problems}", errors=errors)


def parse_step(payload: Any) -> StepRequest | Reply:
    """``parse(StepRequest, payload)`` with the common case (a dict holding only a string action)
    checked by hand: pydantic's validation is most of a step's server CPU for a trivial env."""
    if type(payload) is dict and len(payload) == 1 and type(payload.get("action")) is str:
        return StepRequest.model_construct(action=payload["action"])
    return parse(StepRequest, payload)  # type: ignore[return-value]


_SCALARS = frozenset({str, int, float, bool, type(None)})


def jsonable(value: Any) -> Any:
    """:func:`~turngym.trajectory.to_jsonable` with plain scalars and ``str``-keyed dicts (most of an
    ``info``) passed through by exact type, before the general conversion."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict:
        return {k if type(k) is str else str(k): jsonable(v) for k, v in value.items()}
    return to_jsonable(value)


def _reset(env: TextEnv, request: ResetRequest) -> dict[str, Any]:
    options = None if request.task_id is None else {"task_id": request.task_id}
    try:
        obs, info = env.reset(seed=request.seed, options=options)
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise BadReset(f"cannot reset to task {request.task_id!r}: {exc}") from exc
    return {"observation": obs, "info": jsonable(info)}


def _step(env: TextEnv, request: StepRequest) -> dict[str, Any]:
    obs, reward, terminated, truncated, info = env.step(request.action)
    return {
        "observation": obs,
        "reward": reward,
        "terminated": terminated,
        "truncated": truncated,
        "info": jsonable(info),
    }


OPS: dict[str, tuple[type[pydantic.BaseModel], Callable[[TextEnv, Any], dict[str, Any]]]] = {
    "reset": (ResetRequest, _reset),
    "step": (StepRequest, _step),
}


def _now(fn: Callable[[TextEnv, Any], dict[str, Any]], env: TextEnv, request: Any) -> _Finished:
    """``fn(env, request)`` run now, its result or exception held like a finished future's."""
    try:
        return _Finished(fn(env, request), None)
    except Exception as exc:
        return _Finished(None, exc)


@dataclass(frozen=True)
class _Finished:
    value: Any
    exception: Exception | None

    def result(self) -> Any:
        if self.exception is not None:
            raise self.exception
        return self.value


class EnvService:
    """Sessions of one env, with limits, ownership, deadlines, a reaper and metrics."""

    def __init__(
        self,
        env_id: str,
        factory: Callable[[], TextEnv],
        limits: ServerLimits,
        tokens: Sequence[str] = (),
    ) -> None:
        self.env_id, self.factory, self.limits = env_id, factory, limits
        self.tokens = tuple(tokens)
        self.sessions: dict[str, Session] = {}
        self.metrics = ServerMetrics()
        self.inflight = 0
        self._creating = 0
        self._workers = self._new_workers()

    # ---- admission ---------------------------------------------------------------------
    def authorize(self, token: str | None) -> Reply | None:
        """401 when the server has tokens and ``token`` is not one of them."""
        if not self.tokens:
            return None
        if any(_same_token(token, t) for t in self.tokens):
            return None
        return error(401, "missing or wrong bearer token: send 'Authorization: Bearer <token>'")

    def lookup(self, sid: str, token: str | None) -> Session | Reply:
        """The session ``sid`` if ``token`` may use it."""
        denied = self.authorize(token)
        if denied is not None:
            return denied
        session = self.sessions.get(sid)
        if session is None:
            return error(404, f"no session {sid!r}; create one with POST /sessions")
        if not _same_token(session.owner, token):
            return error(403, f"session {sid!r} was created with another token")
        return session

    # ---- the calls -----------------------------------------------------------------------
    async def create(self, token: str | None) -> Reply:
        denied = self.authorize(token)
        if denied is not None:
            return self._count("create", denied, 0.0)
        started = time.perf_counter()
        if len(self.sessions) + self._creating >= self.limits.max_sessions:
            reply = error(
                429,
                f"all {self.limits.max_sessions} sessions are in use; "
                "DELETE finished sessions or retry later",
            )
            return self._count("create", reply, 0.0)
        self._creating += 1
        try:
            env = await run_in_threadpool(self.factory)
        except Exception as exc:
            return self._count("create", error(500, f"building the env failed: {exc!r}"), 0.0)
        finally:
            self._creating -= 1
        sid = uuid.uuid4().hex
        self.sessions[sid] = Session(env, token)
        self.metrics.sessions_created += 1
        return self._count("create", (201, {"session_id": sid}), time.perf_counter() - started)

    async def delete(self, sid: str, token: str | None) -> Reply:
        found = self.lookup(sid, token)
        if not isinstance(found, Session):
            return self._count("close", found, 0.0)
        del self.sessions[sid]
        await self._close(found)
        return self._count("close", (204, None), 0.0)

    async def call(
        self, sid: str, op: str, payload: Any, token: str | None, timeout_s: float | None
    ) -> Reply:
        """Run ``op`` (``reset`` or ``step``) with ``payload`` on session ``sid``."""
        started = time.perf_counter()
        reply = await self._call(sid, op, payload, token, timeout_s)
        return self._count(op, reply, time.perf_counter() - started)

    async def _call(
        self, sid: str, op: str, payload: Any, token: str | None, timeout_s: float | None
    ) -> Reply:
        if op not in OPS:
            return error(422, f"unknown call {op!r}; expected one of {sorted(OPS)}")
        found = self.lookup(sid, token)
        if not isinstance(found, Session):
            return found
        model, fn = OPS[op]
        parsed = parse_step(payload) if op == "step" else parse(model, payload)
        if isinstance(parsed, tuple):
            return parsed
        if self.inflight >= self.limits.max_inflight:
            return error(503, f"{self.limits.max_inflight} env calls are already running; retry later")
        timeout = self.limits.request_timeout_s if timeout_s is None else timeout_s
        session = found
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self.inflight += 1
        session.busy += 1
        try:
            try:
                if session.lock.locked():  # wait_for costs a task: only pay it when there is a queue
                    await asyncio.wait_for(session.lock.acquire(), timeout)
                else:
                    await session.lock.acquire()
            except asyncio.TimeoutError:
                self.inflight -= 1
                return error(
                    504, f"the session's earlier call did not finish within the {timeout:g} s deadline"
                )
            if op == "step" and session.overran:
                session.lock.release()
                self.inflight -= 1
                return error(409, "an earlier call overran its deadline; reset the session before stepping")
            if type(session.env).nonblocking:
                try:
                    work: Any = _now(fn, session.env, parsed)
                finally:
                    session.lock.release()
                    self.inflight -= 1
            else:
                work = loop.run_in_executor(self._workers, fn, session.env, parsed)
                done, _ = await asyncio.wait({work}, timeout=max(0.0, deadline - loop.time()))
                if not done:
                    session.overran = True
                    work.add_done_callback(lambda _: self._finish_late(session))
                    return error(504, f"the env did not answer within the {timeout:g} s deadline")
                session.lock.release()
                self.inflight -= 1
            try:
                result = work.result()
            except ResetNeeded as exc:
                return error(409, str(exc))
            except BadReset as exc:
                return error(422, str(exc))
            except Exception as exc:
                return error(500, f"the env raised {exc!r}")
            if op == "reset":
                session.overran = False
            return 200, result
        finally:
            session.busy -= 1
            session.last_used = time.monotonic()

    def _finish_late(self, session: Session) -> None:
        session.lock.release()
        self.inflight -= 1

    def _count(self, op: str, reply: Reply, seconds: float) -> Reply:
        self.metrics.record(op, reply[0], seconds)
        return reply

    # ---- housekeeping --------------------------------------------------------------------
    async def reap(self) -> int:
        """Close every session idle for longer than the TTL; how many were closed."""
        cutoff = time.monotonic() - self.limits.session_ttl_s
        idle = [
            sid
            for sid, s in self.sessions.items()
            if s.last_used < cutoff and s.busy == 0 and not s.lock.locked()
        ]
        for sid in idle:
            await self._close(self.sessions.pop(sid))
        self.metrics.sessions_reaped += len(idle)
        return len(idle)

    async def reap_forever(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            await self.reap()

    async def _close(self, session: Session) -> None:
        try:
            await run_in_threadpool(session.env.close)
        except Exception:  # a failing close must not keep the slot or stop the reaper
            self.metrics.errors["env_close_failed"] += 1

    def _new_workers(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=min(32, self.limits.max_inflight), thread_name_prefix="env")

    async def close_all(self) -> None:
        """Close every session and the env threads; a fresh (idle, threadless) pool takes over, so
        the app serves again if its lifespan starts anew."""
        while self.sessions:
            await self._close(self.sessions.popitem()[1])
        workers, self._workers = self._workers, self._new_workers()
        workers.shutdown(wait=False, cancel_futures=True)

    def gauges(self) -> dict[str, float]:
        return {
            "sessions": len(self.sessions),
            "max_sessions": self.limits.max_sessions,
            "inflight": self.inflight,
            "max_inflight": self.limits.max_inflight,
        }
