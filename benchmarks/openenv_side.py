"""The OpenEnv half of the interop tests and of ``server_load.py``: run inside the venv that holds the
real ``openenv`` package (``.ci/setup.d/openenv.sh``), never imported by turngym.

Usage (with that venv's python)::

    python benchmarks/openenv_side.py serve-echo PORT        # OpenEnv's own server, an echo env
    python benchmarks/openenv_side.py play URL < actions.json  # OpenEnv's client plays; JSON lines out
    python benchmarks/openenv_side.py load URL SESSIONS STEPS  # OpenEnv's client under load; JSON out

The echo env answers a step with the message it got, so the load client can check every reply.
"""

from __future__ import annotations

import asyncio
import json
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


async def load(url: str, sessions: int, steps: int) -> dict[str, Any]:
    """``sessions`` concurrent OpenEnv clients, ``steps`` steps each; every reply checked."""
    latencies: list[float] = []
    bad = 0

    async def one(i: int) -> None:
        nonlocal bad
        client = GenericEnvClient(base_url=url, message_timeout_s=120.0)
        await client.connect()
        await client.reset(seed=i)
        for t in range(steps):
            message = f"s{i}-t{t}"
            start = time.perf_counter()
            result = await client.step({"message": message})
            latencies.append(time.perf_counter() - start)
            bad += result.observation.get("echoed") != message or result.observation.get("turn") != t + 1
        await client.close()

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(sessions)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {"steps": len(latencies), "bad_replies": bad, "elapsed_s": elapsed,
            "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)]}  # fmt: skip


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "serve-echo":
        serve_echo(int(args[0]))
    elif command == "play":
        spec = json.load(sys.stdin)
        play(args[0], spec["actions"], spec["seed"], spec["task_id"])
    elif command == "load":
        print(json.dumps(asyncio.run(load(args[0], int(args[1]), int(args[2])))))
    else:
        raise SystemExit(f"unknown command {command!r}: serve-echo, play or load")
