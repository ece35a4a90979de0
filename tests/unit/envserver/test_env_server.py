"""The env server's control API, in-process through FastAPI's TestClient."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import turngym
from turngym.envs.server import create_env_app


@pytest.fixture
def client() -> TestClient:
    app = create_env_app(
        "turngym/Maze-v0", lambda: turngym.make("turngym/Maze-v0"), max_sessions=2, html=True
    )
    with TestClient(app) as c:
        yield c


def _session(client: TestClient) -> str:
    response = client.post("/sessions")
    assert response.status_code == 201
    return response.json()["session_id"]


def test_health_reports_env_and_limits(client: TestClient) -> None:
    body = client.get("/health").json()
    assert body == {
        "status": "ok",
        "sessions": 0,
        "max_sessions": 2,
        "env_id": "turngym/Maze-v0",
        "max_turns": 20,
        "num_tasks": 1000,
    }


def test_remote_episode_equals_local_episode(client: TestClient) -> None:
    sid = _session(client)
    local = turngym.make("turngym/Maze-v0")
    obs, info = local.reset(seed=5, options={"task_id": 7})
    remote = client.post(f"/sessions/{sid}/reset", json={"seed": 5, "task_id": 7}).json()
    assert remote["observation"] == obs
    assert remote["info"]["admissible_actions"] == info["admissible_actions"]
    while True:
        action = local.expert_action()
        obs, reward, terminated, truncated, info = local.step(action)
        got = client.post(f"/sessions/{sid}/step", json={"action": action}).json()
        assert (got["observation"], got["reward"], got["terminated"]) == (obs, reward, terminated)
        if terminated or truncated:
            break
    assert got["info"]["won"] is True


def test_step_before_reset_is_409(client: TestClient) -> None:
    sid = _session(client)
    response = client.post(f"/sessions/{sid}/step", json={"action": "go north"})
    assert response.status_code == 409
    assert "reset" in response.json()["detail"]


def test_bad_bodies_are_422_naming_the_field(client: TestClient) -> None:
    sid = _session(client)
    client.post(f"/sessions/{sid}/reset", json={})
    missing = client.post(f"/sessions/{sid}/step", json={"actoin": "go north"})
    assert missing.status_code == 422
    assert {e["field"] for e in missing.json()["errors"]} == {"action", "actoin"}
    wrong_type = client.post(f"/sessions/{sid}/step", json={"action": 5})
    assert wrong_type.status_code == 422 and wrong_type.json()["errors"][0]["field"] == "action"
    malformed = client.post(f"/sessions/{sid}/step", content=b'{"action": ')
    assert malformed.status_code == 422 and "not valid JSON" in malformed.json()["detail"]
    not_object = client.post(f"/sessions/{sid}/step", json=["go north"])
    assert not_object.status_code == 422 and "JSON object" in not_object.json()["detail"]
    # the session survived every bad request and still plays
    ok = client.post(f"/sessions/{sid}/step", json={"action": "go north"})
    assert ok.status_code == 200


def test_oversized_body_is_413(client: TestClient) -> None:
    sid = _session(client)
    response = client.post(f"/sessions/{sid}/step", json={"action": "x" * (2 << 20)})
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


def test_unknown_session_is_404_and_delete_frees_a_slot(client: TestClient) -> None:
    assert client.post("/sessions/nope/step", json={"action": "x"}).status_code == 404
    first, _second = _session(client), _session(client)
    full = client.post("/sessions")
    assert full.status_code == 429 and "sessions" in full.json()["detail"]
    assert client.delete(f"/sessions/{first}").status_code == 204
    assert client.delete(f"/sessions/{first}").status_code == 404
    assert client.post("/sessions").status_code == 201


def test_browser_view_plays_an_episode(client: TestClient) -> None:
    page = client.get("/ui/")
    assert page.status_code == 200 and "You are in the" in page.text and 'action="act"' in page.text
    env = turngym.make("turngym/Maze-v0")
    env.reset(seed=0)  # the browser session's first episode uses seed 0 too
    while True:
        action = env.expert_action()
        _, _, terminated, truncated, _ = env.step(action)
        after = client.post("/ui/act", data={"action": action})
        if terminated or truncated:
            break
    assert after.status_code == 200
    assert "episode over" in after.text and "reward 1" in after.text
    assert 'action="act"' not in after.text


def test_bad_reset_requests_are_422_and_the_session_survives(client: TestClient) -> None:
    sid = _session(client)
    negative = client.post(f"/sessions/{sid}/reset", json={"seed": -1})
    assert negative.status_code == 422 and negative.json()["errors"][0]["field"] == "seed"
    bad_task = client.post(f"/sessions/{sid}/reset", json={"task_id": "kitchen"})
    assert bad_task.status_code == 422 and "cannot reset to task 'kitchen'" in bad_task.json()["detail"]
    assert client.post(f"/sessions/{sid}/reset", json={"seed": 0, "task_id": 1}).status_code == 200
