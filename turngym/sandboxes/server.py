"""The sandbox server: a SandboxFusion-compatible FastAPI app in front of a sandbox backend.

Endpoints:

* ``POST /run_code`` SandboxFusion's request and response (see :mod:`turngym.sandboxes.fusion`);
* ``POST /run_code/batch`` ``{"requests": [<run_code request>, ...]}`` → ``{"results": [...]}``,
  run in parallel on the free slots (at most ``max_batch`` requests);
* ``GET /health`` ``{"status": "ok", "in_flight", "max_concurrency", "limits", "sandbox": <backend status>}``.

Admission is explicit instead of an unbounded queue: at most ``max_concurrency`` runs are in
flight; a request that finds no free slot is answered at once with **429** and a ``Retry-After``
header. A body over ``max_body_bytes`` gets **413**; malformed JSON, unknown fields, an unsupported
language, a bad file path, a limit that is not a positive number (``memory_limit_MB`` 0 or below
-1, a timeout of 0, a negative or non-finite one) or more files than the server takes get **422**;
every error body is JSON with a ``detail`` naming the problem. Limits above the server's own
(:class:`~turngym.sandboxes.fusion.ServerLimits`) are lowered to them. The code itself always runs
in the backend's jailed workers, never in this process.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Any

import pydantic
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from turngym.errors import SandboxError, SandboxRequestError
from turngym.sandboxes.api import MAX_FILES, MAX_FILES_BYTES, MAX_TIMEOUT_S, RunRequest, Sandbox
from turngym.sandboxes.fusion import (
    BatchRunCodeRequest,
    BatchRunCodeResponse,
    RunCodeRequest,
    RunCodeResponse,
    ServerLimits,
    sandbox_error_response,
    to_response,
)
from turngym.tools.server import documented, error_response, read_json_body
from turngym.tools.spec import describe_validation_error

DEFAULT_MAX_BODY_BYTES = 8 << 20


class Slots:
    """A non-blocking counter of free run slots."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.in_flight = 0
        self._lock = threading.Lock()

    def take(self, wanted: int) -> int:
        """Take up to ``wanted`` slots; returns how many were taken (0: none free)."""
        with self._lock:
            granted = min(wanted, self.total - self.in_flight)
            self.in_flight += max(granted, 0)
            return max(granted, 0)

    def give(self, count: int) -> None:
        """Return ``count`` slots."""
        with self._lock:
            self.in_flight -= count


def create_sandbox_app(
    sandbox: Sandbox,
    *,
    max_concurrency: int = 4,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_memory_mb: int = 1024,
    max_timeout_s: float = MAX_TIMEOUT_S,
    max_files: int = MAX_FILES,
    max_files_bytes: int = MAX_FILES_BYTES,
    max_batch: int = 64,
) -> FastAPI:
    """An app that runs SandboxFusion-shaped requests on ``sandbox``; ``max_memory_mb``,
    ``max_timeout_s``, ``max_files`` and ``max_files_bytes`` are its :class:`ServerLimits`."""
    limits = ServerLimits(max_timeout_s, max_memory_mb, max_files, max_files_bytes)
    app = FastAPI(title="turngym sandbox")
    app.state.limits = limits
    slots = app.state.slots = Slots(max_concurrency)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "in_flight": slots.in_flight,
            "max_concurrency": max_concurrency,
            "limits": asdict(limits),
            "sandbox": sandbox.status(),
        }

    _add_run_routes(app, sandbox, limits, slots, max_body_bytes, max_batch)
    return app


def _add_run_routes(
    app: FastAPI, sandbox: Sandbox, limits: ServerLimits, slots: Slots, max_body_bytes: int, max_batch: int
) -> None:
    """``POST /run_code`` and ``POST /run_code/batch``: runs on ``sandbox``, admitted by ``slots``."""
    executor = socket.gethostname()

    def execute(run: RunRequest) -> RunCodeResponse:
        try:
            return to_response(sandbox.run_request(run), executor)
        except SandboxError as exc:
            return sandbox_error_response(str(exc), executor)

    @app.post("/run_code", response_model=RunCodeResponse, **documented(413, 422, 429, body=RunCodeRequest))
    async def run_code(request: Request) -> Any:
        body = await _parse(request, RunCodeRequest, max_body_bytes)
        if isinstance(body, JSONResponse):
            return body
        run = _convert(body, limits)
        if isinstance(run, JSONResponse):
            return run
        if not slots.take(1):
            return _busy(slots)
        try:
            response = await run_in_threadpool(execute, run)
        finally:
            slots.give(1)
        return response.model_dump()

    @app.post("/run_code/batch", response_model=BatchRunCodeResponse,
              **documented(413, 422, 429, body=BatchRunCodeRequest))  # fmt: skip
    async def run_code_batch(request: Request) -> Any:
        body = await _parse(request, BatchRunCodeRequest, max_body_bytes)
        if isinstance(body, JSONResponse):
            return body
        if len(body.requests) > max_batch:
            return error_response(
                413, f"a batch holds at most {max_batch} requests, got {len(body.requests)}; split it"
            )
        runs = []
        for index, item in enumerate(body.requests):
            try:
                runs.append(item.to_run_request(limits))
            except SandboxRequestError as exc:
                return error_response(422, f"requests[{index}]: {exc}")
        granted = slots.take(len(runs))
        if not granted:
            return _busy(slots)
        try:
            results = await run_in_threadpool(_run_all, execute, runs, granted)
        finally:
            slots.give(granted)
        return BatchRunCodeResponse(results=results).model_dump()


def _busy(slots: Slots) -> JSONResponse:
    response = error_response(
        429,
        f"all {slots.total} sandbox slots are busy; retry after a moment or raise --max-concurrency",
    )
    response.headers["Retry-After"] = "1"
    return response


async def _parse(request: Request, model: type[pydantic.BaseModel], max_body_bytes: int) -> Any:
    payload = await read_json_body(request, max_body_bytes)
    if isinstance(payload, JSONResponse):
        return payload
    try:
        return model.model_validate(payload)
    except pydantic.ValidationError as exc:
        return error_response(
            422, "request does not match the run_code schema", errors=describe_validation_error(exc)
        )


def _convert(body: RunCodeRequest, limits: ServerLimits) -> RunRequest | JSONResponse:
    try:
        return body.to_run_request(limits)
    except SandboxRequestError as exc:
        return error_response(422, str(exc))


def _run_all(
    execute: Callable[[RunRequest], RunCodeResponse], runs: list[RunRequest], parallel: int
) -> list[RunCodeResponse]:
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        return list(pool.map(execute, runs))
