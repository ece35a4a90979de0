"""A FastAPI app that serves a set of tools.

Endpoints:

* ``GET /health`` → ``{"status": "ok", "tools": N}``
* ``GET /tools`` → ``[<OpenAI function schema>, ...]``
* ``POST /tools/{name}`` with the JSON arguments as the body → ``{"ok": true, "output": ...}``,
  or ``{"ok": false, "error": "..."}`` when the tool itself raised (that error is the tool's result,
  which the model sees). Unknown tool → 404; a body that is not a JSON object or fails the tool's
  schema → 422 with ``{"detail": ..., "errors": [{"field": ..., "problem": ...}]}``; a body over
  ``max_body_bytes`` → 413. Every error body is JSON.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pydantic
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from turngym.errors import ToolArgumentError
from turngym.tools.spec import Tool, describe_validation_error

DEFAULT_MAX_BODY_BYTES = 1 << 20


class ErrorBody(pydantic.BaseModel):
    """Every error answer: what went wrong, and per-field problems where a body failed its schema."""

    detail: str
    errors: list[dict[str, str]] | None = None


def documented(*errors: int, body: type[pydantic.BaseModel] | dict[str, Any] | None = None) -> dict[str, Any]:
    """Route keyword arguments that put the error statuses and the JSON request body (which the route
    reads itself, to answer 413/422 its own way) into the OpenAPI schema."""
    route: dict[str, Any] = {"responses": {status: {"model": ErrorBody} for status in errors}}
    if body is not None:
        schema = body if isinstance(body, dict) else body.model_json_schema()
        content = {"application/json": {"schema": schema}}
        route["openapi_extra"] = {"requestBody": {"required": True, "content": content}}
    return route


def error_response(status: int, detail: str, **extra: Any) -> JSONResponse:
    """A JSON error body ``{"detail": ..., **extra}`` with the given status."""
    return JSONResponse(status_code=status, content={"detail": detail, **extra})


async def read_body(request: Request, max_body_bytes: int) -> bytes | JSONResponse:
    """The raw request body, or a 413 response once it passes ``max_body_bytes``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
        return error_response(413, f"request body of {declared} bytes is over the limit of {max_body_bytes}")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > max_body_bytes:
            return error_response(413, f"request body is over the limit of {max_body_bytes} bytes")
    return bytes(body)


async def read_json_body(request: Request, max_body_bytes: int) -> Any | JSONResponse:
    """The request's JSON body (``{}`` when empty), or a 413/422 response naming the problem."""
    body = await read_body(request, max_body_bytes)
    if isinstance(body, JSONResponse):
        return body
    if not body:
        return {}
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        return error_response(422, f"request body is not valid JSON: {exc}")


def create_tool_app(tools: Sequence[Tool], *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> FastAPI:
    """An app serving ``tools`` (names must be unique)."""
    by_name = {t.name: t for t in tools}
    if len(by_name) != len(tools):
        raise ValueError("tool names must be unique")
    app = FastAPI(title="turngym tools")

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "tools": len(by_name)}

    @app.get("/tools")
    def list_tools() -> list[dict[str, Any]]:
        return [t.schema() for t in by_name.values()]

    @app.post("/tools/{name}", **documented(404, 413, 422, body={"type": "object"}))
    async def call_tool(name: str, request: Request) -> Any:
        tool = by_name.get(name)
        if tool is None:
            return error_response(404, f"no tool named {name!r}; available: {sorted(by_name)}")
        payload = await read_json_body(request, max_body_bytes)
        if isinstance(payload, JSONResponse):
            return payload
        try:
            args = tool.validate(payload)
        except ToolArgumentError as exc:
            cause = exc.__cause__
            errors = describe_validation_error(cause) if isinstance(cause, pydantic.ValidationError) else []
            return error_response(422, str(exc), errors=errors)
        result = await run_in_threadpool(tool.run, args)
        return {"ok": result.ok, "output": result.output, "error": result.error}

    return app
