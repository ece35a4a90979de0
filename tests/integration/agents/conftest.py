"""A real OpenAI-compatible HTTP server on 127.0.0.1 whose answers each test scripts."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response


@dataclass
class Script:
    """What the server answers, in order; each entry is one response.

    An entry is ``{"status": 429, "headers": {...}}`` (an error), ``{"sleep": 1.0}`` (answer late),
    ``{"raw": "not json"}`` (a broken 200), ``{"content": "...", "tool_calls": [...]}`` (a chat
    answer) or ``{"text": "..."}`` (a completions answer). When the script runs out the server
    answers ``{"content": default}``.
    """

    entries: list[dict[str, Any]] = field(default_factory=list)
    default: str = "go north"
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def make_app(script: Script) -> FastAPI:
    app = FastAPI()

    async def answer(request: Request, kind: str) -> Response:
        body = await request.json()
        with script.lock:
            script.requests.append({"path": kind, **body})
            script.headers.append(dict(request.headers))
            entry = script.entries.pop(0) if script.entries else {"content": script.default}
        if "sleep" in entry:
            await asyncio.sleep(entry["sleep"])
            entry = {"content": script.default}
        if "status" in entry:
            return JSONResponse(
                {"error": {"message": "scripted failure"}}, entry["status"], entry.get("headers")
            )
        if "raw" in entry:
            return PlainTextResponse(entry["raw"])
        usage = {"completion_tokens": entry.get("tokens", 3)}
        if kind == "completions":
            choice = {"index": 0, "text": entry.get("text", script.default), "finish_reason": "stop"}
            return JSONResponse({"object": "text_completion", "choices": [choice], "usage": usage})
        message: dict[str, Any] = {"role": "assistant", "content": entry.get("content")}
        finish = "stop"
        if entry.get("tool_calls"):
            message["tool_calls"] = entry["tool_calls"]
            finish = "tool_calls"
        choice = {"index": 0, "message": message, "finish_reason": entry.get("finish", finish)}
        return JSONResponse({"object": "chat.completion", "choices": [choice], "usage": usage})

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        return await answer(request, "chat")

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await answer(request, "completions")

    return app


@pytest.fixture(scope="module")
def openai_server() -> Iterator[tuple[str, Script]]:
    script = Script()
    server = uvicorn.Server(uvicorn.Config(make_app(script), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start within 20 s"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/v1", script
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def served(openai_server: tuple[str, Script]) -> tuple[str, Script]:
    url, script = openai_server
    with script.lock:
        script.entries.clear()
        script.requests.clear()
        script.headers.clear()
        script.default = "go north"
    return url, script
