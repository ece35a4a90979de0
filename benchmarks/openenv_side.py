"""The OpenEnv half of the interop tests and of ``server_load.py``: run inside the venv that holds the
real ``openenv`` package (``.ci/setup.d/openenv.sh``), never imported by turngym.

Usage (with that venv's python)::

    python benchmarks/openenv_side.py serve-echo PORT        # OpenEnv's own server, an echo env
    python benchmarks/openenv_side.py play URL < actions.json  # OpenEnv's client plays; JSON lines out
    python benchmarks/openenv_side.py load URL SESSIONS STEPS SERVER_PID  # OpenEnv's client under load
    python benchmarks/openenv_side.py http URL < episodes.json  # OpenEnv's HTTP shapes and validator

The echo env answers a step with the message it got, so the load client can check every reply.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

from openenv.core.env_server import Action, Environment, Observation, State, create_app
from openenv.core.generic_client import GenericEnvClient


class EchoAction(Action):
    message: str


class EchoObservation(Observation):
    echoed: str = ""
    turn: int = 0


class EchoEnvironment(Environment):
    """Echoes each message with the turn number; never ends."""

    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(self) -> None:
        super().__init__()
        self._state = State(episode_id=None, step_count=0)

    def reset(self, seed: int | None = None, episode_id: str | None = None, **_: Any) -> EchoObservation:
        self._state = State(episode_id=episode_id, step_count=0)
        return EchoObservation(echoed="", turn=0, done=False, reward=0.0)

    def step(self, action: EchoAction, timeout_s: float | None = None, **_: Any) -> EchoObservation:
        self._state.step_count += 1
        reward = 1.0 if action.message == "win" else 0.0
        return EchoObservation(echoed=action.message, turn=self._state.step_count,
                               done=action.message == "win", reward=reward)  # fmt: skip

    @property
    def state(self) -> State:
        return self._state


def serve_echo(port: int) -> None:
    import uvicorn

    app = create_app(EchoEnvironment, EchoAction, EchoObservation, max_concurrent_envs=4096)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def play(url: str, actions: list[str], seed: int, task_id: int) -> None:
    """One episode through OpenEnv's client; prints each result as a JSON line."""
    with GenericEnvClient(base_url=url).sync() as env:
        result = env.reset(seed=seed, task_id=task_id)
        print(json.dumps({"observation": result.observation, "reward": result.reward, "done": result.done}))
        for action in actions:
            result = env.step({"action": action})
            print(
                json.dumps({"observation": result.observation, "reward": result.reward, "done": result.done})
            )
            if result.done:
                break


def http(url: str, episodes: list[dict[str, Any]]) -> None:
    """OpenEnv's stateless HTTP path: for each episode ``{"seed", "task_id", "action"}`` a ``POST
    /reset`` and a one-step ``POST /step``, bodies built and replies parsed by OpenEnv's own request
    and response models (which forbid unknown reply fields); then ``GET /state``, ``GET /metadata`` and
    ``openenv validate``'s runtime checks. Prints one JSON object."""
    import httpx
    from openenv.cli._validation import validate_running_environment
    from openenv.core.env_server.types import (
        EnvironmentMetadata,
        ResetRequest,
        ResetResponse,
        StepRequest,
        StepResponse,
    )

    results = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for e in episodes:
            reset = ResetRequest(seed=e["seed"], episode_id=f"ep-{e['seed']}", task_id=e["task_id"])
            first = client.post("/reset", json=reset.model_dump(exclude_unset=True))
            step = StepRequest(
                action={"action": e["action"]}, seed=e["seed"], task_id=e["task_id"], timeout_s=30
            )
            after = client.post("/step", json=step.model_dump(exclude_unset=True))
            first_reply = ResetResponse.model_validate(first.raise_for_status().json())
            step_reply = StepResponse.model_validate(after.raise_for_status().json())
            results.append({"reset": first_reply.model_dump(), "step": step_reply.model_dump()})
        state = State.model_validate(client.get("/state").raise_for_status().json()).model_dump()
        metadata = EnvironmentMetadata.model_validate(client.get("/metadata").raise_for_status().json())
    report = validate_running_environment(url)
    criteria = {c["id"]: c["passed"] for c in report["criteria"]}
    print(json.dumps({"results": results, "state": state, "metadata": metadata.model_dump(),
                      "mode": report["mode"], "criteria": criteria}))  # fmt: skip


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(url: str, sessions: int, steps: int, server_pid: int) -> dict[str, Any]:
    """``sessions`` concurrent OpenEnv clients, ``steps`` steps each; every reply checked. Connecting
    and resetting come first and are not timed; then all sessions step at once."""
    latencies: list[float] = []
    bad = 0
    gate = asyncio.Semaphore(64)

    async def opened(i: int) -> GenericEnvClient:
        async with gate:
            client = GenericEnvClient(base_url=url, message_timeout_s=120.0)
            await client.connect()
            await client.reset(seed=i)
            return client

    async def play(i: int, client: GenericEnvClient) -> None:
        nonlocal bad
        for t in range(steps):
            message = f"s{i}-t{t}"
            start = time.perf_counter()
            result = await client.step({"message": message})
            latencies.append(time.perf_counter() - start)
            bad += result.observation.get("echoed") != message or result.observation.get("turn") != t + 1

    clients = await asyncio.gather(*(opened(i) for i in range(sessions)))
    start, cpu, server_cpu = time.perf_counter(), time.process_time(), process_cpu_s(server_pid)
    await asyncio.gather(*(play(i, c) for i, c in enumerate(clients)))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    server_cpu = process_cpu_s(server_pid) - server_cpu
    await asyncio.gather(*(c.close() for c in clients))
    latencies.sort()
    n = len(latencies)
    return {"steps": n, "bad_replies": bad, "elapsed_s": elapsed, "p50_ms": 1000 * latencies[n // 2],
            "p99_ms": 1000 * latencies[int(n * 0.99)], "client_cpu_ms_per_step": 1000 * cpu / n,
            "server_cpu_ms_per_step": 1000 * server_cpu / n}  # fmt: skip


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "serve-echo":
        serve_echo(int(args[0]))
    elif command == "play":
        spec = json.load(sys.stdin)
        play(args[0], spec["actions"], spec["seed"], spec["task_id"])
    elif command == "http":
        http(args[0], json.load(sys.stdin))
    elif command == "load":
        print(json.dumps(asyncio.run(load(args[0], int(args[1]), int(args[2]), int(args[3])))))
    else:
        raise SystemExit(f"unknown command {command!r}: serve-echo, play, http or load")
