"""The WebSocket channel: the HTTP API's JSON per message, and malformed messages answered, not fatal."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

import turngym
from tests.server_envs import ScriptedEnv
from turngym.envs.server import create_env_app


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_env_app("test/Scripted-v0", ScriptedEnv, max_body_bytes=1000, tokens=())) as c:
        yield c


def test_ws_episode_matches_local_maze() -> None:
    app = create_env_app("turngym/Maze-v0", lambda: turngym.make("turngym/Maze-v0"))
    with TestClient(app) as client:
        sid = client.post("/sessions").json()["session_id"]
        local = turngym.make("turngym/Maze-v0")
        obs, _ = local.reset(seed=4, options={"task_id": 9})
        with client.websocket_connect(f"/sessions/{sid}/ws") as ws:
            ws.send_json({"type": "reset", "data": {"seed": 4, "task_id": 9}, "id": 1})
            reply = ws.receive_json()
            assert (reply["type"], reply["status"], reply["id"]) == ("result", 200, 1)
            assert reply["data"]["observation"] == obs
            while True:
                action = local.expert_action()
                obs, reward, terminated, truncated, _ = local.step(action)
                ws.send_json({"type": "step", "data": {"action": action}})
                data = ws.receive_json()["data"]
                assert (data["observation"], data["reward"], data["terminated"]) == (obs, reward, terminated)
                if terminated or truncated:
                    break
            ws.send_json({"type": "close"})
            assert ws.receive_json()["status"] == 204
        assert client.get("/health").json()["sessions"] == 0


MALFORMED = [
    ("not json at all", 422, "not valid JSON"),
    ("[1, 2]", 422, "JSON object"),
    ('{"type": "jump"}', 422, "'type' must be"),
    ('{"data": {}}', 422, "'type' must be"),
    ('{"type": "step", "data": [1]}', 422, "'data' must be a JSON object"),
    ('{"type": "step", "data": {"actoin": "x"}}', 422, "actoin"),
    ('{"type": "step", "data": {"action": 5}}', 422, "action"),
    ('{"type": "reset", "data": {"seed": -3}}', 422, "seed"),
    ('{"type": "reset", "data": {"task_id": 99}}', 422, "cannot reset to task 99"),
    ('{"type": "step", "data": {"action": "x"}, "deadline_s": "soon"}', 422, "deadline"),
    ('{"type": "step", "data": {"action": "' + "x" * 2000 + '"}}', 413, "over the limit"),
]


def test_malformed_messages_get_error_messages_and_the_socket_lives(client: TestClient) -> None:
    sid = client.post("/sessions").json()["session_id"]
    with client.websocket_connect(f"/sessions/{sid}/ws") as ws:
        ws.send_json({"type": "step", "data": {"action": "x"}})
        assert ws.receive_json()["status"] == 409  # step before reset
        ws.send_json({"type": "reset", "data": {"seed": 0, "task_id": 1}})
        assert ws.receive_json()["data"]["observation"] == "task 1"
        for text, status, words in MALFORMED:
            ws.send_text(text)
            reply = ws.receive_json()
            assert (reply["type"], reply["status"]) == ("error", status), text
            assert words in str(reply["data"]), (text, reply)
        ws.send_bytes(b"\xff\xfe\x00garbage")
        assert ws.receive_json()["status"] == 422
        ws.send_bytes(b'{"type": "step", "data": {"action": "bytes"}}')
        assert ws.receive_json()["data"]["observation"] == "1: bytes"
        ws.send_json({"type": "step", "data": {"action": "boom"}})
        assert ws.receive_json()["status"] == 500
        ws.send_json({"type": "step", "data": {"action": "after"}})
        assert ws.receive_json()["data"]["observation"] == "3: after"


def test_unknown_session_gets_an_error_then_the_socket_closes(client: TestClient) -> None:
    with client.websocket_connect("/sessions/nope/ws") as ws:
        reply = ws.receive_json()
        assert (reply["status"], reply["type"]) == (404, "error")
        with pytest.raises(WebSocketDisconnect):
            ws.receive_json()


def test_ws_needs_the_sessions_token() -> None:
    app = create_env_app("test/Scripted-v0", ScriptedEnv, tokens=("alpha", "beta"))
    with TestClient(app) as client:
        sid = client.post("/sessions", headers={"Authorization": "Bearer alpha"}).json()["session_id"]
        for headers, status in [({}, 401), ({"Authorization": "Bearer beta"}, 403)]:
            with client.websocket_connect(f"/sessions/{sid}/ws", headers=headers) as ws:
                assert ws.receive_json()["status"] == status
        with client.websocket_connect(f"/sessions/{sid}/ws", headers={"Authorization": "Bearer alpha"}) as ws:
            ws.send_json({"type": "reset", "data": {"seed": 0, "task_id": 0}})
            assert ws.receive_json()["status"] == 200
