"""The env server's limits, reaper, deadlines, tokens, metrics and batch endpoint (in-process)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.server_envs import ScriptedEnv
from turngym.envs.server import ServerLimits, create_env_app


def _client(**kwargs: object) -> TestClient:
    return TestClient(create_env_app("test/Scripted-v0", ScriptedEnv, **kwargs))  # type: ignore[arg-type]


@pytest.fixture
def client() -> Iterator[TestClient]:
    with _client(max_sessions=4, max_inflight=2) as c:
        yield c


def _session(client: TestClient, token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.post("/sessions", headers=headers)
    assert response.status_code == 201, response.text
    sid = response.json()["session_id"]
    client.post(f"/sessions/{sid}/reset", json={"seed": 0, "task_id": 1}, headers=headers)
    return sid


def test_full_server_answers_429_with_retry_after_at_once() -> None:
    with _client(max_sessions=2) as client:
        _session(client), _session(client)
        started = time.monotonic()
        full = client.post("/sessions")
        assert full.status_code == 429 and full.headers["retry-after"] == "1"
        assert "2 sessions" in full.json()["detail"] and time.monotonic() - started < 1.0


def test_inflight_limit_answers_503_while_steps_run() -> None:
    ScriptedEnv.release.clear()
    with _client(max_sessions=4, max_inflight=1) as client:
        a, b = _session(client), _session(client)
        blocked = threading.Thread(target=lambda: client.post(f"/sessions/{a}/step", json={"action": "wait"}))
        blocked.start()
        try:
            deadline = time.monotonic() + 5
            while client.app.state.service.inflight == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            busy = client.post(f"/sessions/{b}/step", json={"action": "x"})
            assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        finally:
            ScriptedEnv.release.set()
            blocked.join()
        assert client.post(f"/sessions/{b}/step", json={"action": "x"}).status_code == 200


def test_slow_env_does_not_block_other_sessions(client: TestClient) -> None:
    """Env calls run off the event loop: a 1 s step does not delay another session's step."""
    a, b = _session(client), _session(client)
    slow = threading.Thread(target=lambda: client.post(f"/sessions/{a}/step", json={"action": "sleep 1"}))
    slow.start()
    time.sleep(0.1)
    started = time.monotonic()
    assert client.post(f"/sessions/{b}/step", json={"action": "x"}).status_code == 200
    assert time.monotonic() - started < 0.5
    slow.join()


def test_reaper_closes_idle_sessions_without_new_requests() -> None:
    """Regression: idle sessions were only reaped when someone created a new one."""
    with _client(max_sessions=3, session_ttl_s=0.2, reap_interval_s=0.05) as client:
        for _ in range(3):
            _session(client)
        assert client.post("/sessions").status_code == 429
        time.sleep(0.6)
        assert client.get("/health").json()["sessions"] == 0
        assert "turngym_env_sessions_reaped_total 3" in client.get("/metrics").text
        assert client.post("/sessions").status_code == 201


def test_deadline_answers_504_and_the_session_needs_a_reset(client: TestClient) -> None:
    sid = _session(client)
    started = time.monotonic()
    late = client.post(f"/sessions/{sid}/step", json={"action": "sleep 0.5"},
                       headers={"X-Turngym-Deadline-S": "0.1"})  # fmt: skip
    assert late.status_code == 504 and "0.1 s deadline" in late.json()["detail"]
    assert time.monotonic() - started < 0.4
    after = client.post(f"/sessions/{sid}/step", json={"action": "x"})
    assert after.status_code == 409 and "deadline" in after.json()["detail"]
    assert client.post(f"/sessions/{sid}/reset", json={"seed": 0, "task_id": 2}).status_code == 200
    assert client.post(f"/sessions/{sid}/step", json={"action": "x"}).json()["observation"] == "1: x"


@pytest.mark.parametrize("value", ["soon", "-1", "0", "nan", "inf"])
def test_bad_deadline_header_is_422(client: TestClient, value: str) -> None:
    sid = _session(client)
    bad = client.post(f"/sessions/{sid}/step", json={"action": "x"}, headers={"X-Turngym-Deadline-S": value})
    assert bad.status_code == 422 and "x-turngym-deadline-s" in bad.json()["detail"]


