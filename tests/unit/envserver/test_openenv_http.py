"""OpenEnv's stateless plain-HTTP endpoints (``POST /reset``, ``POST /step``, ``GET /state``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

import turngym
from tests.server_envs import ScriptedEnv
from turngym.envs.server import create_env_app

MAZE = "turngym/Maze-v0"


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_env_app(MAZE, lambda: turngym.make(MAZE), max_sessions=2)) as c:
        yield c


def _episode_start(seed: int, task_id: int) -> tuple[str, str, tuple[str, float, bool]]:
    env = turngym.make(MAZE)
    first, _ = env.reset(seed=seed, options={"task_id": task_id})
    action = env.expert_action()
    obs, reward, terminated, truncated, _ = env.step(action)
    env.close()
    return first, action, (obs, float(reward), terminated or truncated)


def test_reset_returns_the_first_observation_in_openenv_shape(client: TestClient) -> None:
    first, _, _ = _episode_start(3, 5)
    reply = client.post("/reset", json={"seed": 3, "task_id": 5, "episode_id": "e-1"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert set(body) == {"observation", "reward", "done"}
    assert body["observation"]["text"] == first
    assert (body["reward"], body["done"], body["observation"]["truncated"]) == (None, False, False)
    assert client.app.state.service.sessions == {}  # stateless, as OpenEnv's HTTP server


def test_empty_reset_body_is_accepted(client: TestClient) -> None:
    reply = client.post("/reset")
    assert reply.status_code == 200 and isinstance(reply.json()["observation"]["text"], str)


def test_step_plays_one_step_of_the_requested_episode(client: TestClient) -> None:
    _, action, (obs, reward, done) = _episode_start(3, 5)
    body = {"action": {"action": action}, "seed": 3, "task_id": 5, "timeout_s": 5, "request_id": "r"}
    reply = client.post("/step", json=body)
    assert reply.status_code == 200, reply.text
    got = reply.json()
    assert (got["observation"]["text"], got["reward"], got["done"]) == (obs, reward, done)
    assert client.app.state.service.sessions == {}


def test_state_is_a_fresh_envs_state(client: TestClient) -> None:
    assert client.get("/state").json() == {"episode_id": None, "step_count": 0}


def test_metadata_names_the_env(client: TestClient) -> None:
    body = client.get("/metadata").json()
    assert body["name"] == MAZE and body["version"] == turngym.__version__
    assert body["description"] == (type(turngym.make(MAZE)).__doc__ or "").strip().splitlines()[0]


@pytest.mark.parametrize(
    ("path", "body", "named"),
    [
        ("/reset", "{not json", "not valid JSON"),
        ("/reset", "[1, 2]", "must be a JSON object"),
        ("/reset", '{"seed": -1}', "seed"),
        ("/reset", '{"episode_id": 7}', "episode_id"),
        ("/reset", '{"task_id": [1]}', "task_id"),
        ("/step", "{}", "action"),
        ("/step", '{"action": "up"}', "action"),
        ("/step", '{"action": {"move": "up"}}', "action"),
        ("/step", '{"action": {"action": "up"}, "timeout_s": 0}', "timeout_s"),
        ("/step", '{"action": {"action": "up"}, "bogus": 1}', "bogus"),
    ],
)
def test_malformed_bodies_get_a_4xx_json_naming_the_problem(
    client: TestClient, path: str, body: str, named: str
) -> None:
    reply = client.post(path, content=body, headers={"content-type": "application/json"})
    assert 400 <= reply.status_code < 500, reply.text
    assert named in reply.json()["detail"]
    assert client.app.state.service.sessions == {}


def test_body_over_the_limit_is_413() -> None:
    app = create_env_app(MAZE, lambda: turngym.make(MAZE), max_body_bytes=64)
    with TestClient(app) as client:
        reply = client.post("/step", json={"action": {"action": "x" * 100}})
    assert reply.status_code == 413 and "limit" in reply.json()["detail"]


def test_tokens_guard_the_openenv_endpoints() -> None:
    app = create_env_app(MAZE, lambda: turngym.make(MAZE), tokens=["s3cret"])
    with TestClient(app) as client:
        assert client.post("/reset", json={}).status_code == 401
        assert client.get("/state").status_code == 401
        assert client.get("/metadata").status_code == 401
        assert client.post("/reset", json={}, headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_full_server_answers_429(client: TestClient) -> None:
    for _ in range(2):
        assert client.post("/sessions").status_code == 201
    reply = client.post("/reset", json={})
    assert reply.status_code == 429 and reply.headers["retry-after"] == "1"


def test_app_serves_again_after_its_lifespan_restarts() -> None:
    app = create_env_app(MAZE, lambda: turngym.make(MAZE))
    for _ in range(2):  # the first shutdown used to leave the env worker pool shut down for good
        with TestClient(app) as client:
            assert client.post("/reset", json={"seed": 1}).status_code == 200


def test_step_timeout_s_is_the_calls_deadline() -> None:
    with TestClient(create_env_app("test/Scripted-v0", ScriptedEnv)) as client:
        late = client.post("/step", json={"action": {"action": "sleep 0.5"}, "timeout_s": 0.1})
        assert late.status_code == 504 and "0.1 s deadline" in late.json()["detail"]
        quick = client.post("/step", json={"action": {"action": "sleep 0.01"}, "timeout_s": 5})
        assert quick.status_code == 200
        assert client.app.state.service.sessions == {}
