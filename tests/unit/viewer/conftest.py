"""A small run directory (two iterations of rollouts, metrics) and an eval JSONL with bad lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.viewer_data import build_run_dir, episode
from turngym.trajectory import write_jsonl


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return build_run_dir(tmp_path)


@pytest.fixture
def eval_jsonl(tmp_path: Path) -> Path:
    """Five lines: three trajectories, a torn JSON line (line 2) and a JSON line that is no trajectory (4)."""
    path = tmp_path / "eval.jsonl"
    write_jsonl(path, [episode(["a"], [1], task=0), episode(["b"], [0], task=1), episode(["c"], [0], task=2)])
    lines = path.read_text().splitlines()
    lines.insert(1, lines[1][:40])
    lines.insert(3, json.dumps({"hello": "world"}))
    path.write_text("\n".join(lines) + "\n\n")
    return path
