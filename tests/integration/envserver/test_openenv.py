"""OpenEnv interop against the real PyPI ``openenv`` package, which lives in its own venv
(``.ci/setup.d/openenv.sh``; ``TURNGYM_OPENENV_VENV``, default /opt/turngym-openenv) and is driven
as a subprocess through ``benchmarks/openenv_side.py``."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import turngym
from tests.servers import free_port, running
from turngym.envs.openenv import OpenEnvEnv
from turngym.envs.server import create_env_app

pytestmark = pytest.mark.integration

VENV = Path(os.environ.get("TURNGYM_OPENENV_VENV", "/opt/turngym-openenv"))
PYTHON = VENV / "bin" / "python"
SIDE = Path(__file__).parents[3] / "benchmarks" / "openenv_side.py"

if not PYTHON.exists():
    pytest.skip(f"no openenv venv at {VENV}: run .ci/setup.d/openenv.sh", allow_module_level=True)


@pytest.fixture(scope="module")
def openenv_echo_url() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([str(PYTHON), str(SIDE), "serve-echo", str(port)], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("OpenEnv's echo server did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.kill()
        proc.wait()


def test_openenv_client_plays_a_turngym_env() -> None:
    local = turngym.make("turngym/Maze-v0")
    first, _ = local.reset(seed=3, options={"task_id": 5})
    actions, expected = [], []
    while True:
        actions.append(local.expert_action())
        obs, reward, terminated, truncated, _ = local.step(actions[-1])
        expected.append((obs, reward, terminated or truncated))
        if terminated or truncated:
            break
    app = create_env_app("turngym/Maze-v0", lambda: turngym.make("turngym/Maze-v0"))
    with running(app) as url:
        spec = json.dumps({"actions": actions, "seed": 3, "task_id": 5})
        out = subprocess.run([str(PYTHON), str(SIDE), "play", url], input=spec, capture_output=True,
                             text=True, timeout=120, check=True)  # fmt: skip
        assert app.state.service.sessions == {}  # the client's close ended its session
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert lines[0]["observation"]["text"] == first and lines[0]["done"] is False
    got = [(r["observation"]["text"], r["reward"], r["done"]) for r in lines[1:]]
    assert got == expected
    assert lines[-1]["observation"]["info"]["won"] is True


def test_openenv_server_is_a_turngym_env(openenv_echo_url: str) -> None:
    env = OpenEnvEnv(openenv_echo_url, action_field="message", text_field="echoed", max_turns=5)
    assert env.reset(seed=0)[0] == ""
    assert env.step("hello")[:4] == ("hello", 0.0, False, False)
    obs, reward, terminated, _, info = env.step("win")
    assert (obs, reward, terminated, info["won"]) == ("win", 1.0, True, True)
    env.close()
    wrong = OpenEnvEnv(openenv_echo_url, action_field="text")
    wrong.reset(seed=0)
    obs, _, terminated, _, info = wrong.step("hello")  # refused by the server's action schema
    assert info["invalid_action"] and not terminated and obs.startswith("Invalid action")
    wrong.close()


def test_openenv_http_shapes_and_validator_accept_a_turngym_server() -> None:
    episodes, expected = [], []
    for seed, task_id in ((3, 5), (8, 1)):
        local = turngym.make("turngym/Maze-v0")
        first, _ = local.reset(seed=seed, options={"task_id": task_id})
        action = local.expert_action()
        obs, reward, terminated, truncated, _ = local.step(action)
        local.close()
        episodes.append({"seed": seed, "task_id": task_id, "action": action})
        expected.append((first, obs, reward, terminated or truncated))
    app = create_env_app("turngym/Maze-v0", lambda: turngym.make("turngym/Maze-v0"))
    with running(app) as url:
        out = subprocess.run([str(PYTHON), str(SIDE), "http", url], input=json.dumps(episodes),
                             capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
        assert app.state.service.sessions == {}  # each HTTP call's env was closed, as in OpenEnv
    report = json.loads(out.stdout)
    got = [(r["reset"]["observation"]["text"], r["step"]["observation"]["text"], r["step"]["reward"],
            r["step"]["done"]) for r in report["results"]]  # fmt: skip
    assert got == expected
    assert all(r["reset"]["done"] is False and r["reset"]["reward"] is None for r in report["results"])
    assert report["state"] == {"episode_id": None, "step_count": 0}
    assert report["metadata"]["name"] == "turngym/Maze-v0"
    assert report["mode"] == "simulation"
    checks = (
        "openapi_version_available",
        "metadata_endpoint",
        "schema_endpoint",
        "mode_endpoint_consistency",
    )
    assert all(report["criteria"][c] for c in checks), report["criteria"]
