"""The sandbox server's HTTP contract, in-process through Starlette's TestClient."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from turngym.sandboxes import LocalSandbox
from turngym.sandboxes.server import Slots, create_sandbox_app


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with LocalSandbox(pool_size=1) as sandbox:
        app = create_sandbox_app(sandbox, max_concurrency=2, max_body_bytes=10_000, max_batch=3)
        with TestClient(app) as test_client:
            yield test_client


def test_health_reports_the_backend(client: TestClient) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["max_concurrency"] == 2
    assert body["sandbox"]["backend"] == "local"


def test_run_code_answers_like_sandboxfusion(client: TestClient) -> None:
    files = {"in.txt": base64.b64encode(b"5").decode()}
    response = client.post(
        "/run_code",
        json={"code": "print(int(open('in.txt').read()) * 2)", "language": "python", "files": files},
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["message"], body["compile_result"]) == ("Success", "", None)
    assert body["run_result"]["stdout"] == "10\n"
    assert body["run_result"]["status"] == "Finished"
    assert body["run_result"]["return_code"] == 0
    assert set(body) == {"status", "message", "compile_result", "run_result", "executor_pod_name", "files"}


def test_failed_and_timed_out_runs(client: TestClient) -> None:
    failed = client.post("/run_code", json={"code": "raise SystemExit(2)"}).json()
    assert (failed["status"], failed["run_result"]["return_code"]) == ("Failed", 2)
    slow = client.post("/run_code", json={"code": "while True: pass", "run_timeout": 0.3}).json()
    assert (slow["status"], slow["run_result"]["status"]) == ("Failed", "TimeLimitExceeded")


def test_batch_keeps_the_order(client: TestClient) -> None:
    requests = [{"code": f"print({i} ** 2)"} for i in range(3)]
    body = client.post("/run_code/batch", json={"requests": requests}).json()
    assert [r["run_result"]["stdout"] for r in body["results"]] == ["0\n", "1\n", "4\n"]


@pytest.mark.parametrize(
    ("path", "payload", "status", "detail"),
    [
        ("/run_code", {"code": "x", "language": "cobol"}, 422, "language must be one of python, bash, cpp"),
        ("/run_code", {"code": "x", "bogus": 1}, 422, "request does not match the run_code schema"),
        ("/run_code", {"language": "python"}, 422, "request does not match the run_code schema"),
        ("/run_code", {"code": "x", "run_timeout": -1}, 422, "request does not match the run_code schema"),
        ("/run_code", {"code": "x", "files": {"../a": ""}}, 422, "must be relative"),
        ("/run_code", {"code": "x" * 20_000}, 413, "over the limit of 10000"),
        ("/run_code/batch", {"requests": [{"code": "1"}] * 4}, 413, "at most 3 requests, got 4"),
        (
            "/run_code/batch",
            {"requests": [{"code": "1"}, {"code": "1", "language": "go"}]},
            422,
            "requests[1]",
        ),
    ],
)
def test_bad_requests_get_json_errors(
    client: TestClient, path: str, payload: dict, status: int, detail: str
) -> None:
    response = client.post(path, json=payload)
    assert response.status_code == status
    assert detail in response.json()["detail"]


def test_malformed_json_is_a_422(client: TestClient) -> None:
    response = client.post("/run_code", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "not valid JSON" in response.json()["detail"]


def test_slots_never_hand_out_more_than_the_total() -> None:
    slots = Slots(3)
    assert (slots.take(2), slots.take(2), slots.take(1)) == (2, 1, 0)
    slots.give(3)
    assert slots.take(5) == 3


def test_no_free_slot_is_a_429_with_retry_after() -> None:
    with LocalSandbox(pool_size=1) as sandbox:
        app = create_sandbox_app(sandbox, max_concurrency=1)
        with TestClient(app) as test_client:
            app.state.slots.take(1)
            response = test_client.post("/run_code", json={"code": "print(1)"})
            assert response.status_code == 429
            assert response.headers["retry-after"] == "1"
            assert "all 1 sandbox slots are busy" in response.json()["detail"]
