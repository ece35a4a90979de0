"""The tool server on a real uvicorn bound to 127.0.0.1, called by the sync and async clients."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from turngym.agents.baselines import run_episode
from turngym.envs.toy.calculator import CALCULATOR, CalculatorEnv
from turngym.errors import ToolArgumentError, ToolNotFound, ToolServerError
from turngym.tools import AsyncToolClient, Toolbox, ToolClient, create_tool_app
from turngym.trajectory import StopReason

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    config = uvicorn.Config(
        create_tool_app([CALCULATOR], max_body_bytes=64 * 1024), host="127.0.0.1", port=0, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start within 20 s"
        time.sleep(0.02)
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    assert host == "127.0.0.1"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sync_client(server_url: str) -> None:
    client = ToolClient(server_url, timeout_s=10)
    assert client.list_tools() == [CALCULATOR.schema()]
    assert client.call("calculator", {"expression": "560 + 4 * 18 + 7 * 82"}).output == "1206"
    failed = client.call("calculator", {"expression": "__import__('os')"})
    assert not failed.ok and failed.error is not None and failed.error.startswith("ValueError: unsupported")
    with pytest.raises(ToolNotFound, match="no tool named 'python'; available: \\['calculator'\\]"):
        client.call("python", {"code": "1"})
    with pytest.raises(ToolArgumentError, match="expression: Field required"):
        client.call("calculator", {"expr": "1"})
    client.close()


def test_http_errors_are_json(server_url: str) -> None:
    with httpx.Client(base_url=server_url, timeout=10) as http:
        assert http.get("/health").json() == {"status": "ok", "tools": 1}
        unknown = http.post("/tools/nope", json={})
        assert unknown.status_code == 404
        assert unknown.headers["content-type"] == "application/json"
        malformed = http.post(
            "/tools/calculator", content=b'{"expression": ', headers={"content-type": "application/json"}
        )
        assert malformed.status_code == 422
        assert malformed.json()["detail"].startswith("request body is not valid JSON")
        wrong_type = http.post("/tools/calculator", json={"expression": 12})
        assert wrong_type.status_code == 422
        assert wrong_type.json()["errors"] == [
            {"field": "expression", "problem": "Input should be a valid string"}
        ]
        huge = http.post("/tools/calculator", json={"expression": "1" * (2 * 64 * 1024)})
        assert huge.status_code == 413
        assert "over the limit of 65536" in huge.json()["detail"]


def test_async_client_concurrent_calls(server_url: str) -> None:
    async def go() -> list[str]:
        client = AsyncToolClient(server_url, timeout_s=10)
        results = await asyncio.gather(
            *(client.call("calculator", {"expression": f"{i} * 3"}) for i in range(20))
        )
        await client.aclose()
        return [r.output for r in results]

    assert asyncio.run(go()) == [str(i * 3) for i in range(20)]


def test_calculator_env_through_the_server(server_url: str) -> None:
    env = CalculatorEnv(tool_url=server_url)
    env.reset(seed=0, options={"task_id": 0})
    obs, _, _, _, info = env.step(env.expert_action())
    assert obs == "Result: 1206" and not info["invalid_action"]
    obs, _, _, _, info = env.step('<tool_call>{"name": "calc", "arguments": {}}</tool_call>')
    assert obs.startswith("Invalid tool call: no tool named 'calc'") and info["invalid_action"]
    obs, reward, terminated, _, info = env.step(env.expert_action())
    assert (obs, reward, terminated, info["won"]) == ("Correct!", 1.0, True, True)
    env.close()


def test_remote_and_in_process_toolboxes_agree(server_url: str) -> None:
    remote, local = Toolbox([CALCULATOR], url=server_url), Toolbox([CALCULATOR])
    for expression in ("(7 + 5) // 5 * 5", "10 / 4", "1 / 0", "9 ** 9"):
        assert remote.call("calculator", {"expression": expression}) == local.call(
            "calculator", {"expression": expression}
        )
    remote.close()


def test_unreachable_server_retries_then_fails_clearly() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    client = ToolClient(url, retries=2, backoff_s=0.01, timeout_s=2)
    with pytest.raises(ToolServerError, match=f"cannot reach tool server at {url} after 3 tries"):
        client.call("calculator", {"expression": "1"})
    client.close()


def test_env_with_an_unreachable_tool_server_records_an_env_error() -> None:
    env = CalculatorEnv(tool_url=f"http://127.0.0.1:{free_port()}")
    trajectory = run_episode(env, "turngym/Calculator-v0", "expert", seed=0, task_id=0)
    assert trajectory.stop_reason is StopReason.ENV_ERROR
    assert "ToolServerError: cannot reach tool server" in trajectory.turns[-1].info["error"]
