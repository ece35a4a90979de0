"""Small CLI messages a new user meets: play's numbered choices, serve's addresses, the retriever's corpus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from turngym.cli import app
from turngym.errors import ConfigError


def test_play_says_when_a_numbered_choice_is_out_of_range() -> None:
    result = CliRunner().invoke(app, ["play", "turngym/Maze-v0", "--task", "0"], input="7\n1\n:quit\n")
    assert result.exit_code == 0, result.output
    assert "there is no action 7: choose a number from 1 to 1, or type an action" in result.output
    assert "I don't understand '7'" not in result.output  # it was not sent to the env as text
    assert "You are in the pantry" in result.output  # and the next, valid choice was played


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr("turngym.cli.serve.uvicorn.run", lambda app, **kw: calls.append(kw))
    monkeypatch.setattr("turngym.cli.retriever.uvicorn.run", lambda app, **kw: calls.append(kw))
    return calls


def test_serve_env_with_html_prints_the_browser_address(served: list[dict[str, Any]]) -> None:
    result = CliRunner().invoke(app, ["serve", "env", "turngym/Maze-v0", "--html", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert "browser view: http://127.0.0.1:8123/ui/" in result.output
    assert served == [
        {"host": "127.0.0.1", "port": 8123, "log_level": "info", "access_log": False, "ws_max_size": 4 << 20}
    ]


def test_serve_env_without_html_prints_no_browser_address(served: list[dict[str, Any]]) -> None:
    result = CliRunner().invoke(app, ["serve", "env", "turngym/Maze-v0"])
    assert result.exit_code == 0, result.output
    assert "/ui/" not in result.output


def test_a_missing_corpus_points_to_generate_kb(tmp_path: Path, served: list[dict[str, Any]]) -> None:
    args = ["serve", "retriever", "--corpus", str(tmp_path / "wiki.jsonl"), "--index", str(tmp_path / "idx")]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, ConfigError)
    assert "--generate-kb" in str(result.exception)
    assert not (tmp_path / "idx").exists() and served == []


def test_generate_kb_writes_the_corpus_and_serves_it(tmp_path: Path, served: list[dict[str, Any]]) -> None:
    corpus, index = tmp_path / "kb" / "corpus.jsonl", tmp_path / "kb" / "index"
    args = ["serve", "retriever", "--generate-kb", "--corpus", str(corpus), "--index", str(index)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (result.output, result.exception)
    assert corpus.stat().st_size > 0 and (index / "turngym_index.json").is_file()
    assert len(served) == 1
