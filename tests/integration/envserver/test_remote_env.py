"""RemoteEnv against a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import pytest

import turngym
from tests.servers import running
from turngym.envs.checker import check_env
from turngym.envs.remote import RemoteEnv
from turngym.envs.server import create_env_app
from turngym.errors import EnvError, ResetNeeded

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("env_id", ["turngym/Maze-v0", "turngym/Calculator-v0"])
def test_remote_env_keeps_the_contract(env_id: str) -> None:
    app = create_env_app(env_id, lambda: turngym.make(env_id))
    with running(app) as url:
        check_env(RemoteEnv(url), make_fresh=lambda: RemoteEnv(url))


def test_remote_matches_local_step_for_step() -> None:
    app = create_env_app("turngym/Maze-v0", lambda: turngym.make("turngym/Maze-v0"))
    with running(app) as url:
        remote, local = RemoteEnv(url), turngym.make("turngym/Maze-v0")
        with pytest.raises(ResetNeeded):
            remote.step("go north")
        assert remote.reset(seed=3, options={"task_id": 11}) == local.reset(seed=3, options={"task_id": 11})
        while True:
            action = local.expert_action()
            expected = local.step(action)
            assert remote.step(action) == expected
            if expected[2] or expected[3]:
                break
        remote.close()
        remote.close()
        with pytest.raises(EnvError, match="closed"):
            remote._reset(0)


def test_unreachable_server_is_a_clear_error() -> None:
    with pytest.raises(EnvError, match="cannot reach env server"):
        RemoteEnv("http://127.0.0.1:9", retries=1)
