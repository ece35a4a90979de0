"""RL itself, not only the SFT warm start, raises held-out success (hf:tiny, GRPO, default batch).

The warm start is deliberately weak (30 SFT steps: held-out success about 0.64 on Maze 2x2), so
there is room above it. Twenty GRPO iterations at the default 8 groups x 8 rollouts must raise
held-out success on 200 episodes by a clear margin, and every iteration must have given some
rollout a non-zero advantage (groups that sample diversely).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from turngym.trainers.config_load import load_config
from turngym.trainers.loop import train

pytestmark = pytest.mark.slow

MARGIN = 0.05
"""Required gain in held-out success; the gain measured at seed 0 is recorded in the docs."""


def test_grpo_raises_held_out_success_above_the_sft_warm_start(tmp_path: Path) -> None:
    config = load_config(
        None,
        [
            f"output_dir={tmp_path / 'run'}",
            "credit.estimator=grpo",
            "iterations=20",
            "eval.every=20",
            "progress=false",
            "tensorboard=false",
        ],
    )
    report = train(config).report
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    iterations = [r for r in rows if r["iteration"] >= 1]
    assert len(iterations) == 20
    assert all(r["rollout/episodes"] == 64.0 for r in iterations)
    assert all(r["credit/zero_adv_fraction"] < 0.9 for r in iterations)
    warm, final = report["warm_start"]["success_rate"], report["final"]["success_rate"]
    assert final - warm >= MARGIN, (warm, final)
