"""Fault test: SIGKILL the env server in the middle of 64 running episodes, restart it on the same
port, and every episode still completes with the trajectory of an uninterrupted local run."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

import turngym
from tests.servers import free_port
from turngym.envs.remote_async import AsyncRemoteEnv

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EPISODES = 64
MOVES = ["go north", "go south", "go east", "go west"]


def start_server(port: int) -> subprocess.Popen[bytes]:
    command = ["from turngym.cli import main; main()", "serve", "env", "turngym/Maze-v0",
               "--port", str(port), "--max-sessions", "256"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", *command], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"env server did not start on port {port}")


def actions_of(episode: int) -> list[str]:
    rng = np.random.default_rng(episode)
    return [MOVES[int(i)] for i in rng.integers(4, size=20)]


def local_trajectory(episode: int) -> list[tuple]:
    env = turngym.make("turngym/Maze-v0")
    trajectory: list[tuple] = [env.reset(seed=episode, options={"task_id": episode})[0]]
    for action in actions_of(episode):
        trajectory.append(env.step(action)[:4])
        if trajectory[-1][2] or trajectory[-1][3]:
            break
    return trajectory


async def remote_trajectory(url: str, episode: int, started: list[int]) -> tuple[list[tuple], int]:
    transport = ("http", "ws", "mux")[episode % 3]
    env = await AsyncRemoteEnv.open(url, transport=transport, retries=40, timeout_s=30)  # type: ignore[arg-type]
    trajectory: list[tuple] = [(await env.reset(seed=episode, options={"task_id": episode}))[0]]
    for action in actions_of(episode):
        await asyncio.sleep(0.05)
        trajectory.append((await env.step(action))[:4])
        if len(trajectory) == 2:
            started.append(episode)
        if trajectory[-1][2] or trajectory[-1][3]:
            break
    recoveries = env.recoveries
    await env.close()
    return trajectory, recoveries


def test_sigkill_and_restart_mid_episode_loses_nothing() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(port)

    async def run() -> list[tuple[list[tuple], int]]:
        started: list[int] = []
        episodes = asyncio.gather(*(remote_trajectory(url, i, started) for i in range(EPISODES)))
        while len(started) < EPISODES:  # every episode is under way
            await asyncio.sleep(0.01)
        os.kill(server.pid, signal.SIGKILL)
        server.wait()
        restarted.append(await asyncio.to_thread(start_server, port))
        return await episodes

    restarted: list[subprocess.Popen[bytes]] = []
    try:
        results = asyncio.run(run())
    finally:
        for proc in [server, *restarted]:
            proc.kill()
            proc.wait()
    for episode, (trajectory, _) in enumerate(results):
        assert trajectory == local_trajectory(episode), f"episode {episode} differs"
    unfinished_at_kill = sum(1 for _, recoveries in results if recoveries)
    assert unfinished_at_kill >= EPISODES // 2, "the kill should land in the middle of most episodes"
