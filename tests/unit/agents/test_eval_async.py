"""``turngym eval`` runs every agent on the asynchronous engine: ``--concurrency`` episodes overlap."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import gymnasium
import pytest
from typer.testing import CliRunner

import turngym
from turngym.agents.tiny import TINY_VERSION
from turngym.cli import app
from turngym.envs import StepOutcome, TextEnv


class OverlapEnv(TextEnv):
    """A two-step env whose step sleeps 50 ms and records how many steps ran at the same moment."""

    lock: ClassVar[threading.Lock] = threading.Lock()
    running: ClassVar[int] = 0
    peak: ClassVar[int] = 0

    @property
    def num_tasks(self) -> int:
        return 100

    def _reset(self, task_id: Any) -> str:
        self._left = 2
        return "say go"

    def _step(self, action: str) -> StepOutcome:
        cls = type(self)
        with cls.lock:
            cls.running += 1
            cls.peak = max(cls.peak, cls.running)
        time.sleep(0.05)
        with cls.lock:
            cls.running -= 1
        self._left -= 1
        return StepOutcome("again" if self._left else "done", reward=1.0, terminated=not self._left, won=True)

    def expert_action(self) -> str:
        return "go"

    def random_action(self, rng: Any) -> str:
        return "go"


@pytest.fixture(scope="module", autouse=True)
def overlap_env() -> None:
    if "tests/Overlap-v0" not in gymnasium.registry:
        turngym.register("tests/Overlap-v0", f"{__name__}:OverlapEnv")


@pytest.fixture
def cache(tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / f"tiny-{TINY_VERSION}").symlink_to(tiny_dir)
    monkeypatch.setenv("TURNGYM_CACHE", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("agent", ["expert", "random", "hf:tiny"])
def test_eval_runs_concurrency_episodes_at_once_for_every_agent(cache: Path, agent: str) -> None:
    OverlapEnv.peak = 0
    args = ["eval", "tests/Overlap-v0", "--agent", agent, "--episodes", "12", "--concurrency", "4"]
    result = CliRunner().invoke(app, [*args, "--max-new-tokens", "3"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, (result.output, result.exception)
    row = next(line for line in result.output.splitlines() if "tests/Overlap-v0" in line)
    assert [c.strip() for c in row.strip("│ ").split("│")][2] == "12"
    assert OverlapEnv.peak == 4  # the steps of four episodes overlapped, never more
