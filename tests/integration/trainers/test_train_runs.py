"""``turngym train`` end to end on a short job: stage announcements and progress lines without a
terminal, a directory per run, extending a finished run with ``--resume``, and evaluating the final
model on its training env with ``turngym eval``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from turngym.cli import app
from turngym.trainers.rollout_log import read_rollouts
from turngym.trajectory import read_jsonl

pytestmark = pytest.mark.integration

SHORT = [
    "iterations=2",
    "eval.every=1",
    "eval.episodes=8",
    "sft.demos=4",
    "sft.steps=2",
    "rollout.groups_per_iteration=2",
    "rollout.group_size=2",
    "rollout.max_new_tokens=5",
    "optim.mini_batch_rows=4",
    "optim.micro_batch_rows=4",
    "tensorboard=false",
    "env.kwargs={size: 2, max_turns: 3}",
]


def sets(settings: list[str]) -> list[str]:
    return [arg for s in settings for arg in ("--set", s)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    run = tmp_path_factory.mktemp("train") / "run"
    result = CliRunner().invoke(app, ["train", "-o", str(run), *sets(SHORT)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, (result.output, result.exception)
    return run, result.output


def test_every_stage_announces_itself_and_iterations_are_logged_without_a_terminal(
    trained: tuple[Path, str],
) -> None:
    run, output = trained
    stages = [
        "] building the policy hf:tiny on cpu",
        f"] run directory {run}",
        "] SFT warm start: 2 steps on 4 expert demos of turngym/Maze-v0",
        "] SFT: loss ",
        "] evaluating the warm start on 8 held-out episodes",
        "] warm start: held-out success ",
        "] RL: 2 gigpo iterations",
        "] iteration 1/2: training success ",
        "] iteration 2/2: training success ",
        "] writing report.json, plot.png and final/",
    ]
    positions = [output.find(stage) for stage in stages]
    assert all(p >= 0 for p in positions), [s for s, p in zip(stages, positions, strict=True) if p < 0]
    assert positions == sorted(positions)
    assert "held-out success" in output and "after 2 gigpo iterations" in output  # the result table
    assert f"turngym eval --agent hf:{run}/final --episodes 8" in " ".join(output.split())


def test_the_final_model_is_evaluated_on_its_training_env_by_default(
    trained: tuple[Path, str], tmp_path: Path
) -> None:
    run, _ = trained
    record = json.loads((run / "final" / "turngym.json").read_text())
    assert record["env_id"] == "turngym/Maze-v0"
    assert record["env_kwargs"] == {"size": 2, "max_turns": 3, "split": "test"}
    out = tmp_path / "final.jsonl"
    args = ["eval", "--agent", f"hf:{run}/final", "--episodes", "4", "--out", str(out)]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, (result.output, result.exception)
    trajs = read_jsonl(out)
    assert all(t.env_id == "turngym/Maze-v0" and len(t.turns) <= 3 for t in trajs)
    assert all(len(turn.action_ids) <= 5 for t in trajs for turn in t.turns)


def test_the_run_keeps_its_rollouts_dashboards_and_a_markdown_report(trained: tuple[Path, str]) -> None:
    run, output = trained
    records = read_rollouts(run / "rollouts" / "iter_0001.jsonl.gz")
    assert [(r["metadata"]["group_index"], r["metadata"]["member"]) for r in records] == [
        (0, 0), (0, 1), (1, 0), (1, 1)]  # fmt: skip
    assert all(
        r["metadata"]["iteration"] == 1 and isinstance(r["metadata"]["policy_version"], int) for r in records
    )
    turns = [t for r in records for t in r["turns"]]
    assert turns and all(isinstance(t["info"]["credit"]["advantage"], float) for t in turns)
    assert all(
        len(t["info"]["token_text"]) == len(t["action_ids"]) == len(t["action_logprobs"]) for t in turns
    )
    assert all(t["info"]["credit"]["step_group"]["size"] >= 1 for t in turns)
    assert (run / "rollouts" / "iter_0002.jsonl.gz").is_file()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(r["perf/rollouts_write_s"] >= 0 for r in rows if r["iteration"] > 0)
    charts = {p.name for p in (run / "dashboard").iterdir()}
    assert charts >= {
        "success.png",
        "reward.png",
        "kl.png",
        "clip_fraction.png",
        "entropy.png",
        "step_groups.png",
    }
    report = (run / "report.md").read_text()
    assert "## Held-out success" in report and "![success](dashboard/success.png)" in report
    assert f"turngym view {run}" in " ".join(output.split())


def test_resume_with_more_iterations_extends_a_finished_run(trained: tuple[Path, str]) -> None:
    run, _ = trained
    args = ["train", "--resume", str(run), "--set", "iterations=3"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, (result.output, result.exception)
    assert f"] resuming {run} after iteration 2 of 3" in result.output
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [0, 1, 2, 3]
    report = json.loads((run / "report.json").read_text())
    assert report["iterations"] == 3 and report["resumed_at"] == [2]
    assert yaml.safe_load((run / "config.yaml").read_text())["iterations"] == 3
