"""``turngym serve env``: loopback by default, a token (or a loud opt-out) for any other bind."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from turngym.cli import app
from turngym.errors import ConfigError


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, dict[str, Any]]]:
    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr("turngym.cli.serve.uvicorn.run", lambda app, **kw: calls.append((app, kw)))
    return calls


def test_binding_beyond_loopback_without_a_token_is_refused(served: list) -> None:
    result = CliRunner().invoke(app, ["serve", "env", "turngym/Maze-v0", "--host", "0.0.0.0"])
    assert isinstance(result.exception, ConfigError) and served == []
    assert "--token" in str(result.exception) and "--insecure-no-token" in str(result.exception)


def test_the_opt_out_is_loud_and_serves_without_tokens(served: list) -> None:
    args = ["serve", "env", "turngym/Maze-v0", "--host", "0.0.0.0", "--insecure-no-token"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "WITHOUT AUTHENTICATION" in result.output
    assert served[0][0].state.service.tokens == ()


def test_a_token_from_the_environment_guards_the_server(served: list) -> None:
    args = [
        "serve",
        "env",
        "turngym/Maze-v0",
        "--host",
        "0.0.0.0",
        "--max-sessions",
        "3",
        "--session-ttl",
        "5",
    ]
    result = CliRunner().invoke(app, args, env={"TURNGYM_ENV_TOKEN": "s3cret"})
    assert result.exit_code == 0, result.output
    service = served[0][0].state.service
    assert service.tokens == ("s3cret",)
    assert (service.limits.max_sessions, service.limits.session_ttl_s) == (3, 5.0)
