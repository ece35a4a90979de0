"""``turngym kernel eval|tasks|export``: JSON and table output, exit codes, one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import turngym.cli.kernel as kernel_cli
from turngym.cli import app, main
from turngym.envs.kernel.evaluate import EvalConfig, EvalResult
from turngym.envs.kernel.hacks import HackFinding


@pytest.fixture()
def candidate(tmp_path: Path) -> Path:
    path = tmp_path / "answer.py"
    path.write_text("class ModelNew:\n    pass\n")
    return path


@pytest.fixture()
def judged(monkeypatch: pytest.MonkeyPatch) -> list[EvalConfig]:
    configs: list[EvalConfig] = []

    def fake(reference: str, source: str, config: EvalConfig) -> EvalResult:
        configs.append(config)
        return EvalResult(
            "correct", compiled=True, correct=True, correctness_trials=(3, 3), speedup=2.0,
            hacks=(HackFinding("try_except", "a try/except block"),),
        )  # fmt: skip

    monkeypatch.setattr(kernel_cli, "evaluate", fake)
    return configs


def test_eval_json_has_the_named_fields_and_exits_0_for_a_hacked_answer(candidate: Path, judged) -> None:
    result = CliRunner().invoke(
        app, ["kernel", "eval", "1_ReLU", str(candidate), "--json", "--backend", "cpp"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["compiled"] and out["correct"] and out["speedup"] == 2.0
    assert out["hacks"] == [{"name": "try_except", "detail": "a try/except block"}]
    assert out["reward"] == -1.0 and out["category"] == "hacked"
    assert judged[0].backend == "cpp"


def test_eval_table(candidate: Path, judged) -> None:
    result = CliRunner().invoke(app, ["kernel", "eval", "1_ReLU", str(candidate)])
    assert result.exit_code == 0
    assert "speedup         2x" in result.output and "try_except: a try/except block" in result.output


def test_tasks_and_export(tmp_path: Path) -> None:
    listed = CliRunner().invoke(app, ["kernel", "tasks"])
    assert listed.exit_code == 0 and "11_Matmul" in listed.output and "cpp (2 stages)" in listed.output
    exported = CliRunner().invoke(app, ["kernel", "export", str(tmp_path)])
    assert exported.exit_code == 0
    assert (tmp_path / "level3" / "20_Attention.py").is_file()
    assert (tmp_path / "solutions" / "triton" / "8_Softmax.py").is_file()
    relisted = CliRunner().invoke(app, ["kernel", "tasks", "--dir", str(tmp_path)])
    assert "level2/12_LinearReLU" in relisted.output and "no reference solution" in relisted.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no_such_task.py", "x.py"], "error: task file no_such_task.py does not exist"),
        (["1_ReLU", "missing.py"], "error: candidate file missing.py does not exist"),
        (["1_ReLU", "README.md", "--backend", "fortran"], "error: backend must be one of cpp, triton, cuda"),
    ],
)
def test_bad_input_is_one_line(
    args: list[str], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(Path(__file__).parents[3])
    monkeypatch.setattr(sys, "argv", ["turngym", "kernel", "eval", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(message) and len(err.splitlines()) == 1
