"""``turngym view``: what it says when it starts, where it binds, and its one-line errors."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from turngym.cli import app, main


def test_view_indexes_then_serves_on_localhost(
    run_dir: Path, eval_jsonl: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr("turngym.cli.view.uvicorn.run", lambda served, **kw: calls.append(kw))
    result = CliRunner().invoke(app, ["view", str(run_dir), "--port", "8311"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "indexed 8 trajectories in 2 file(s)" in result.output
    assert "open http://127.0.0.1:8311/" in result.output
    assert calls == [{"host": "127.0.0.1", "port": 8311, "log_level": "warning"}]
    result = CliRunner().invoke(app, ["view", str(eval_jsonl)], env={"COLUMNS": "200"})
    assert "2 malformed line(s), listed at /api/problems" in " ".join(result.output.split())


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("missing", "does not exist; give a run directory"),
        ("empty", "holds no rollouts/ and no .jsonl files"),
    ],
)
def test_view_of_nothing_is_a_one_line_error(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    target: str,
    message: str,
) -> None:
    (tmp_path / "empty").mkdir()
    monkeypatch.setattr(sys, "argv", ["turngym", "view", str(tmp_path / target)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in " ".join(err.split()) and "Traceback" not in err
