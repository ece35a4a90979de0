"""``turngym train`` option handling, run directories and resume (the training itself is covered by
the integration tests; these never get past the run's acceptance, so they take no training time)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from turngym.cli import app
from turngym.errors import ConfigError, TurngymError
from turngym.trainers.checkpoint import save_checkpoint
from turngym.trainers.config_load import load_config

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "train_maze_gigpo.yaml"
NEW_RUN = re.compile(r"runs/maze-(\w+)-\d{8}-\d{6}")


def test_print_config_applies_file_sets_and_output_dir(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("credit:\n  estimator: trloo\n")
    result = CliRunner().invoke(
        app, ["train", "-c", str(path), "--set", "rollout.group_size=4", "-o", "x/run", "--print-config"]
    )
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.stdout)
    assert printed["credit"]["estimator"] == "trloo"
    assert printed["rollout"]["group_size"] == 4
    assert printed["output_dir"] == "x/run"


def test_switching_the_estimator_drops_the_parameters_it_does_not_take():
    """The README's tour command: the example's GiGPO parameters do not all fit TRLOO."""
    args = ["train", "-c", str(EXAMPLE), "--set", "credit.estimator=trloo", "--print-config"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (result.output, result.exception)
    printed = yaml.safe_load(result.stdout)
    assert printed["credit"]["estimator"] == "trloo"
    assert printed["credit"]["params"] == {"gamma": 0.95}  # kept: TRLOO takes gamma
    assert "note: credit.estimator=trloo does not take mode, omega" in " ".join(result.stderr.split())


def test_parameters_set_on_the_command_line_are_never_dropped():
    args = [
        "train",
        "-c",
        str(EXAMPLE),
        "--set",
        "credit.estimator=trloo",
        "--set",
        "credit.params={omega: 1}",
    ]
    result = CliRunner().invoke(app, [*args, "--print-config"])
    assert isinstance(result.exception, ConfigError)
    assert "estimator 'trloo' takes parameters ['gamma'], not ['omega']" in str(result.exception)


def test_a_new_run_gets_a_directory_of_its_own_named_from_env_estimator_and_time():
    default = CliRunner().invoke(app, ["train", "--print-config"])
    switched = CliRunner().invoke(
        app, ["train", "-c", str(EXAMPLE), "--set", "credit.estimator=trloo", "--print-config"]
    )
    first = NEW_RUN.fullmatch(yaml.safe_load(default.stdout)["output_dir"])
    second = NEW_RUN.fullmatch(yaml.safe_load(switched.stdout)["output_dir"])
    assert first is not None and first.group(1) == "gigpo"
    assert second is not None and second.group(1) == "trloo"


def _finished_run(root: Path, iterations: int = 2, *, report: bool = True) -> Path:
    """A run directory as ``turngym train -o RUN --set iterations=2`` leaves it."""
    run = root / "run"
    cfg = load_config(None, [f"output_dir={run}", f"iterations={iterations}", "progress=false"])
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    model = torch.nn.Linear(2, 2)
    history = {"sft": {}, "evals": [], "resumed_at": []}
    save_checkpoint(
        run / "checkpoints",
        iterations,
        model=model,
        optimizer=torch.optim.AdamW(model.parameters()),
        scheduler=None,
        history=history,
        config_digest=cfg.digest(),
    )
    (run / "metrics.jsonl").write_text('{"iteration": 0}\n{"iteration": 1}\n{"iteration": 2}\n')
    if report:
        row = {"success_rate": 0.5, "ci_low": 0.2, "ci_high": 0.8, "episodes": 8.0}
        (run / "report.json").write_text(
            json.dumps(
                {
                    "env_id": "turngym/Maze-v0",
                    "estimator": "gigpo",
                    "iterations": iterations,
                    "warm_start": row,
                    "final": row,
                    "sft": {"sft/steps": 30.0},
                }
            )
        )
    return run


def _snapshot(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def test_a_directory_that_holds_a_run_is_not_reused_by_a_new_run(tmp_path):
    run = _finished_run(tmp_path)
    before = _snapshot(run)
    result = CliRunner().invoke(app, ["train", "-o", str(run), "--set", "credit.estimator=trloo"])
    assert isinstance(result.exception, TurngymError), result.output
    assert f"{run} already holds a run; continue it with `turngym train --resume {run}`" in str(
        result.exception
    )
    assert _snapshot(run) == before


def test_a_refused_resume_changes_nothing_and_names_what_differs(tmp_path):
    run = _finished_run(tmp_path, report=False)
    before = _snapshot(run)
    result = CliRunner().invoke(app, ["train", "--resume", str(run), "--set", "credit.estimator=trloo"])
    assert isinstance(result.exception, TurngymError), result.output
    assert "credit.estimator: gigpo -> trloo" in str(result.exception)
    assert _snapshot(run) == before


def test_resuming_a_finished_run_says_so_and_changes_nothing(tmp_path):
    run = _finished_run(tmp_path)
    before = _snapshot(run)
    result = CliRunner().invoke(app, ["train", "--resume", str(run)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, (result.output, result.exception)
    text = " ".join(result.output.split())
    assert f"{run} is finished (2 of 2 iterations); nothing was changed" in text
    assert f"turngym train --resume {run} --set iterations=4" in text
    assert "after 2 gigpo iterations" in text  # its result table, read from report.json
    assert _snapshot(run) == before


def test_resume_of_a_directory_without_a_run_is_an_error(tmp_path):
    result = CliRunner().invoke(app, ["train", "--resume", str(tmp_path / "nothing")])
    assert isinstance(result.exception, ConfigError)
    assert "holds no run to resume" in str(result.exception)
    assert not (tmp_path / "nothing").exists()


def test_bad_config_is_a_config_error():
    result = CliRunner().invoke(app, ["train", "--set", "optim.lr=-"])
    assert isinstance(result.exception, ConfigError)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("iterations=x", "iterations must be an int, got 'x'"),
        ("tensorboard=3", "tensorboard must be a bool, got 3"),
        ("optim.lr=fast", "optim.lr must be a float, got 'fast'"),
    ],
)
def test_type_errors_read_as_english(setting, message):
    result = CliRunner().invoke(app, ["train", "--set", setting, "--print-config"])
    assert isinstance(result.exception, ConfigError)
    assert str(result.exception) == message


def test_console_script_prints_one_line_instead_of_a_traceback():
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from turngym.cli import main; main()",
            "train",
            "--set",
            "rollout.grup_size=2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "did you mean 'group_size'" in done.stderr
    assert "Traceback" not in done.stderr


def test_nproc_is_checked_and_a_torchrun_rank_needs_a_named_run(tmp_path, monkeypatch):
    result = CliRunner().invoke(app, ["train", "--nproc", "0", "-o", str(tmp_path / "r")])
    assert isinstance(result.exception, ConfigError) and "--nproc must be >= 1" in str(result.exception)
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = CliRunner().invoke(app, ["train"])
    assert isinstance(result.exception, ConfigError) and "-o DIR" in str(result.exception)
    result = CliRunner().invoke(app, ["train", "--nproc", "2", "-o", str(tmp_path / "r")])
    assert isinstance(result.exception, ConfigError) and "under torchrun leave it out" in str(
        result.exception
    )


@pytest.mark.parametrize(
    "setting", ["model.lora.rank=4", "optim.fp32_master_weights=true", "model.model=vllm:tiny"]
)
def test_nproc_refuses_what_several_processes_cannot_train_before_torchrun_starts(
    tmp_path, monkeypatch, setting
):
    calls = []

    def execv(path, argv):
        calls.append(argv)
        raise SystemExit(0)  # the process would be torchrun from here on

    monkeypatch.setattr("turngym.cli.train.os.execv", execv)
    run = tmp_path / "r"
    result = CliRunner().invoke(app, ["train", "--nproc", "2", "-o", str(run), "--set", setting])
    assert isinstance(result.exception, ConfigError)
    message = str(result.exception)
    assert "without --nproc" in message or "several processes train hf: models only" in message
    assert calls == [] and not run.exists()


def test_nproc_execs_torchrun_with_the_resolved_run_directory(tmp_path, monkeypatch):
    calls = []

    def execv(path, argv):
        calls.append(argv)
        raise SystemExit(0)  # the process would be torchrun from here on

    monkeypatch.setattr("turngym.cli.train.os.execv", execv)
    monkeypatch.setattr("sys.argv", ["turngym", "train", "--nproc", "2", "--set", "iterations=3"])
    monkeypatch.chdir(tmp_path)
    CliRunner().invoke(app, ["train", "--nproc", "2", "--set", "iterations=3"])
    (argv,) = calls
    assert argv[1:5] == [*"-m torch.distributed.run --nproc-per-node 2".split()]
    assert argv[5:7] == ["--master-addr", "127.0.0.1"]
    tail = argv[argv.index("turngym.cli") + 1 :]
    assert tail[:3] == ["train", "--set", "iterations=3"] and tail[3] == "-o"
    assert NEW_RUN.search(tail[4]) and "--nproc" not in tail
    assert (tmp_path / "runs" / "latest").is_symlink()  # the new run is runs/latest, as with one process


def test_an_unknown_random_architecture_is_refused_before_anything_is_written(tmp_path):
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "-o", str(run), "--set", "model.model=hf:random:gpt-9"])
    assert isinstance(result.exception, ConfigError)
    assert str(result.exception).startswith(
        "hf:random:gpt-9 is not a known architecture; known: llama-3.2-1b"
    )
    assert not run.exists()


def test_sft_refuses_demos_that_never_start(tmp_path: Path) -> None:
    """A demo task range outside the env's tasks used to fine-tune on nothing and save the model."""
    result = CliRunner().invoke(
        app,
        ["sft", str(tmp_path / "out"), "--set", "env.env_id=turngym/Search-v0", "--set", "env.kwargs={}",
         "--set", "sft.demos=2", "--set", "sft.task_offset=100000"],
    )  # fmt: skip
    assert isinstance(result.exception, ConfigError)  # the console script prints it as one line
    assert "sft.task_offset" in str(result.exception) and "[0, 552)" in str(result.exception)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["train", "sft"])
def test_an_env_argument_the_env_does_not_take_is_refused_before_the_run_directory(
    tmp_path: Path, command: str
) -> None:
    """It used to surface as a TypeError traceback, after train had written its run directory."""
    out = tmp_path / "out"
    args = ["train", "-o", str(out)] if command == "train" else ["sft", str(out)]
    result = CliRunner().invoke(app, [*args, "--set", "env.kwargs.colour=red"])
    assert isinstance(result.exception, ConfigError)
    assert "turngym/Maze-v0 takes no argument 'colour'; it takes:" in str(result.exception)
    assert not out.exists()
