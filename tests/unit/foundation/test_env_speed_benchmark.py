"""``benchmarks/env_speed.py`` runs end to end on a filtered, tiny configuration and writes its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[3] / "benchmarks" / "env_speed.py"


def test_env_speed_writes_table_and_json(tmp_path: Path) -> None:
    out = tmp_path / "env_speed.json"
    args = ["--envs", "turngym/Maze-v0,*Calc*", "--episodes", "3", "--repeats", "2", "--out", str(out)]
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "| env | agent | steps/s (median) | success |" in result.stdout
    data = json.loads(out.read_text(encoding="utf-8"))
    assert (data["episodes"], data["repeats"], data["budget_s"]) == (3, 2, 10.0)
    pairs = [(r["env_id"], r["agent"]) for r in data["rows"]]
    assert pairs == [
        ("turngym/Calculator-v0", "expert"),
        ("turngym/Calculator-v0", "random"),
        ("turngym/Maze-v0", "expert"),
        ("turngym/Maze-v0", "random"),
    ]
    for row in data["rows"]:
        assert len(row["steps_per_s_runs"]) == 2 and row["steps_per_s"] > 0
        assert row["episodes"] == 3
    experts = [r for r in data["rows"] if r["agent"] == "expert"]
    assert all(r["success_rate"] == 1.0 and r["invalid_rate"] == 0.0 for r in experts)
    assert data["rows"][0]["mean_turns"] == 2.0  # the calculator expert: one call, one answer


def test_env_speed_rejects_a_filter_that_matches_nothing(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--envs", "nope/*", "--out", str(tmp_path / "x.json")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "--envs 'nope/*' matches none of the registered ids" in result.stderr
    assert not (tmp_path / "x.json").exists()


def test_env_speed_time_budget_cuts_runs_short(tmp_path: Path) -> None:
    out = tmp_path / "env_speed.json"
    args = ["--envs", "turngym/Maze-v0", "--agents", "random", "--episodes", "1000", "--repeats", "1"]
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--budget-s", "0.05", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(out.read_text(encoding="utf-8"))["rows"]
    assert 1 <= row["episodes"] < 1000
