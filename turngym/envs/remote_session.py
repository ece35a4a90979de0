"""One session on a ``turngym serve env`` server, as the clients see it: transports, retries, recovery.

:class:`RemoteSession` is the async core that :class:`~turngym.envs.remote.RemoteEnv` and
:class:`~turngym.envs.remote_async.AsyncRemoteEnv` share. It speaks to the server over plain HTTP
(``transport="http"``), a WebSocket channel per session (``"ws"``) or one WebSocket shared by the
process's sessions (``"mux"``, :mod:`turngym.envs.remote_mux`); creation and ``/health`` always go
over HTTP. One failure rule applies:

* **retried** (at most ``retries`` times, sleeping ``d/2 + U(0, d/2)`` with
  ``d = min(backoff_cap_s, backoff_s · 2^attempt)``, "equal jitter"): the server could not be reached
  (connection refused: it may be restarting), or answered 429/503 (full or busy); a ``/health`` or
  session creation whose connection broke is sent again too (a lost creation leaves an idle session
  that the reaper closes);
* **recovered**: the session is gone (404: reaped, or the server restarted) or the connection broke
  mid-call (the server may have died with it). The client opens a new session, resets it with the
  recorded seed and task, replays the episode's actions and compares every replayed reply with the
  recorded one; a difference raises :class:`ReplayMismatch` (the env is not deterministic, or the
  server runs another env). Then the failed call is sent again. Recovery counts against ``retries``;
* **raised** as :class:`~turngym.errors.EnvError` with the server's message: any other answer.

The records (seed, task, replies) change only when a call succeeds, so a failed call leaves the
client as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import random
import ssl
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, TypeVar

import certifi
import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from turngym.errors import EnvError

T = TypeVar("T")
Transport = Literal["http", "ws", "mux"]
DEADLINE_HEADER = "X-Turngym-Deadline-S"
COMPARED = ("observation", "reward", "terminated", "truncated")
"""The reply fields a replay must reproduce exactly."""


def _tuples(obj: dict[str, Any]) -> Any:
    return tuple(obj["__tuple__"]) if len(obj) == 1 and "__tuple__" in obj else obj


def decode(raw: str | bytes) -> Any:
    """JSON with :func:`~turngym.trajectory.to_jsonable`'s tuples restored, in one C-speed pass."""
    return json.loads(raw, object_hook=_tuples)


if sys.version_info >= (3, 11):

    async def _within(awaitable: Awaitable[T], seconds: float) -> T:
        async with asyncio.timeout(seconds):  # no task per call, unlike wait_for
            return await awaitable

else:  # pragma: no cover - Python 3.10
    _within = asyncio.wait_for


class ReplayMismatch(EnvError):
    """Recovery replayed the episode on a new session and got different replies."""


class Unreachable(Exception):
    """The request never reached the server (connection refused or timed out while connecting)."""


class Lost(Exception):
    """The connection broke after the request was sent: the server may or may not have applied it."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a client waits for a server that is away or full."""

    retries: int = 10
    backoff_s: float = 0.05
    backoff_cap_s: float = 2.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to sleep before retry ``attempt`` (1-based): ``d/2 + U(0, d/2)`` with
        ``d = min(cap, b · 2^(attempt-1))``; e.g. b=0.05, cap=2: attempt 3 sleeps in [0.1, 0.2]."""
        d = min(self.backoff_cap_s, self.backoff_s * 2 ** (attempt - 1))
        return d / 2 + rng.uniform(0.0, d / 2)


class Channel(Protocol):
    async def request(self, op: str, sid: str | None, body: dict[str, Any] | None) -> tuple[int, Any]: ...

    async def forget(self, sid: str) -> None: ...

    async def aclose(self) -> None: ...


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context (httpx's defaults: certifi's CAs) for every client: building one costs ~0.1 s."""
    return ssl.create_default_context(cafile=certifi.where())


def _headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


