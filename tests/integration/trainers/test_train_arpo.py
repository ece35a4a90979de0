"""``turngym train -c examples/train_calculator_arpo.yaml --set iterations=2`` end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

ROOT = Path(__file__).resolve().parents[3]


def _train(out: Path, *settings: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from turngym.cli import main; main()", "train"]
    command += ["-c", str(ROOT / "examples/train_calculator_arpo.yaml"), "--set", "iterations=2"]
    command += ["--set", f"output_dir={out}", "--set", "progress=false"]
    for setting in settings:
        command += ["--set", setting]
    return subprocess.run(command, capture_output=True, text=True, timeout=1200, cwd=ROOT)


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
