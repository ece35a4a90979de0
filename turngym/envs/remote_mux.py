"""``transport="mux"``: every session of a process on one WebSocket to the server (``WS /sessions/mux``).

A client with one socket per session pays a socket's cost per step (a frame to build, a read to
wake, a task per connection in the library). Here the sessions of one event loop that talk to the
same server with the same token share one :class:`MuxConnection`: each message carries its session
id and a number; the messages queued while the socket was busy leave together in one frame (a JSON
array), and one reader task hands each reply of the server's array frames to the call waiting for
its number. A call whose
deadline passes stops waiting; its late reply is dropped by number, so it can never answer another
call. When the socket breaks every waiting call fails as :class:`~turngym.envs.remote_session.Lost`
(the session's recovery takes over) and the next call opens a new socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from typing import Any, ClassVar

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from turngym.envs.remote_session import HttpChannel, Lost, Unreachable, _headers, _within, decode
from turngym.errors import EnvError

Key = tuple[asyncio.AbstractEventLoop, str, str | None]


class MuxConnection:
    """One WebSocket carrying many sessions' calls, shared by the channels of one loop and server."""

    _shared: ClassVar[dict[Key, MuxConnection]] = {}

    def __init__(self, key: Key) -> None:
        self._key = key
        self._socket: ClientConnection | None = None
        self._connecting = asyncio.Lock()
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._outbox: list[dict[str, Any]] = []
        self._ready = asyncio.Event()
        self._numbers = itertools.count()
        self._users = 0
        self._tasks: tuple[asyncio.Task[None], ...] = ()

    @classmethod
    def acquire(cls, ws_url: str, token: str | None) -> MuxConnection:
        """The running loop's connection to ``ws_url`` with ``token`` (made on first use)."""
        key = (asyncio.get_running_loop(), ws_url, token)
        connection = cls._shared.get(key)
        if connection is None:
            connection = cls._shared[key] = MuxConnection(key)
        connection._users += 1
        return connection

    async def release(self) -> None:
        """One channel is done with the connection; the last one closes it."""
        self._users -= 1
        if self._users == 0:
            self._shared.pop(self._key, None)
            if self._socket is not None:
                await self._socket.close()
            for task in self._tasks:
                task.cancel()

    async def _open(self, timeout_s: float) -> ClientConnection:
        async with self._connecting:
            if self._socket is None:
                _, ws_url, token = self._key
                try:
                    socket = await connect(
                        f"{ws_url}/sessions/mux",
                        additional_headers=_headers(token),
                        compression=None,
                        proxy=None,
                        open_timeout=timeout_s,
                        max_size=None,
                    )
                except (OSError, asyncio.TimeoutError, InvalidHandshake) as exc:
                    raise Unreachable(repr(exc)) from exc
                self._socket = socket
                self._outbox.clear()
                reader, writer = self._read(socket), self._write(socket)
                self._tasks = (asyncio.create_task(reader), asyncio.create_task(writer))
            return self._socket

    async def _read(self, socket: ClientConnection) -> None:
        """Hand each reply to its waiting call; when the socket ends, fail every waiting call."""
        try:
            async for raw in socket:
                for reply in decode(raw):
                    waiter = self._waiting.pop(reply.get("id"), None)  # type: ignore[arg-type]
                    if waiter is not None and not waiter.done():
                        waiter.set_result(reply)
        except ConnectionClosed:
            pass
        finally:
            if self._socket is socket:
                self._socket = None
                self._tasks[1].cancel()
            waiting, self._waiting = self._waiting, {}
            for waiter in waiting.values():
                if not waiter.done():
                    waiter.set_exception(Lost("the multiplexed WebSocket closed"))

    async def _write(self, socket: ClientConnection) -> None:
        """Send the messages queued since the last frame as one frame (a JSON array)."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            batch = self._outbox.copy()
            self._outbox.clear()
            try:
                await socket.send(json.dumps(batch))
            except ConnectionClosed:
                return  # the reader fails the waiting calls

    async def request(
        self, sid: str, op: str, body: dict[str, Any] | None, timeout_s: float
    ) -> tuple[int, Any]:
        """Send ``op`` for session ``sid`` and wait at most ``timeout_s`` for its reply."""
        if self._socket is None:
            await self._open(timeout_s)
        number = next(self._numbers)
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[number] = waiter
        message = {"type": op, "session_id": sid, "data": body or {}, "id": number,
                   "deadline_s": timeout_s}  # fmt: skip
        self._outbox.append(message)
        self._ready.set()
        try:
            reply = await _within(waiter, timeout_s)
        except asyncio.TimeoutError as exc:
            raise EnvError(f"{op} over WebSocket got no reply within {timeout_s:g} s") from exc
        finally:
            self._waiting.pop(number, None)
        return int(reply["status"]), reply["data"]


class MuxChannel:
    """A session's calls over its loop's shared :class:`MuxConnection`; health and creation over HTTP."""

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
        self._connection: MuxConnection | None = None

    async def _write(self, socket: ClientConnection) -> None:
        """Send the messages queued since the last frame as one frame (a JSON array)."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            batch = self._outbox.copy()
            self._outbox.clear()
            try:
                await socket.send(json.dumps(batch))
            except ConnectionClosed:
                return  # the reader fails the waiting calls

    async def request(self, op: str, sid: str | None, body: dict[str, Any] | None) -> tuple[int, Any]:
        if op in ("health", "create") or sid is None:
            return await self._http.request(op, sid, body)
        if self._connection is None:
            self._connection = MuxConnection.acquire(self._ws_url, self._token)
        return await self._connection.request(sid, op, body, self._timeout_s)

    async def forget(self, sid: str) -> None:
        return None  # the socket is shared; the session holds nothing of its own

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(ConnectionClosed, OSError):
                await connection.release()
        await self._http.aclose()
