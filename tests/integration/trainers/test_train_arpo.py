"""``turngym train -c examples/train_calculator_arpo.yaml --set iterations=2`` end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

ROOT = Path(__file__).resolve().parents[3]


def _train(out: Path, *settings: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from turngym.cli import main; main()", "train"]
    command += ["-c", str(ROOT / "examples/train_calculator_arpo.yaml"), "--set", "iterations=2"]
    command += ["--set", f"output_dir={out}", "--set", "progress=false"]
    for setting in settings:
        command += ["--set", setting]
    return subprocess.run(command, capture_output=True, text=True, timeout=2300, cwd=ROOT)


def _iterations(out: Path) -> list[dict[str, float]]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [row for row in rows if row.get("iteration", 0) > 0]


def test_the_example_config_trains_two_iterations(tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = _train(out)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = _iterations(out)
    assert len(rows) == 2
    for row in rows:
        assert row["arpo/trajectories"] == row["arpo/trajectories_max"] == 8  # M, filled, never above
        assert row["rollout/episodes"] == 4 * 8
        assert "arpo/entropy_delta" in row and "rollout/tool_calls_per_trajectory" in row
        assert row["loss/optimizer_steps"] >= 1
    assert json.loads((out / "report.json").read_text())["iterations"] == 2


def test_hard_attribution_with_every_aepo_switch_trains(tmp_path: Path) -> None:
    out = tmp_path / "aepo"
    switches = [
        "rollout.arpo.attribution=hard",
        "rollout.arpo.dynamic_budget=true",
        "rollout.arpo.branch_penalty=0.5",
        "rollout.arpo.balanced_clipping=true",
        "rollout.arpo.balanced_clipping_tokens=high_entropy",
        "rollout.arpo.entropy_advantage=0.2",
    ]
    small = ["rollout.groups_per_iteration=2", "sft.steps=5", "sft.demos=8", "eval.episodes=8"]
    done = _train(out, *switches, *small)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = _iterations(out)
    assert [row["arpo/trajectories_max"] for row in rows] == [8, 8]
    assert all(row["loss/optimizer_steps"] >= 1 for row in rows)
