"""The ``turngym`` command: envs, check, play (driven through stdin), eval, and one-line errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from turngym.cli import app, main
from turngym.trajectory import StopReason, read_jsonl

WIDE = {"COLUMNS": "200"}


def invoke(args: list[str], stdin: str | None = None) -> str:
    result = CliRunner().invoke(app, args, input=stdin, env=WIDE)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def run_main(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    """Run the console-script entry point in-process; returns (exit code, stderr)."""
    monkeypatch.setattr(sys, "argv", ["turngym", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    return int(exited.value.code or 0), capsys.readouterr().err


def test_envs_lists_ids_and_descriptions() -> None:
    output = invoke(["envs"])
    assert "turngym environments" in output
    assert "turngym/Maze-v0" in output and "Find the treasure in a maze of named rooms" in output
    assert "turngym/Calculator-v0" in output


def test_check_reports_ok() -> None:
    assert "ok turngym/Maze-v0 keeps the environment contract" in invoke(["check", "turngym/Maze-v0"])


def test_play_a_won_game_through_stdin() -> None:
    # Task 0: the expert path is east, south, east, north. Numbers pick admissible actions.
    output = invoke(["play", "turngym/Maze-v0", "--task", "0"], stdin="1\ngo south\n3\n1\n")
    lines = output.splitlines()
    assert lines[0].startswith("You are exploring a maze of rooms")  # the system prompt
    assert lines[1] == "task 0  (type :quit to stop)"
    assert lines[2] == "You are in the study. Exits: east. The treasure is 2 rooms east."
    assert lines[3] == "[1] go east"
    assert "> You are in the pantry. Exits: north, south, west. The treasure is 1 room east." in lines
    assert "[1] go north  [2] go west  [3] go east" in lines
    assert "> You are in the cellar. You found the treasure!  (reward 1)" in lines
    assert lines[-1] == "episode over: won; return 1"


def test_play_shows_invalid_actions_and_quits() -> None:
    output = invoke(["play", "turngym/Maze-v0", "--task", "0"], stdin="fly\n7\n:quit\n")
    assert "> I don't understand 'fly'; say 'go <direction>'." in output
    assert "> there is no action 7: choose a number from 1 to 1" in output  # not sent to the env
    assert output.splitlines()[-1] == "stopped; return 0"


def test_play_stops_at_end_of_input() -> None:
    output = invoke(["play", "turngym/Maze-v0", "--seed", "3"], stdin="")
    assert output.splitlines()[-1] == "stopped; return 0"


def test_play_reports_running_out_of_turns() -> None:
    output = invoke(["play", "turngym/Maze-v0", "--task", "0", "-o", "max_turns=2"], stdin="x\ny\n")
    assert output.splitlines()[-1] == "episode over: out of turns; return 0"


def test_play_free_form_env() -> None:
    call = '{"name": "calculator", "arguments": {"expression": "560 + 4 * 18 + 7 * 82"}}'
    stdin = f"<tool_call>{call}</tool_call>\n"
    output = invoke(["play", "turngym/Calculator-v0", "--task", "0"], stdin=stdin + "<answer>1206</answer>\n")
    assert "> Result: 1206" in output
    assert "> Correct!  (reward 1)" in output
    assert output.splitlines()[-1] == "episode over: won; return 1"


def test_eval_prints_the_summary_and_writes_jsonl(tmp_path: Path) -> None:
    out = tmp_path / "runs.jsonl"
    output = invoke(["eval", "turngym/Maze-v0", "--episodes", "5", "--out", str(out)])
    row = next(line for line in output.splitlines() if "turngym/Maze-v0" in line)
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    assert cells[:6] == ["turngym/Maze-v0", "expert", "5", "1.000", "[0.566, 1.000]", "0"]
    assert cells[8] == "0.00"  # no invalid actions
    trajectories = read_jsonl(out)
    assert [t.task_id for t in trajectories] == [0, 1, 2, 3, 4]
    assert all(t.won and t.stop_reason is StopReason.WON for t in trajectories)
    assert f"trajectories written to {out}" in output.replace("\n", "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["play", "turngym/Mze-v0"],
            "error: no environment registered as 'turngym/Mze-v0'. Did you mean 'turngym/Maze-v0'",
        ),
        (["check", "turngym/Maze-v0", "-o", "size"], "error: option 'size' must look like KEY=VALUE"),
        (
            ["eval", "turngym/Maze-v0", "-o", "size=9"],
            "error: cannot build turngym/Maze-v0 with options {'size': 9}: size must be between 2 and 5",
        ),
        (
            ["eval", "turngym/Maze-v0", "-o", "colour=red"],
            "error: turngym/Maze-v0 takes no argument 'colour'; it takes: max_obs_chars, max_turns,",
        ),
        (["eval", "turngym/Maze-v0", "--agent", "gpt"], "error: unknown agent 'gpt'; choose one of expert"),
        (
            ["play", "turngym/Maze-v0", "--task", "-3"],
            "error: cannot start task -3 of turngym/Maze-v0: task_id must be a non-negative integer, got -3",
        ),
    ],
)
def test_errors_are_one_line_with_exit_code_2(
    args: list[str], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_main(args, monkeypatch, capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err
    assert message in err


def test_eval_creates_the_output_directory(tmp_path: Path) -> None:
    out = tmp_path / "new" / "dir" / "runs.jsonl"
    invoke(["eval", "turngym/Maze-v0", "--episodes", "2", "--out", str(out)])
    assert len(read_jsonl(out)) == 2


def test_eval_into_an_unwritable_path_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a_file").write_text("not a directory")
    out = tmp_path / "a_file" / "runs.jsonl"
    args = ["eval", "turngym/Maze-v0", "--episodes", "1", "--out", str(out)]
    code, err = run_main(args, monkeypatch, capsys)
    assert code == 2
    assert err.count("\n") == 1, err
    assert f"error: cannot write trajectories to {out}: " in err
    assert err.endswith("choose a writable --out path\n")


def test_usage_errors_come_from_click_with_exit_code_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_main(["eval", "turngym/Maze-v0", "--episodes", "0"], monkeypatch, capsys)
    assert code == 2
    assert "Invalid value for '--episodes'" in err and "Traceback" not in err


def test_load_tools_from_builtin_names_and_module_attributes() -> None:
    from turngym.cli.serve import load_tools
    from turngym.envs.toy.calculator import CALCULATOR

    assert load_tools("calculator") == [CALCULATOR]
    assert load_tools("turngym.envs.toy.calculator:CALCULATOR") == [CALCULATOR]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("python_exec", "unknown tool 'python_exec': give a built-in name \\(calculator"),
        ("no_such_module_xyz:TOOLS", "cannot load tools from 'no_such_module_xyz:TOOLS'"),
        ("turngym.envs.toy.calculator:NOPE", "cannot load tools from 'turngym.envs.toy.calculator:NOPE'"),
        ("turngym.envs.toy.calculator:calculator", "is not a turngym Tool or a list of Tools"),
    ],
)
def test_load_tools_errors(target: str, message: str) -> None:
    from turngym.cli.serve import load_tools
    from turngym.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        load_tools(target)
