"""RemoteSandbox against scripted HTTP answers: retries on busy, errors mapped to the error tree."""

from __future__ import annotations

import json

import httpx
import pytest

from turngym.errors import SandboxBusy, SandboxError, SandboxRequestError
from turngym.sandboxes.client import RemoteSandbox

SUCCESS = {
    "status": "Success",
    "message": "",
    "compile_result": None,
    "run_result": {
        "status": "Finished",
        "execution_time": 0.01,
        "return_code": 0,
        "stdout": "1\n",
        "stderr": "",
    },
    "executor_pod_name": None,
    "files": {},
}


def scripted(answers: list[httpx.Response], seen: list[dict]) -> RemoteSandbox:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return answers.pop(0)

    client = httpx.Client(transport=httpx.MockTransport(handler))
    return RemoteSandbox("http://sandbox.test/", retries=2, backoff_s=0.0, client=client)


def test_busy_answers_are_retried() -> None:
    seen: list[dict] = []
    busy = httpx.Response(429, json={"detail": "busy"})
    remote = scripted([busy, busy, httpx.Response(200, json=SUCCESS)], seen)
    result = remote.run("print(1)", timeout_s=3)
    assert (result.status, result.stdout) == ("ok", "1\n")
    assert len(seen) == 3
    assert seen[0]["run_timeout"] == 3 and seen[0]["code"] == "print(1)"


def test_busy_after_every_retry_raises_sandbox_busy() -> None:
    remote = scripted([httpx.Response(429, json={"detail": "all 1 slots busy"})] * 3, [])
    with pytest.raises(SandboxBusy, match="stayed busy after 2 retries: all 1 slots busy"):
        remote.run("print(1)")


@pytest.mark.parametrize(
    ("response", "error", "message"),
    [
        (httpx.Response(422, json={"detail": "language must be one of"}), SandboxRequestError, "422"),
        (httpx.Response(413, json={"detail": "too big"}), SandboxRequestError, "too big"),
        (httpx.Response(500, text="boom"), SandboxError, "answered 500: boom"),
        (
            httpx.Response(200, json={**SUCCESS, "run_result": {"status": "Error", "stderr": "no runtime"}}),
            SandboxError,
            "could not run the code: no runtime",
        ),
    ],
)
def test_error_answers_raise(response: httpx.Response, error: type[Exception], message: str) -> None:
    remote = scripted([response], [])
    with pytest.raises(error, match=message):
        remote.run("print(1)")


def test_an_unreachable_server_is_a_sandbox_error() -> None:
    with (
        RemoteSandbox("http://127.0.0.1:9", retries=0) as remote,
        pytest.raises(SandboxError, match="could not be reached"),
    ):
        remote.run("print(1)")