def test_tokens_guard_every_endpoint_but_health_and_sessions_belong_to_their_token() -> None:
    with _client(tokens=("alpha", "beta")) as client:
        assert client.get("/health").status_code == 200
        for method, path in [("GET", "/envs"), ("GET", "/metrics"), ("POST", "/sessions")]:
            missing = client.request(method, path)
            assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
            wrong = client.request(method, path, headers={"Authorization": "Bearer gamma"})
            assert wrong.status_code == 401
        sid = _session(client, "alpha")
        for token in ("beta", None, "gamma"):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            step = client.post(f"/sessions/{sid}/step", json={"action": "x"}, headers=headers)
            assert step.status_code == (403 if token == "beta" else 401)
            assert client.delete(f"/sessions/{sid}", headers=headers).status_code in (401, 403)
        mine = client.post(
            f"/sessions/{sid}/step", json={"action": "x"}, headers={"Authorization": "Bearer alpha"}
        )
        assert mine.status_code == 200


def test_without_server_tokens_a_clients_token_still_owns_its_session(client: TestClient) -> None:
    sid = _session(client, "mine")
    assert client.post(f"/sessions/{sid}/step", json={"action": "x"}).status_code == 403
    assert client.post(f"/sessions/{sid}/step", json={"action": "x"},
                       headers={"Authorization": "Bearer mine"}).status_code == 200  # fmt: skip


def test_non_ascii_token_is_refused_not_a_crash() -> None:
    with _client(tokens=("alpha",)) as client:
        response = client.post(
            "/sessions", headers={"Authorization": "Bearer \u00e9t\u00e9".encode("latin-1")}
        )
        assert response.status_code == 401


def test_body_limits_on_step_and_batch() -> None:
    with _client(max_body_bytes=1000) as client:
        sid = _session(client)
        assert client.post(f"/sessions/{sid}/step", json={"action": "x" * 2000}).status_code == 413
        calls = [{"session_id": sid, "type": "step", "data": {"action": "x" * 100}}] * 20
        assert client.post("/sessions/batch", json={"calls": calls}).status_code == 413


def test_envs_and_metrics_report_calls_errors_and_latency(client: TestClient) -> None:
    assert client.get("/envs").json() == {
        "envs": [{"env_id": "test/Scripted-v0", "max_turns": 50, "num_tasks": 10}]
    }
    sid = _session(client)
    for _ in range(3):
        client.post(f"/sessions/{sid}/step", json={"action": "x"})
    client.post("/sessions/nope/step", json={"action": "x"})
    client.post(f"/sessions/{sid}/step", json={"actoin": "x"})
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = metrics.text
    assert 'turngym_env_calls_total{op="step"} 3' in text
    assert 'turngym_env_calls_total{op="reset"} 1' in text
    assert 'turngym_env_errors_total{kind="unknown_session"} 1' in text
    assert 'turngym_env_errors_total{kind="invalid_request"} 1' in text
    assert 'turngym_env_call_seconds_bucket{op="step",le="+Inf"} 3' in text
    assert 'turngym_env_call_seconds_count{op="step"} 3' in text
    assert "turngym_env_sessions 1" in text


def test_batch_steps_many_sessions_in_one_request(client: TestClient) -> None:
    a, b = _session(client), _session(client)
    calls = [
        {"session_id": a, "type": "step", "data": {"action": "left"}},
        {"session_id": b, "type": "reset", "data": {"seed": 1, "task_id": 3}},
        {"session_id": "nope", "type": "step", "data": {"action": "x"}},
        {"session_id": b, "type": "step", "data": {"action": 5}},
    ]
    results = client.post("/sessions/batch", json={"calls": calls}).json()["results"]
    assert [r["status"] for r in results] == [200, 200, 404, 422]
    assert results[0]["data"]["observation"] == "1: left"
    assert results[1]["data"]["observation"] == "task 3"
    bad = client.post("/sessions/batch", json={"calls": [{"session_id": a, "type": "jump"}]})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "calls.0.type"


def test_batch_over_its_size_limit_is_422() -> None:
    with _client() as client:
        calls = [{"session_id": "x", "type": "step", "data": {"action": "x"}}] * (
            ServerLimits().max_batch + 1
        )
        too_many = client.post("/sessions/batch", json={"calls": calls})
        assert too_many.status_code == 422 and "limit of 1024" in too_many.json()["detail"]


def test_env_that_raises_is_500_with_a_json_body_and_the_server_goes_on(client: TestClient) -> None:
    sid = _session(client)
    boom = client.post(f"/sessions/{sid}/step", json={"action": "boom"})
    assert boom.status_code == 500 and "boom" in boom.json()["detail"]
    assert client.post(f"/sessions/{sid}/step", json={"action": "x"}).status_code == 200


@pytest.mark.parametrize("field", ["max_sessions", "max_inflight", "max_body_bytes", "max_batch"])
def test_limits_must_be_positive(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ServerLimits(**{field: 0})