class HttpChannel:
    """Every call is one HTTP request."""

    ROUTES: ClassVar[dict[str, tuple[str, str]]] = {
        "health": ("GET", "/health"),
        "create": ("POST", "/sessions"),
        "reset": ("POST", "/sessions/{sid}/reset"),
        "step": ("POST", "/sessions/{sid}/step"),
        "close": ("DELETE", "/sessions/{sid}"),
    }

    def __init__(
        self,
        url: str,
        timeout_s: float,
        token: str | None,
        http_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {DEADLINE_HEADER: f"{timeout_s:g}", **_headers(token)}
        self._http = httpx.AsyncClient(
            base_url=url, timeout=timeout_s, headers=headers, transport=http_transport, verify=_tls()
        )

    async def request(self, op: str, sid: str | None, body: dict[str, Any] | None) -> tuple[int, Any]:
        method, path = self.ROUTES[op]
        try:
            response = await self._http.request(method, path.format(sid=sid), json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise Unreachable(repr(exc)) from exc
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            raise Lost(repr(exc)) from exc
        except httpx.HTTPError as exc:
            raise EnvError(f"{op} request to env server at {self._http.base_url} failed: {exc!r}") from exc
        if not response.content:
            return response.status_code, None
        try:
            return response.status_code, decode(response.content)
        except ValueError:
            return response.status_code, {"detail": response.text[:300]}

    async def forget(self, sid: str) -> None:
        return None

    async def aclose(self) -> None:
        await self._http.aclose()


class WsChannel:
    """Reset/step/close over one WebSocket per session; health and creation over HTTP."""

    def __init__(
        self,
        url: str,
        timeout_s: float,
        token: str | None,
        http_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = HttpChannel(url, timeout_s, token, http_transport)
        self._ws_url = "ws" + url.rstrip("/").removeprefix("http")
        self._timeout_s, self._token = timeout_s, token
        self._sockets: dict[str, ClientConnection] = {}

    async def _socket(self, sid: str) -> ClientConnection:
        socket = self._sockets.get(sid)
        if socket is None:
            try:
                socket = await connect(
                    f"{self._ws_url}/sessions/{sid}/ws",
                    additional_headers=_headers(self._token),
                    compression=None,
                    proxy=None,
                    open_timeout=self._timeout_s,
                    max_size=None,
                )
            except (OSError, asyncio.TimeoutError, InvalidHandshake) as exc:
                raise Unreachable(repr(exc)) from exc
            self._sockets[sid] = socket
        return socket

    async def request(self, op: str, sid: str | None, body: dict[str, Any] | None) -> tuple[int, Any]:
        if op in ("health", "create") or sid is None:
            return await self._http.request(op, sid, body)
        socket = await self._socket(sid)
        message = {"type": op, "data": body or {}, "deadline_s": self._timeout_s}
        try:
            await socket.send(json.dumps(message))
            raw = await _within(socket.recv(), self._timeout_s)
        except ConnectionClosed as exc:
            await self.forget(sid)
            raise Lost(repr(exc)) from exc
        except asyncio.TimeoutError as exc:
            await self.forget(sid)  # a late reply must not answer the next message
            raise EnvError(f"{op} over WebSocket got no reply within {self._timeout_s:g} s") from exc
        reply = decode(raw)
        if op == "close" or reply["status"] == 404:
            await self.forget(sid)
        return int(reply["status"]), reply["data"]

    async def forget(self, sid: str) -> None:
        socket = self._sockets.pop(sid, None)
        if socket is not None:
            await socket.close()

    async def aclose(self) -> None:
        for sid in list(self._sockets):
            await self.forget(sid)
        await self._http.aclose()


class RemoteSession:
    """A session that survives server restarts and reaping (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        transport: Transport = "http",
        timeout_s: float = 60.0,
        retry: RetryPolicy = RetryPolicy(),
        token: str | None = None,
        recover: bool = True,
        http_transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if transport not in ("http", "ws", "mux"):
            raise ValueError(f"transport must be 'http', 'ws' or 'mux', got {transport!r}")
        from turngym.envs.remote_mux import MuxChannel  # it builds on this module

        make = {"http": HttpChannel, "ws": WsChannel, "mux": MuxChannel}[transport]
        self.url, self.retry, self.recover = url, retry, recover
        self._channel: Channel = make(url, timeout_s, token, http_transport)
        self._sleep, self._rng = sleep, random.Random()
        self.sid: str | None = None
        self.env_id: str | None = None
        self.health: dict[str, Any] = {}
        self._reset_body: dict[str, Any] | None = None
        self._replies: list[tuple[str, dict[str, Any]]] = []
        self._stale = False
        self.recoveries = 0

    async def open(self) -> None:
        """Read ``/health`` and create the session."""
        try:
            self.health = await self._send("health", None, None)
            self.env_id = self.health["env_id"]
            self.sid = (await self._send("create", None, None))["session_id"]
        except _Answered as answered:
            raise EnvError(
                f"env server at {self.url} answered {answered.status}: {_detail(answered.data)}"
            ) from None

    async def reset(self, seed: int, task_id: Any) -> dict[str, Any]:
        body = {"seed": seed, "task_id": task_id}
        data = await self._call("reset", body)
        self._reset_body, self._replies = body, [("", data)]
        return data

    async def step(self, action: str) -> dict[str, Any]:
        data = await self._call("step", {"action": action})
        self._replies.append((action, data))
        return data

    async def close(self) -> None:
        """Delete the session; never raises for a server that is gone."""
        sid, self.sid = self.sid, None
        try:
            if sid is not None:
                await self._channel.request("close", sid, None)
        except (Unreachable, Lost, EnvError):
            pass
        finally:
            await self._channel.aclose()

    # ---- the failure rule ----------------------------------------------------------------
    async def _send(self, op: str, sid: str | None, body: dict[str, Any] | None) -> Any:
        """One call that retries only unreachable and full/busy servers."""
        problem = ""
        for attempt in range(self.retry.retries + 1):
            if attempt:
                await self._sleep(self.retry.delay(attempt, self._rng))
            try:
                status, data = await self._channel.request(op, sid, body)
            except Unreachable as exc:
                problem = f"cannot reach env server at {self.url}: {exc}"
                continue
            except Lost as exc:
                if op not in ("health", "create"):  # these two are safe to send again
                    raise
                problem = f"the connection to {self.url} broke: {exc}"
                continue
            if status in (429, 503):
                problem = f"env server at {self.url} answered {status}: {_detail(data)}"
                continue
            if status >= 400:
                raise _Answered(status, data)
            return data
        raise EnvError(f"{problem} (gave up after {self.retry.retries + 1} tries)")

    async def _call(self, op: str, body: dict[str, Any]) -> dict[str, Any]:
        if self.sid is None:
            raise EnvError("this remote env is closed; create a new one")
        for attempt in range(self.retry.retries + 1):
            try:
                if self._stale:
                    await self._recover(replay=op == "step")
                return await self._send(op, self.sid, body)
            except Lost as exc:
                problem = f"the connection to {self.url} broke during {op}: {exc}"
            except _Answered as answered:
                if self.recover and op == "step" and answered.status in (500, 504):
                    self._stale = True  # the server's env may have moved: resynchronise next time
                if answered.status != 404 or not self.recover:
                    raise EnvError(
                        f"env server answered {answered.status} to {op}: {_detail(answered.data)}"
                    ) from None
                problem = f"the server lost session {self.sid}"
            except EnvError:
                if self.recover and op == "step":
                    self._stale = True  # it may have been applied: resynchronise first
                raise
            if not self.recover:
                raise EnvError(problem)
            self._stale = True
            if attempt:
                await self._sleep(self.retry.delay(attempt, self._rng))
        raise EnvError(f"{problem}; recovery gave up after {self.retry.retries + 1} tries")

    async def _recover(self, *, replay: bool) -> None:
        """A new session with the same env, seed and task, and the episode's actions replayed."""
        old = self.sid
        if old is not None:
            await self._channel.forget(old)
        health = await self._send("health", None, None)
        if health["env_id"] != self.env_id:
            raise ReplayMismatch(f"the server at {self.url} now serves {health['env_id']}, not {self.env_id}")
        self.sid = (await self._send("create", None, None))["session_id"]
        self.recoveries += 1
        if replay and self._reset_body is not None:
            for turn, (action, recorded) in enumerate(self._replies):
                op, body = ("reset", self._reset_body) if turn == 0 else ("step", {"action": action})
                try:
                    got = await self._send(op, self.sid, body)
                except _Answered as answered:
                    raise ReplayMismatch(
                        f"replaying turn {turn} on a new session failed with {answered.status}: "
                        f"{_detail(answered.data)}"
                    ) from None
                diff = [k for k in COMPARED if got.get(k) != recorded.get(k)]
                if diff:
                    raise ReplayMismatch(
                        f"replaying the episode on a new session gave a different {', '.join(diff)} at "
                        f"turn {turn} (recorded {[recorded.get(k) for k in diff]!r}, replayed "
                        f"{[got.get(k) for k in diff]!r}): the env is not deterministic, so the "
                        "episode cannot continue"
                    )
        self._stale = False
        if old is not None:  # the old session, if it still exists, is of no use now
            with contextlib.suppress(Unreachable, Lost, EnvError):
                await self._channel.request("close", old, None)


class _Answered(Exception):
    """The server answered a 4xx/5xx other than 429/503."""

    def __init__(self, status: int, data: Any) -> None:
        super().__init__(status)
        self.status, self.data = status, data


def _detail(data: Any) -> str:
    return str(data.get("detail", data)) if isinstance(data, dict) else str(data)
