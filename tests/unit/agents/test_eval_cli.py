"""``turngym eval`` with model agents: hf:tiny through the loop, groups, and one-line errors."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import gymnasium
import pytest
from typer.testing import CliRunner

import turngym
from tests.servers import free_port
from turngym.agents.tiny import TINY_VERSION
from turngym.cli import app, main
from turngym.envs import StepOutcome, TextEnv
from turngym.trainers.config_load import load_config
from turngym.trainers.rundir import write_env_record
from turngym.trajectory import read_jsonl


@pytest.fixture
def cache(tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / f"tiny-{TINY_VERSION}").symlink_to(tiny_dir)  # the session's build, found via the cache
    monkeypatch.setenv("TURNGYM_CACHE", str(tmp_path))
    return tmp_path


def _row(output: str, env_id: str = "turngym/Maze-v0") -> list[str]:
    row = next(line for line in output.splitlines() if env_id in line)
    return [c.strip() for c in row.strip("│ ").split("│")]


def test_eval_hf_tiny_groups_and_writes_token_trajectories(cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs.jsonl"
    args = ["eval", "turngym/Maze-v0", "--agent", "hf:tiny", "--episodes", "4", "--group-size", "2"]
    args += ["--max-new-tokens", "4", "-o", "max_turns=2", "--seed", "3", "--out", str(out)]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, (result.output, result.exception)
    cells = _row(result.output)
    assert cells[:3] == ["turngym/Maze-v0", "hf:tiny", "4"]
    assert cells[7] == "2.0"  # two turns each
    assert float(cells[10]) > 0  # tokens per second
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
        (["--agent", "hf:./no-such-model"], "error: hf:./no-such-model is not a model directory"),
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


class FlakyEnv(TextEnv):
    """A one-step env whose step raises for odd task ids (or always, with ``broken=True``)."""

    def __init__(self, broken: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.broken = broken

    @property
    def num_tasks(self) -> int:
        return 100

    def _reset(self, task_id: Any) -> str:
        self._task = int(task_id)
        return "say win"

    def _step(self, action: str) -> StepOutcome:
        if self.broken or self._task % 2:
            raise RuntimeError("the database is down")
        return StepOutcome("you won", reward=1.0, terminated=True, won=True)

    def expert_action(self) -> str:
        return "win"


@pytest.fixture(scope="module", autouse=True)
def flaky_env() -> None:
    if "tests/Flaky-v0" not in gymnasium.registry:
        turngym.register("tests/Flaky-v0", f"{__name__}:FlakyEnv")


def test_infrastructure_failures_are_shown_apart_from_task_failures() -> None:
    args = ["eval", "tests/Flaky-v0", "--episodes", "4"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "250"})
    assert result.exit_code == 0, (result.output, result.exception)
    header = next(line for line in result.output.splitlines() if "episodes" in line and "env" in line)
    assert "infra errors" in header
    cells = _row(result.output, "tests/Flaky-v0")
    # 2 episodes ran to an end and both were won; the 2 env errors are not task failures
    assert cells[2:6] == ["2", "1.000", "[0.342, 1.000]", "2 env_error"]
    assert "2 of 4 episodes ended in an infrastructure failure (env_error: 2)" in " ".join(
        result.output.split()
    )


def test_when_every_episode_fails_for_an_infrastructure_reason_eval_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["eval", "tests/Flaky-v0", "-o", "broken=true", "--episodes", "3"]
    code = _run_main(args, monkeypatch)
    out = capsys.readouterr()
    assert code != 0
    assert out.err.count("\n") == 1 and "Traceback" not in out.err
    assert out.err.startswith("error: all 3 episodes failed for an infrastructure reason (env_error: 3)")
    assert "RuntimeError: the database is down" in out.err
    assert "success" not in out.out  # no table that looks like a 0% result


def test_an_unreachable_openai_endpoint_fails_eval_with_the_cause(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("turngym.agents.openai.time.sleep", lambda s: None)  # skip the backoff waits
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    args = ["eval", "turngym/Maze-v0", "--agent", f"openai:{url}", "--episodes", "20", "--concurrency", "4"]
    code = _run_main(args, monkeypatch)
    err = capsys.readouterr().err
    assert code != 0
    assert err.count("\n") == 1, err
    # it stops after the first batch of 4 instead of failing 20 episodes one batch after another
    assert err.startswith("error: all 4 episodes failed for an infrastructure reason (policy_error: 4)")
    assert "stopped after the first 4 of 20" in err
    assert f"{url}/chat/completions failed 5 times in " in err and "ConnectError" in err


def test_the_confidence_interval_has_the_training_format(cache: Path) -> None:
    result = CliRunner().invoke(app, ["eval", "turngym/Maze-v0", "--episodes", "10"], env={"COLUMNS": "250"})
    cells = _row(result.output, "turngym/Maze-v0")
    assert cells[3:5] == ["1.000", "[0.722, 1.000]"]


def test_a_trained_model_is_evaluated_with_its_training_env_settings(
    cache: Path, tiny_dir: Path, tmp_path: Path
) -> None:
    final = tmp_path / "run" / "final"
    shutil.copytree(tiny_dir, final)
    cfg = load_config(None, ["env.kwargs={size: 3, max_turns: 2}", "rollout.max_new_tokens=3"])
    write_env_record(final, cfg)
    out = tmp_path / "runs" / "final.jsonl"
    args = ["eval", "--agent", f"hf:{final}", "--episodes", "2", "--out", str(out)]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "250"})
    assert result.exit_code == 0, (result.output, result.exception)
    note = " ".join(result.output.split())
    assert "the training settings recorded in" in note
    assert "turngym/Maze-v0 -o size=3 -o max_turns=2 -o split=test --max-new-tokens 3" in note
    trajs = read_jsonl(out)
    assert {t.env_id for t in trajs} == {"turngym/Maze-v0"}
    assert all(len(t.turns) <= 2 for t in trajs)
    assert all(len(turn.action_ids) <= 3 for t in trajs for turn in t.turns)
    held_out = turngym.make("turngym/Maze-v0", size=3, max_turns=2, split="test")
    first, _ = held_out.reset(seed=trajs[0].seed, options={"task_id": trajs[0].task_id})
    assert trajs[0].turns[0].observation == first


def test_the_recorded_settings_give_way_to_the_command_line(
    cache: Path, tiny_dir: Path, tmp_path: Path
) -> None:
    final = tmp_path / "final"
    shutil.copytree(tiny_dir, final)
    write_env_record(final, load_config(None, ["env.kwargs={size: 3, max_turns: 2}"]))
    out = tmp_path / "t.jsonl"
    args = ["eval", "--agent", f"hf:{final}", "--episodes", "1", "-o", "max_turns=1", "--out", str(out)]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "250"})
    assert result.exit_code == 0, (result.output, result.exception)
    assert [len(t.turns) for t in read_jsonl(out)] == [1]


def test_an_env_id_is_needed_for_a_model_without_a_record(
    cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _run_main(["eval", "--agent", "hf:tiny"], monkeypatch)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "give the environment to evaluate on, e.g. turngym eval turngym/Maze-v0 --agent hf:tiny" in err


def _run_main(args: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sys, "argv", ["turngym", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    return int(exited.value.code or 0)
