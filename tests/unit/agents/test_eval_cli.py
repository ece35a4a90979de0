"""``turngym eval`` with model agents: hf:tiny through the loop, groups, and one-line errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from turngym.agents.tiny import TINY_VERSION
from turngym.cli import app, main
from turngym.trajectory import read_jsonl


@pytest.fixture
def cache(tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / f"tiny-{TINY_VERSION}").symlink_to(tiny_dir)  # the session's build, found via the cache
    monkeypatch.setenv("TURNGYM_CACHE", str(tmp_path))
    return tmp_path


def _row(output: str) -> list[str]:
    row = next(line for line in output.splitlines() if "turngym/Maze-v0" in line)
    return [c.strip() for c in row.strip("│ ").split("│")]


def test_eval_hf_tiny_groups_and_writes_token_trajectories(cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs.jsonl"
    args = ["eval", "turngym/Maze-v0", "--agent", "hf:tiny", "--episodes", "4", "--group-size", "2"]
    args += ["--max-new-tokens", "4", "-o", "max_turns=2", "--seed", "3", "--out", str(out)]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, (result.output, result.exception)
    cells = _row(result.output)
    assert cells[:3] == ["turngym/Maze-v0", "hf:tiny", "4"]
    assert cells[6] == "2.0"  # two turns each
    assert float(cells[9]) > 0  # tokens per second
    trajs = read_jsonl(out)
    assert [(t.task_id, t.seed) for t in trajs] == [(0, 3), (0, 3), (1, 4), (1, 4)]
    assert all(len(turn.action_ids) == len(turn.action_logprobs) > 0 for t in trajs for turn in t.turns)
    assert trajs[0].turns[0].observation == trajs[1].turns[0].observation  # same task, same seed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--agent", "gpt"], "error: unknown agent 'gpt'; choose one of expert, random, hf:tiny, hf:PATH"),
        (
            ["--agent", "hf:/no/such/model"],
            "error: hf:/no/such/model is not a model directory (no config.json)",
        ),
        (
            ["--episodes", "5", "--group-size", "2"],
            "must be a multiple of --group-size (2); e.g. --episodes 4",
        ),
        (["--agent", "hf:tiny", "--context", "window:x"], "context must be 'full' or 'window:k'"),
        (["--agent", "openai:localhost:1"], "openai base URL must start with http://"),
    ],
)
def test_bad_agents_and_options_are_one_line_errors(
    args: list[str],
    message: str,
    cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(sys, "argv", ["turngym", "eval", "turngym/Maze-v0", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert message in err


def test_eval_cycles_tasks_when_asked_for_more_episodes_than_the_env_has(tmp_path: Path) -> None:
    out = tmp_path / "runs.jsonl"
    args = ["eval", "turngym/Maze-v0", "--episodes", "5", "-o", "tasks=2", "--out", str(out)]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, (result.output, result.exception)
    trajs = read_jsonl(out)
    assert [(t.task_id, t.seed) for t in trajs] == [(0, 0), (1, 1), (0, 2), (1, 3), (0, 4)]
    assert all(t.won for t in trajs)
