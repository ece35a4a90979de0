"""The env server's WebSocket endpoints (:func:`add_websocket_routes`); the rest of its API is
:mod:`turngym.envs.server`'s.

* ``WS /sessions/mux``: many sessions over one socket. A frame holds one channel message or a
  JSON array of them, each with a ``"session_id"``; they are answered concurrently (each session's
  calls in order) and every frame the server sends is a JSON array of replies, each tagged with its
  message's ``id`` and ``session_id``. A message without a string ``session_id`` gets a 422 error.
* ``WS /sessions/{id}/ws``: a channel for one session. The client sends ``{"type": "reset"|"step"|
  "close", "data": {...}, "id"?: any, "deadline_s"?: number}`` where ``data`` is the HTTP body; each
  message is answered with ``{"type": "result"|"error", "status", "data", "id"}`` where ``status`` and
  ``data`` are those of the HTTP call. A malformed message gets an error message; the socket stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from fastapi import FastAPI, WebSocket
from starlette.websockets import WebSocketDisconnect

from turngym.envs.server_sessions import EnvService, Reply, Session, bearer, deadline, error


def add_websocket_routes(app: FastAPI, service: EnvService) -> None:
    """``WS /sessions/mux`` and ``WS /sessions/{sid}/ws`` on ``app``, serving ``service``'s sessions."""

    @app.websocket("/sessions/mux")
    async def mux(websocket: WebSocket) -> None:
        await _serve_mux(websocket, service)

    @app.websocket("/sessions/{sid}/ws")
    async def channel(websocket: WebSocket, sid: str) -> None:
        await _serve_channel(websocket, sid, service)


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
    timeout = deadline(None if raw is None else str(raw), service.limits.request_timeout_s)
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
