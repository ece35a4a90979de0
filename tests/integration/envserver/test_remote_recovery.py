"""RemoteEnv / AsyncRemoteEnv against real uvicorn servers: recovery, retries, state on failure.

The tests marked "regression" fail on the RemoteEnv before this change (issue 15's known bugs).
"""

from __future__ import annotations

import asyncio
import random

import pytest

import turngym
from tests.server_envs import ScriptedEnv, twisted_env
from tests.servers import free_port, running
from turngym.envs.remote import RemoteEnv
from turngym.envs.remote_async import AsyncRemoteEnv
from turngym.envs.remote_pool import RemoteEnvPool
from turngym.envs.remote_session import ReplayMismatch, RetryPolicy
from turngym.envs.server import create_env_app
from turngym.errors import EnvError, ResetNeeded

pytestmark = pytest.mark.integration


def maze_app(**kwargs: object):
    return create_env_app("turngym/Maze-v0", lambda: turngym.make("turngym/Maze-v0"), **kwargs)  # type: ignore[arg-type]


def expert_episode(seed: int, task: int) -> tuple[str, list[str], list[tuple]]:
    local = turngym.make("turngym/Maze-v0")
    obs, _ = local.reset(seed=seed, options={"task_id": task})
    actions, steps = [], []
    while True:
        actions.append(local.expert_action())
        steps.append(local.step(actions[-1])[:4])
        if steps[-1][2] or steps[-1][3]:
            assert len(actions) >= 3, "pick a task whose expert needs a few steps"
            return obs, actions, steps


@pytest.mark.parametrize("transport", ["http", "ws", "mux"])
def test_regression_session_survives_a_server_restart(transport: str) -> None:
    obs, actions, steps = expert_episode(2, 3)
    port = free_port()
    with running(maze_app(), port=port) as url:
        env = RemoteEnv(url, transport=transport, retries=20)
        assert env.reset(seed=2, options={"task_id": 3})[0] == obs
        assert env.step(actions[0])[:4] == steps[0]
    with running(maze_app(), port=port):  # a new process would lose every session the same way
        for action, expected in zip(actions[1:], steps[1:], strict=True):
            assert env.step(action)[:4] == expected
        assert env.recoveries == 1
        env.close()


def test_regression_reaped_session_is_recreated_and_replayed() -> None:
    _, actions, steps = expert_episode(5, 3)
    with running(maze_app(session_ttl_s=0.2, reap_interval_s=0.05)) as url:
        env = RemoteEnv(url)
        env.reset(seed=5, options={"task_id": 3})
        env.step(actions[0])
        asyncio.run(asyncio.sleep(0.5))
        assert env.step(actions[1])[:4] == steps[1]
        assert env.recoveries == 1
        env.close()


def test_replay_of_a_non_deterministic_env_is_refused_loudly() -> None:
    app = create_env_app("test/Scripted-v0", twisted_env)
    with running(app) as url:
        env = RemoteEnv(url)
        env.reset(seed=0, options={"task_id": 1})
        env.step("a")
        app.state.service.sessions.clear()
        with pytest.raises(ReplayMismatch, match="different observation at turn 0"):
            env.step("b")
        env.close()


def test_regression_close_never_raises_for_a_dead_server() -> None:
    with running(maze_app()) as url:
        env = RemoteEnv(url, retries=1)
        env.reset(seed=0)
    env.close()  # the server is gone
    env.close()


def test_regression_failed_step_keeps_the_turn_counter() -> None:
    with running(create_env_app("test/Scripted-v0", ScriptedEnv)) as url:
        env = RemoteEnv(url)
        env.reset(seed=0, options={"task_id": 1})
        env.step("a")
        with pytest.raises(EnvError, match="500"):
            env.step("boom")
        obs, _, _, _, info = env.step("b")
        assert obs == "2: b" and info["metrics"]["turns"] == 2.0
        env.close()


