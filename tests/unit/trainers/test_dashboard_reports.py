"""Dashboards from metrics rows, the markdown reports of ``turngym train`` and ``turngym eval``."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from turngym.cli import app
from turngym.reports import markdown_table, write_train_report
from turngym.trainers.dashboard import CHARTS, get_chart, has_data, render_chart, write_dashboards

PNG = b"\x89PNG\r\n\x1a\n"

ROWS = [
    {
        "iteration": 0,
        "eval/success_rate": 0.25,
        "eval/ci_low": 0.1,
        "eval/ci_high": 0.5,
        "eval/episodes": 8.0,
    },
    {
        "iteration": 1,
        "rollout/success_rate": 0.5,
        "reward/mean_return": 0.4,
        "loss/clip_fraction": 0.01,
        "loss/approx_kl": 0.002,
        "credit/step_group_size_mean": 3.5,
        "credit/step_groups": 12.0,
        "credit/singleton_fraction": 0.25,
        "rollout/token_nll": 1.7,
    },
    {
        "iteration": 2,
        "rollout/success_rate": 0.75,
        "reward/mean_return": 0.7,
        "loss/clip_fraction": None,  # a non-finite value, as MetricsLog writes it
        "eval/success_rate": 0.625,
        "eval/ci_low": 0.3,
        "eval/ci_high": 0.86,
        "eval/episodes": 8.0,
    },
]


def test_every_chart_with_data_is_written_and_the_others_are_left_out(tmp_path: Path) -> None:
    written = write_dashboards(ROWS, tmp_path / "dashboard")
    names = [p.stem for p in written]
    assert names == [
        "success",
        "reward",
        "kl",
        "clip_fraction",
        "entropy",
        "step_groups",
        "singleton_fraction",
    ]
    assert "tool_calls" not in names  # no tools, no turns logged
    assert all(p.read_bytes()[:8] == PNG and p.stat().st_size > 5000 for p in written)
    assert not has_data([{"iteration": 1, "loss/clip_fraction": None}], get_chart("clip_fraction"))
    assert [c.name for c in CHARTS] == [
        "success",
        "reward",
        "kl",
        "clip_fraction",
        "entropy",
        "tool_calls",
        "step_groups",
        "singleton_fraction",
    ]


def test_a_chart_renders_for_a_run_that_has_only_begun() -> None:
    assert render_chart(ROWS[:1], get_chart("success"))[:8] == PNG


def test_markdown_tables_escape_pipes_and_newlines() -> None:
    table = markdown_table(["a", "b|c"], [[1, "x\ny"], ["", 2.5]])
    assert table.splitlines() == ["| a | b\\|c |", "|---|---|", "| 1 | x y |", "|   | 2.5 |"]


def test_the_train_report_has_the_evaluations_the_signals_and_the_dashboards(tmp_path: Path) -> None:
    pngs = write_dashboards(ROWS, tmp_path / "dashboard")
    report = {"estimator": "gigpo", "env_id": "turngym/Maze-v0"}
    text = write_train_report(tmp_path, report, ROWS, pngs).read_text()
    assert text.startswith("# gigpo on turngym/Maze-v0\n")
    assert "| 0 | 0.250 | [0.100, 0.500] | 8 | - | - |" in text
    assert "| 2 | 0.625 | [0.300, 0.860] | 8 | - | - |" in text
    header = next(line for line in text.splitlines() if line.startswith("| iteration | training success"))
    assert "clip fraction" in header and "turns" not in header  # only columns some row logged
    assert "| 2 | 0.75 | 0.700 |" in text and "| - |" in text  # a missing value is a dash
    assert "![success](dashboard/success.png)" in text and "![kl](dashboard/kl.png)" in text
    assert f"turngym view {tmp_path}" in text


def test_eval_writes_a_markdown_report_and_a_plot_beside_its_jsonl(tmp_path: Path) -> None:
    out = tmp_path / "expert.jsonl"
    args = ["eval", "turngym/Maze-v0", "--episodes", "4", "--group-size", "2", "--out", str(out)]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, (result.output, result.exception)
    text = (tmp_path / "expert.md").read_text()
    assert text.startswith("# expert on turngym/Maze-v0\n")
    assert "| turngym/Maze-v0 | expert | 4 | 1.000 | [0.510, 1.000] | 0 |" in text
    assert "| won | 4 | 1.000 |" in text  # outcomes by stop reason
    assert "| 0 | 2 | 2 |" in text and "| 1 | 2 | 2 |" in text  # tasks 0 and 1, two episodes each, both won
    assert "![outcomes](expert.png)" in text
    assert (tmp_path / "expert.png").read_bytes()[:8] == PNG
    assert "report to" in " ".join(result.output.split())
