"""SandboxFusion's ``/run_code`` request and response, and their mapping to turngym's sandbox API.

The field names, defaults and status values follow SandboxFusion's HTTP API (research note
environments.md §4.1):

* request ``{code, language, stdin, compile_timeout=10, run_timeout=10, memory_limit_MB=-1,
  files: {path: base64}, fetch_files: [path]}``;
* response ``{status: Success|Failed|SandboxError, message, compile_result, run_result,
  executor_pod_name, files}`` where each ``*_result`` is a ``CommandRunResult`` ``{status:
  Finished|Error|TimeLimitExceeded, execution_time, return_code, stdout, stderr}``.

The overall status follows SandboxFusion's rule: a sub-result with status ``Error`` (the sandbox
itself failed) gives ``SandboxError``; a ``TimeLimitExceeded`` or a non-zero return code gives
``Failed``; otherwise ``Success``. A program killed by a signal reports ``Finished`` with the
negative signal number as its return code, as a subprocess would. ``memory_limit_MB=-1`` ("no
limit" in SandboxFusion) becomes the server's own memory ceiling, so one request cannot take the
whole machine. Only the languages the sandbox supports (python, bash, cpp) are accepted.
"""

from __future__ import annotations

import base64
import binascii
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from turngym.errors import SandboxRequestError
from turngym.sandboxes.api import MAX_TIMEOUT_S, ExecResult, RunRequest

RunStatus = Literal["Success", "Failed", "SandboxError"]
CommandStatus = Literal["Finished", "Error", "TimeLimitExceeded"]


class RunCodeRequest(BaseModel):
    """The body of ``POST /run_code``."""

    model_config = ConfigDict(extra="forbid")

    code: str
    language: str = "python"
    stdin: str | None = None
    compile_timeout: float = Field(10.0, gt=0, le=MAX_TIMEOUT_S)
    run_timeout: float = Field(10.0, gt=0, le=MAX_TIMEOUT_S)
    memory_limit_MB: int = Field(-1, ge=-1)
    files: dict[str, str | None] = Field(default_factory=dict)
    fetch_files: list[str] = Field(default_factory=list)

    def to_run_request(self, max_memory_mb: int) -> RunRequest:
        """The equivalent :class:`RunRequest` (raises SandboxRequestError on a bad field)."""
        files = {}
        for path, content in self.files.items():
            try:
                files[path] = base64.b64decode(content or "", validate=True)
            except (binascii.Error, ValueError):
                raise SandboxRequestError(
                    f"files[{path!r}] must be base64 text; encode the file's bytes"
                ) from None
        memory = max_memory_mb if self.memory_limit_MB == -1 else min(self.memory_limit_MB, max_memory_mb)
        return RunRequest(
            code=self.code,
            language=self.language,
            stdin=self.stdin or "",
            timeout_s=self.run_timeout,
            memory_mb=memory,
            files=files,
            compile_timeout_s=self.compile_timeout,
            fetch_files=tuple(self.fetch_files),
        )


class CommandRunResult(BaseModel):
    """One command's outcome (the compiler's or the program's)."""

    status: CommandStatus
    execution_time: float | None = None
    return_code: int | None = None
    stdout: str | None = None
    stderr: str | None = None


class RunCodeResponse(BaseModel):
    """The body answered by ``POST /run_code``."""

    status: RunStatus
    message: str = ""
    compile_result: CommandRunResult | None = None
    run_result: CommandRunResult | None = None
    executor_pod_name: str | None = None
    files: dict[str, str] = Field(default_factory=dict)


class BatchRunCodeRequest(BaseModel):
    """The body of ``POST /run_code/batch``: several independent runs."""

    model_config = ConfigDict(extra="forbid")

    requests: list[RunCodeRequest] = Field(min_length=1)


class BatchRunCodeResponse(BaseModel):
    """Results in the order of the requests."""

    results: list[RunCodeResponse]


def command_result(result: ExecResult) -> CommandRunResult:
    """The CommandRunResult of one ExecResult."""
    return CommandRunResult(
        status="TimeLimitExceeded" if result.status == "timeout" else "Finished",
        execution_time=result.wall_s,
        return_code=result.exit_code,
        stdout=result.stdout,
        stderr=result.stderr,
    )


def overall_status(results: list[CommandRunResult]) -> RunStatus:
    """SandboxFusion's rule: any Error → SandboxError; any TLE or non-zero code → Failed; else Success."""
    if any(r.status == "Error" for r in results):
        return "SandboxError"
    if any(r.status == "TimeLimitExceeded" or r.return_code != 0 for r in results):
        return "Failed"
    return "Success"


def to_response(result: ExecResult, executor: str | None = None) -> RunCodeResponse:
    """The SandboxFusion response for a finished run (with its compile step, if any)."""
    if result.compile_result is not None and result.compile_result.status != "ok":
        compiled = command_result(result.compile_result)
        message = "compilation failed" if compiled.status == "Finished" else "compilation timed out"
        return RunCodeResponse(
            status=overall_status([compiled]),
            message=message,
            compile_result=compiled,
            executor_pod_name=executor,
        )
    compiled = None if result.compile_result is None else command_result(result.compile_result)
    run_result = command_result(result)
    parts = [r for r in (compiled, run_result) if r is not None]
    message = {"ok": "", "timeout": "time limit exceeded", "oom": "memory limit exceeded"}.get(
        result.status, f"program ended with status {result.status}"
    )
    return RunCodeResponse(
        status=overall_status(parts),
        message=message,
        compile_result=compiled,
        run_result=run_result,
        executor_pod_name=executor,
        files={name: base64.b64encode(data).decode() for name, data in result.files.items()},
    )


def sandbox_error_response(message: str, executor: str | None = None) -> RunCodeResponse:
    """The response when the sandbox could not run the code at all."""
    return RunCodeResponse(
        status="SandboxError",
        message=message,
        run_result=CommandRunResult(status="Error", stderr=message),
        executor_pod_name=executor,
    )
