"""WebShop served over HTTP keeps the contract and matches the local env step for step."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.servers import running
from turngym.envs.checker import check_env
from turngym.envs.remote import RemoteEnv
from turngym.envs.server import create_env_app
from turngym.envs.webshop.env import WebShopEnv

pytestmark = pytest.mark.integration


def test_remote_webshop_keeps_the_contract_and_matches_local(tmp_path: Path) -> None:
    def factory() -> WebShopEnv:
        return WebShopEnv(num_products=200, split="all", cache_dir=str(tmp_path))

    with running(create_env_app("turngym/WebShop-v0", factory)) as url:
        check_env(RemoteEnv(url), make_fresh=lambda: RemoteEnv(url))
        remote, local = RemoteEnv(url), factory()
        assert (
            remote.reset(seed=1, options={"task_id": 7})[0] == local.reset(seed=1, options={"task_id": 7})[0]
        )
        actions = ["click[nothing]"]
        while True:
            action = actions.pop() if actions else local.expert_action()
            expected, got = local.step(action), remote.step(action)
            assert got[:4] == expected[:4]
            assert got[4]["anchor"] == expected[4]["anchor"]
            assert got[4]["admissible_actions"] == expected[4]["admissible_actions"]
            if expected[2] or expected[3]:
                break
        assert expected[1] == 1.0 and got[4]["won"]
        assert got[4]["metrics"] == expected[4]["metrics"] and got[4]["metrics"]["reward/score"] == 1.0