def test_regression_failed_reset_leaves_the_env_needing_a_reset() -> None:
    with running(create_env_app("test/Scripted-v0", ScriptedEnv)) as url:
        env = RemoteEnv(url)
        env.reset(seed=0, options={"task_id": 1})
        env.step("a")
        with pytest.raises(EnvError, match="422"):
            env.reset(seed=0, options={"task_id": 99})
        with pytest.raises(ResetNeeded):
            env.step("b")
        env.close()


def test_full_server_is_retried_then_a_clear_error() -> None:
    with running(maze_app(max_sessions=1)) as url:
        first = RemoteEnv(url)
        with pytest.raises(EnvError, match=r"429.*gave up after 3 tries"):
            RemoteEnv(url, retries=2, backoff_s=0.01)
        first.close()
        RemoteEnv(url, retries=0).close()


def test_tokens_from_the_client() -> None:
    with running(maze_app(tokens=("alpha",))) as url:
        with pytest.raises(EnvError, match="401"):
            RemoteEnv(url)
        for transport in ("http", "ws", "mux"):
            env = RemoteEnv(url, token="alpha", transport=transport)  # type: ignore[arg-type]
            env.reset(seed=0)
            env.close()


@pytest.mark.parametrize("transport", ["http", "ws", "mux"])
def test_async_remote_env_plays_like_the_local_env(transport: str) -> None:
    obs, actions, steps = expert_episode(7, 4)

    async def play() -> None:
        with running(maze_app()) as url:
            async with await AsyncRemoteEnv.open(url, transport=transport) as env:  # type: ignore[arg-type]
                with pytest.raises(ResetNeeded):
                    await env.step("go north")
                assert (await env.reset(seed=7, options={"task_id": 4}))[0] == obs
                for action, expected in zip(actions, steps, strict=True):
                    assert (await env.step(action))[:4] == expected
                assert env.done and env.turns == len(actions)
                with pytest.raises(ResetNeeded):
                    await env.step("go north")

    asyncio.run(play())


def test_pool_spreads_sessions_and_skips_a_dead_server() -> None:
    with running(maze_app()) as a, running(maze_app()) as b:
        pool = RemoteEnvPool([a, "http://127.0.0.1:9", b], retries=0)
        envs = [pool.make() for _ in range(4)]
        assert pool.placed == {a: 2, b: 2}
        for env in envs:
            env.close()


def test_retry_delay_is_equal_jitter_within_its_bounds() -> None:
    policy, rng = RetryPolicy(backoff_s=0.05, backoff_cap_s=2.0), random.Random(0)
    # attempt 3: d = min(2, 0.05 * 2^2) = 0.2, so the sleep lies in [0.1, 0.2]
    assert all(0.1 <= policy.delay(3, rng) <= 0.2 for _ in range(100))
    # attempt 10: d = min(2, 0.05 * 2^9 = 25.6) = 2, so [1, 2]
    assert all(1.0 <= policy.delay(10, rng) <= 2.0 for _ in range(100))


def test_mux_late_reply_answers_no_later_call() -> None:
    """A mux call past its deadline fails; its late reply, dropped by number, never answers the next
    call (the socket is shared, so it is not closed to get rid of it)."""

    async def play(url: str) -> None:
        slow = await AsyncRemoteEnv.open(url, transport="mux", timeout_s=0.5, recover=False)
        other = await AsyncRemoteEnv.open(url, transport="mux", timeout_s=5)
        await slow.reset(seed=0, options={"task_id": 1})
        await other.reset(seed=0, options={"task_id": 2})
        with pytest.raises(EnvError, match=r"no reply within 0\.5 s"):
            await slow.step("sleep 1")
        await asyncio.sleep(0.8)  # the late reply has arrived by now
        assert (await other.step("x"))[0] == "1: x"
        await slow.close()
        await other.close()

    with running(create_env_app("test/Scripted-v0", ScriptedEnv)) as url:
        asyncio.run(play(url))
