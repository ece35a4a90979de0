"""Trajectories for the viewer's tests: a small run directory (two iterations of rollouts with their
credit, and metrics) built from hand-made episodes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from turngym.trainers import advantages as credit
from turngym.trainers.rollout_log import TokenText, write_rollouts
from turngym.trajectory import StopReason, Trajectory, Turn


def episode(
    anchors: Sequence[str],
    rewards: Sequence[float],
    *,
    task: int = 3,
    env: str = "turngym/Maze-v0",
    **meta: object,
) -> Trajectory:
    turns = tuple(
        Turn(
            f"You are in the {a}.",
            f"go {a}",
            r,
            a,
            {"invalid_action": a == "wall", "parse_error": a == "wall"},
            action_ids=(7, 8),
            action_logprobs=(-0.25, -2.0),
            action_entropies=(0.5, 1.5),
        )
        for a, r in zip(anchors, rewards, strict=True)
    )
    won = sum(rewards) > 0
    stop = StopReason.WON if won else StopReason.TRUNCATED
    return Trajectory(env, task, 11, turns, stop, won=won, metadata={"group": f"{task}:11", **meta})


class Tokens:
    def batch_decode(self, rows: list[list[int]]) -> list[str]:
        return [{7: "go", 8: " north"}.get(row[0], "?") for row in rows]


def build_run_dir(tmp_path: Path) -> Path:
    """iter_0001: two groups of 3 (GiGPO's worked example, and one with a parse failure);
    iter_0002: one group of 2 of another task, one of them an ARPO branch."""
    run = tmp_path / "run"
    first = [
        [
            episode(["s0", "s1"], [0, 1]),
            episode(["s0", "s0", "s1"], [0, 0, 1]),
            episode(["s0", "s2"], [0, 0]),
        ],
        [
            episode(["hall"], [1], task=5),
            episode(["wall", "hall"], [0, 0], task=5),
            episode(["hall"], [0], task=5),
        ],
    ]
    second = [
        [
            episode(["kitchen"], [1], task=9),
            episode(
                ["kitchen", "pantry"],
                [0, 0],
                task=9,
                arpo={"id": 1, "parent": 0, "branch_turn": 1, "kind": "branch"},
            ),
        ]
    ]
    for iteration, groups in ((1, first), (2, second)):
        adv = credit.compute("gigpo", groups, gamma=0.5)
        write_rollouts(
            run,
            iteration,
            groups,
            groups,
            adv,
            estimator="gigpo",
            params={"gamma": 0.5},
            token_text=TokenText(Tokens()),
        )
    rows = [
        {
            "iteration": 0,
            "eval/success_rate": 0.25,
            "eval/ci_low": 0.1,
            "eval/ci_high": 0.5,
            "eval/episodes": 8.0,
        },
        {
            "iteration": 1,
            "rollout/success_rate": 0.5,
            "reward/mean_return": 0.5,
            "credit/singleton_fraction": 0.2,
        },
        {
            "iteration": 2,
            "rollout/success_rate": 0.5,
            "reward/mean_return": 0.5,
            "credit/singleton_fraction": 0.1,
            "eval/success_rate": 0.5,
            "eval/ci_low": 0.3,
            "eval/ci_high": 0.7,
            "eval/episodes": 8.0,
        },
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run
