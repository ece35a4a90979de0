"""Every HTTP server survives hostile input: random JSON, random bytes and wrong types never give a
5xx, every 4xx has a JSON body with a ``detail``, and a well-formed request still works afterwards.

The servers run in-process (FastAPI's TestClient); the sandbox server gets a stand-in backend that
answers instantly, since this checks the HTTP layer's validation, not code execution (the hostile
code suite in tests/integration/sandboxes covers that).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import turngym
from turngym.envs.search.kb import generate_kb
from turngym.envs.search.retriever import BM25Retriever
from turngym.envs.search.server import create_retriever_app
from turngym.envs.server import create_env_app
from turngym.envs.toy.calculator import CALCULATOR
from turngym.sandboxes.api import ExecResult, RunRequest, Sandbox
from turngym.sandboxes.server import create_sandbox_app
from turngym.tools import create_tool_app

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
FIELDS = ["action", "seed", "task_id", "expression", "queries", "topk", "return_scores", "code", "language"]
NEAR_MISS = st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=4)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class InstantSandbox(Sandbox):
    """Answers every request with a fixed result without running anything."""

    def run_request(self, request: RunRequest) -> ExecResult:
        return ExecResult(status="ok", exit_code=0, stdout="1\n", stderr="", wall_s=0.0, truncated=False)

    def status(self) -> dict[str, Any]:
        return {"backend": "instant"}

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def env_client() -> Iterator[tuple[TestClient, str]]:
    app = create_env_app("turngym/Maze-v0", lambda: turngym.make("turngym/Maze-v0"), max_sessions=4)
    with TestClient(app) as client:
        sid = client.post("/sessions").json()["session_id"]
        client.post(f"/sessions/{sid}/reset", json={"seed": 0})
        yield client, sid


@pytest.fixture(scope="module")
def tool_client() -> Iterator[TestClient]:
    with TestClient(create_tool_app([CALCULATOR])) as client:
        yield client


@pytest.fixture(scope="module")
def retriever_client() -> Iterator[TestClient]:
    app = create_retriever_app(BM25Retriever(generate_kb().passages[:50]))
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="module")
def sandbox_client() -> Iterator[TestClient]:
    with TestClient(create_sandbox_app(InstantSandbox())) as client:
        yield client


def assert_survived(response: Any) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body, dict) and body.get("detail"), response.text[:300]


def post_both(client: TestClient, path: str, payload: Any, raw: bytes) -> None:
    assert_survived(client.post(path, content=json.dumps(payload).encode()))
    assert_survived(client.post(path, content=raw, headers={"content-type": "application/json"}))


@FUZZ
@given(payload=JSON | NEAR_MISS, raw=st.binary(max_size=200))
def test_env_server_survives(env_client: tuple[TestClient, str], payload: Any, raw: bytes) -> None:
    client, sid = env_client
    for path in (f"/sessions/{sid}/step", f"/sessions/{sid}/reset", "/sessions/not-a-session/step"):
        post_both(client, path, payload, raw)
    client.post(f"/sessions/{sid}/reset", json={"seed": 1, "task_id": 2})
    assert client.post(f"/sessions/{sid}/step", json={"action": "look"}).status_code == 200


@FUZZ
@given(payload=JSON | NEAR_MISS, raw=st.binary(max_size=200))
def test_tool_server_survives(tool_client: TestClient, payload: Any, raw: bytes) -> None:
    for path in ("/tools/calculator", "/tools/unknown"):
        post_both(tool_client, path, payload, raw)
    ok = tool_client.post("/tools/calculator", json={"expression": "6 * 7"})
    assert ok.json() == {"ok": True, "output": "42", "error": None}


@FUZZ
@given(payload=JSON | NEAR_MISS, raw=st.binary(max_size=200))
def test_retriever_server_survives(retriever_client: TestClient, payload: Any, raw: bytes) -> None:
    post_both(retriever_client, "/retrieve", payload, raw)
    ok = retriever_client.post("/retrieve", json={"queries": ["capital"], "topk": 2})
    assert ok.status_code == 200 and len(ok.json()["result"][0]) == 2


@FUZZ
@given(payload=JSON | NEAR_MISS, raw=st.binary(max_size=200))
def test_sandbox_server_survives(sandbox_client: TestClient, payload: Any, raw: bytes) -> None:
    for path in ("/run_code", "/run_code/batch"):
        post_both(sandbox_client, path, payload, raw)
    ok = sandbox_client.post("/run_code", json={"code": "print(1)", "language": "python"})
    assert ok.status_code == 200 and ok.json()["run_result"]["stdout"] == "1\n"
