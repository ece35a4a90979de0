"""``WS /sessions/mux``: many sessions on one socket, array frames, malformed messages answered, the
event-loop fast path for nonblocking envs and a slow env that holds up no other session."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tests.server_envs import ScriptedEnv
from turngym.envs.server import create_env_app
from turngym.envs.server_sessions import jsonable, parse_step
from turngym.trajectory import to_jsonable


class InlineEnv(ScriptedEnv):
    """A ScriptedEnv that declares itself nonblocking and records the thread of each step."""

    nonblocking = True
    threads: ClassVar[list[str]] = []

    def _step(self, action: str) -> Any:
        self.threads.append(threading.current_thread().name)
        return super()._step(action)


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_env_app("test/Scripted-v0", ScriptedEnv, max_body_bytes=1000)) as c:
        yield c


def _ready(client: TestClient) -> str:
    sid = client.post("/sessions").json()["session_id"]
    assert client.post(f"/sessions/{sid}/reset", json={"seed": 0, "task_id": 1}).status_code == 200
    return sid


def test_two_sessions_in_one_frame_get_tagged_replies(client: TestClient) -> None:
    a, b = _ready(client), _ready(client)
    with client.websocket_connect("/sessions/mux") as ws:
        ws.send_json([
            {"type": "step", "session_id": a, "data": {"action": "x"}, "id": 1},
            {"type": "step", "session_id": b, "data": {"action": "y"}, "id": 2},
            {"type": "step", "session_id": a, "data": {"action": "z"}, "id": 3},
        ])  # fmt: skip
        replies: dict[int, dict[str, Any]] = {}
        while len(replies) < 3:
            frame = ws.receive_json()
            assert isinstance(frame, list)
            replies.update((r["id"], r) for r in frame)
        assert [(replies[i]["session_id"], replies[i]["data"]["observation"]) for i in (1, 2, 3)] == [
            (a, "1: x"),
            (b, "1: y"),
            (a, "2: z"),
        ]
        ws.send_json({"type": "close", "session_id": b, "id": "bye"})  # a lone object is a frame too
        assert ws.receive_json() == [
            {"type": "result", "status": 204, "data": None, "id": "bye", "session_id": b}
        ]
    assert client.get("/health").json()["sessions"] == 1


MALFORMED = [
    ('{"type": "step", "data": {"action": "x"}, "id": 7}', 422, "session_id"),
    ('{"type": "step", "session_id": 5, "data": {"action": "x"}, "id": 7}', 422, "session_id"),
    ('{"type": "jump", "session_id": "S", "id": 7}', 422, "'type' must be"),
    ('{"type": "step", "session_id": "S", "data": {"action": 5}, "id": 7}', 422, "action"),
    ('{"type": "step", "session_id": "S", "data": {"action": "x", "extra": 1}, "id": 7}', 422, "extra"),
    ('{"type": "step", "session_id": "nope", "data": {"action": "x"}, "id": 7}', 404, "nope"),
    (
        '{"type": "step", "session_id": "S", "data": {"action": "x"}, "deadline_s": -1, "id": 7}',
        422,
        "deadline",
    ),
    ("[1]", 422, "JSON object"),
    ("not json", 422, "not valid JSON"),
    ('{"type": "step", "session_id": "S", "data": {"action": "' + "x" * 2000 + '"}}', 413, "over the limit"),
]


def test_malformed_messages_get_error_replies_and_the_socket_lives(client: TestClient) -> None:
    sid = _ready(client)
    with client.websocket_connect("/sessions/mux") as ws:
        for text, status, words in MALFORMED:
            ws.send_text(text.replace('"S"', f'"{sid}"'))
            (reply,) = ws.receive_json()
            assert (reply["type"], reply["status"]) == ("error", status), text
            assert words in str(reply["data"]), (text, reply)
            if text.startswith("{") and status != 413:
                assert reply["id"] == 7, text
        ws.send_json([{"type": "step", "session_id": sid, "data": {"action": "after"}, "id": 8}])
        assert ws.receive_json()[0]["data"]["observation"] == "1: after"


def test_slow_env_holds_up_no_other_session_on_the_socket(client: TestClient) -> None:
    slow, fast = _ready(client), _ready(client)
    with client.websocket_connect("/sessions/mux") as ws:
        started = time.monotonic()
        ws.send_json([
            {"type": "step", "session_id": slow, "data": {"action": "sleep 1"}, "id": "slow"},
            {"type": "step", "session_id": fast, "data": {"action": "x"}, "id": "fast"},
        ])  # fmt: skip
        (first,) = ws.receive_json()
        assert first["id"] == "fast" and time.monotonic() - started < 0.8
        assert ws.receive_json()[0]["id"] == "slow"


def test_tokens_on_the_mux_socket() -> None:
    app = create_env_app("test/Scripted-v0", ScriptedEnv, tokens=("alpha", "beta"))
    with TestClient(app) as client:
        sid = client.post("/sessions", headers={"Authorization": "Bearer alpha"}).json()["session_id"]
        with client.websocket_connect("/sessions/mux") as ws:
            assert ws.receive_json()[0]["status"] == 401
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
            assert closed.value.code == 1008
        with client.websocket_connect("/sessions/mux", headers={"Authorization": "Bearer beta"}) as ws:
            ws.send_json({"type": "reset", "session_id": sid, "data": {"task_id": 1}, "id": 1})
            assert ws.receive_json()[0]["status"] == 403  # another token's session


def test_nonblocking_env_steps_on_the_event_loop_and_others_in_workers() -> None:
    """Regression: every step hopped to a worker thread, costing more than a trivial step itself."""
    for env_class, on_loop in (
        (InlineEnv, True),
        (type("Blocking", (InlineEnv,), {"nonblocking": False}), False),
    ):
        InlineEnv.threads.clear()
        with TestClient(create_env_app("test/Inline-v0", env_class)) as client:
            sid = _ready(client)
            for transport in ("http", "mux"):
                if transport == "http":
                    assert client.post(f"/sessions/{sid}/step", json={"action": "a"}).status_code == 200
                else:
                    with client.websocket_connect("/sessions/mux") as ws:
                        ws.send_json({"type": "step", "session_id": sid, "data": {"action": "b"}, "id": 1})
                        assert ws.receive_json()[0]["data"]["observation"] == "2: b"
        assert [name.startswith("env") for name in InlineEnv.threads] == [not on_loop, not on_loop]


def test_step_fast_path_agrees_with_the_schema() -> None:
    assert parse_step({"action": "go"}).action == "go"  # type: ignore[union-attr]
    for bad in ({"action": 1}, {"action": "go", "x": 1}, {}, ["go"]):
        status, body = parse_step(bad)  # type: ignore[misc]
        assert status == 422 and "detail" in body


def test_jsonable_matches_to_jsonable() -> None:
    info = {"anchor": ((1, 2), "x"), 3: [None, 1.5, True, {"k": (4,)}], "s": "t", "m": {"turns": 2.0}}
    assert jsonable(info) == to_jsonable(info)
    assert jsonable(info)["anchor"] == {"__tuple__": [{"__tuple__": [1, 2]}, "x"]}
