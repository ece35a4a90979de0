"""The per-iteration rollouts file: advantages, step groups and SALT edges on the estimators' worked
examples, the records' round trip, and when an iteration writes one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from turngym.errors import ConfigError
from turngym.trainers import advantages as credit
from turngym.trainers.config import TrainConfig
from turngym.trainers.config_load import load_config
from turngym.trainers.rollout import rollout_metrics
from turngym.trainers.rollout_log import (
    MAX_MEMBERS,
    TokenText,
    branch_point,
    read_rollouts,
    rollout_records,
    rollouts_due,
    rollouts_path,
    write_rollouts,
)
from turngym.trainers.rundir import config_differences
from turngym.trajectory import StopReason, Trajectory, Turn


def traj(
    anchors: Sequence[str], rewards: Sequence[float], actions: Sequence[str] | None = None
) -> Trajectory:
    actions = actions or ["go"] * len(anchors)
    turns = tuple(
        Turn(
            f"at {a}",
            act,
            r,
            a,
            {"invalid_action": False},
            prompt_ids=(1, 2, 3),
            action_ids=(7, 8),
            action_logprobs=(-0.5, -1.0),
        )
        for a, r, act in zip(anchors, rewards, actions, strict=True)
    )
    won = sum(rewards) > 0
    stop = StopReason.WON if won else StopReason.LOST
    return Trajectory(
        "turngym/Maze-v0", 3, 11, turns, stop, won=won, metadata={"group": "3:11", "policy_version": 4}
    )


# GiGPO's worked example (gigpo.py docstring): γ = 0.5, ω = 1
GIGPO_GROUP = [traj(["s0", "s1"], [0, 1]), traj(["s0", "s0", "s1"], [0, 0, 1]), traj(["s0", "s2"], [0, 0])]


def test_records_carry_gigpo_advantages_and_anchor_step_groups() -> None:
    groups = [GIGPO_GROUP]
    adv = credit.compute("gigpo", groups, gamma=0.5)
    records = rollout_records(groups, groups, adv, iteration=7, estimator="gigpo", params={"gamma": 0.5})
    got = [[round(t["info"]["credit"]["advantage"], 4) for t in r["turns"]] for r in records]
    assert got == [[0.5208, 0.3333], [0.2708, 0.5208, 0.3333], [-0.9792, -0.6667]]
    s0 = {"size": 4, "members": [[0, 0], [1, 0], [1, 1], [2, 0]]}
    s1 = {"size": 2, "members": [[0, 1], [1, 2]]}
    s2 = {"size": 1, "members": [[2, 1]]}
    sizes = [[t["info"]["credit"]["step_group"] for t in r["turns"]] for r in records]
    groups_seen = [[{"size": g["size"], "members": g["members"]} for g in row] for row in sizes]
    assert groups_seen == [[s0, s1], [s0, s0, s1], [s0, s2]]
    ids = {t["info"]["credit"]["step_group"]["id"] for r in records for t in r["turns"]}
    assert len(ids) == 3
    assert all("salt_edge" not in t["info"]["credit"] for r in records for t in r["turns"])
    meta = records[1]["metadata"]
    assert (meta["iteration"], meta["group_index"], meta["member"], meta["line"]) == (7, 0, 1, 1)
    assert meta["estimator"] == "gigpo" and meta["policy_version"] == 4 and meta["branch"] is None


def test_salt_records_its_edges_with_the_trajectories_that_share_them() -> None:
    # SALT's worked example (salt.py docstring): host GRPO without std, R = [1, 1, 0, 0]
    group = [
        traj(["s0", "s1", "s2"], [0, 0, 1], ["a", "b", "d"]),
        traj(["s0", "s1", "s2"], [0, 0, 1], ["a", "b", "d"]),
        traj(["s0", "s1", "s2"], [0, 0, 0], ["a", "b", "e"]),
        traj(["s0", "s1"], [0, 0], ["a", "c"]),
    ]
    params = {"normalize_std": False}
    adv = credit.compute("salt", [group], **params)
    records = rollout_records([group], [group], adv, iteration=1, estimator="salt", params=params)
    got = [[round(t["info"]["credit"]["advantage"], 4) for t in r["turns"]] for r in records]
    assert got == [[0.0, 0.1667, 0.5], [0.0, 0.1667, 0.5], [0.0, 0.1667, -0.5], [0.0, -0.5]]
    edges = [[t["info"]["credit"]["salt_edge"] for t in r["turns"]] for r in records]
    assert edges[0][0]["members"] == [[0, 0], [1, 0], [2, 0], [3, 0]]
    assert edges[2][1]["members"] == [[0, 1], [1, 1], [2, 1]] and edges[2][1]["size"] == 3
    assert edges[3][1]["members"] == [[3, 1]]
    assert edges[0][2]["members"] == [[0, 2], [1, 2]] and edges[0][2]["next"] == 0  # into the end node
    assert edges[0][0]["next"] == edges[0][1]["node"] + 1  # s0 -a-> s1
    assert edges[0][1]["id"] != edges[3][1]["id"]  # (s1, b) and (s1, c) differ


def test_shaped_rewards_are_kept_beside_the_env_rewards_and_prompt_tokens_are_left_out() -> None:
    raw = [GIGPO_GROUP]
    shaped = [
        [replace(t, turns=tuple(replace(u, reward=u.reward - 0.1) for u in t.turns)) for t in GIGPO_GROUP]
    ]
    adv = credit.compute("grpo", shaped)
    (first, *_) = rollout_records(raw, shaped, adv, iteration=1, estimator="grpo", params={})
    assert [t["reward"] for t in first["turns"]] == [0, 1]
    assert [round(t["info"]["credit"]["reward"], 6) for t in first["turns"]] == [-0.1, 0.9]
    assert all("prompt_ids" not in t for t in first["turns"])
    back = Trajectory.from_dict(first)
    assert back.turns[0].prompt_ids == () and back.turns[0].action_ids == (7, 8)
    assert back.turns[1].action_logprobs == (-0.5, -1.0)
    assert back.won and back.stop_reason is StopReason.WON


class CountingTokenizer:
    def __init__(self) -> None:
        self.asked: list[list[list[int]]] = []

    def batch_decode(self, rows: list[list[int]]) -> list[str]:
        self.asked.append(rows)
        return [f"<{row[0]}>" for row in rows]


def test_token_text_decodes_each_id_once() -> None:
    tok = CountingTokenizer()
    text = TokenText(tok)
    assert text([7, 8, 7]) == ["<7>", "<8>", "<7>"]
    assert text([8, 9]) == ["<8>", "<9>"]
    assert tok.asked == [[[7], [8]], [[9]]]
    groups = [GIGPO_GROUP]
    adv = credit.compute("grpo", groups)
    records = rollout_records(groups, groups, adv, iteration=1, estimator="grpo", params={}, token_text=text)
    assert records[0]["turns"][0]["info"]["token_text"] == ["<7>", "<8>"]


def test_a_big_step_group_lists_a_bounded_number_of_members() -> None:
    group = [traj(["s0"] * 30, [0.0] * 30) for _ in range(3)]
    adv = credit.compute("grpo", [group])
    records = rollout_records([group], [group], adv, iteration=1, estimator="grpo", params={})
    entry = records[0]["turns"][0]["info"]["credit"]["step_group"]
    assert entry["size"] == 90 and len(entry["members"]) == MAX_MEMBERS


def test_branch_points_are_read_from_the_metadata_where_present() -> None:
    assert branch_point({}) is None
    root = {"arpo": {"id": 0, "parent": None, "branch_turn": None, "kind": "initial"}}
    assert branch_point(root) is None
    copy = {"arpo": {"id": 3, "parent": 0, "branch_turn": 2, "kind": "branch"}}
    assert branch_point(copy) == {"parent": 0, "point": 2}


@pytest.mark.parametrize(("every", "due"), [(0, []), (1, [1, 2, 3, 4, 5, 6]), (3, [3, 6])])
def test_rollouts_due_every_n_iterations(every: int, due: list[int]) -> None:
    assert [i for i in range(1, 7) if rollouts_due(every, i)] == due


def test_write_rollouts_writes_a_gzip_file_atomically(tmp_path: Path) -> None:
    groups = [GIGPO_GROUP, GIGPO_GROUP[:2]]
    adv = credit.compute("gigpo", groups)
    seconds = write_rollouts(tmp_path, 12, groups, groups, adv, estimator="gigpo", params={})
    path = rollouts_path(tmp_path, 12)
    assert path == tmp_path / "rollouts" / "iter_0012.jsonl.gz" and seconds >= 0
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    records = read_rollouts(path)
    assert [(r["metadata"]["group_index"], r["metadata"]["member"]) for r in records] == [
        (0, 0),
        (0, 1),
        (0, 2),
        (1, 0),
        (1, 1),
    ]
    members = records[3]["turns"][0]["info"]["credit"]["step_group"]["members"]
    assert members == [[3, 0], [4, 0], [4, 1]]  # lines of this file; groups never mix


def test_rollouts_every_is_checked_and_may_change_on_resume() -> None:
    with pytest.raises(ConfigError, match="rollouts_every=-1 must be >= 0"):
        load_config(None, ["rollouts_every=-1"])
    assert TrainConfig().rollouts_every == 1
    assert TrainConfig(rollouts_every=0).digest() == TrainConfig().digest()
    recorded = TrainConfig().to_dict()
    del recorded["rollouts_every"]  # a run recorded before the setting existed
    assert config_differences(recorded, TrainConfig(rollouts_every=5).to_dict()) == []


def test_rollout_metrics_estimate_entropy_from_logprobs_and_count_tool_calls() -> None:
    calls = [
        replace(t, metadata={**t.metadata, "metrics": {"tool_calls": n}})
        for t, n in zip(GIGPO_GROUP, (1, 2, 6), strict=True)
    ]
    m = rollout_metrics([calls], [calls])
    assert m["rollout/token_nll"] == pytest.approx(0.75)  # −(−0.5 − 1.0) / 2 per token
    assert m["rollout/env_tool_calls"] == pytest.approx(3.0)
