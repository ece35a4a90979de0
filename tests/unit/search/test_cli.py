"""``turngym serve retriever``: index built on first start, loaded later; bad paths are errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from turngym.cli import app
from turngym.cli import retriever as retriever_cli
from turngym.envs.search.kb import generate_kb
from turngym.errors import ConfigError


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[tuple[FastAPI, dict[str, Any]]]:
    calls: list[tuple[FastAPI, dict[str, Any]]] = []
    monkeypatch.setattr(retriever_cli.uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    return calls


def test_generate_kb_build_then_load_and_serve(
    tmp_path: Path, served: list[tuple[FastAPI, dict[str, Any]]]
) -> None:
    corpus, index = tmp_path / "kb.jsonl", tmp_path / "index"
    args = [
        "serve",
        "retriever",
        "--corpus",
        str(corpus),
        "--index",
        str(index),
        "--port",
        "8123",
        "--topk",
        "2",
    ]
    result = CliRunner().invoke(app, [*args, "--generate-kb"])
    assert result.exit_code == 0, result.output
    assert len(corpus.read_text().splitlines()) == len(generate_kb().passages)
    assert (index / "turngym_index.json").is_file()
    result = CliRunner().invoke(app, args)  # second start: loads the saved index
    assert result.exit_code == 0, result.output
    assert [kw for _, kw in served] == [{"host": "127.0.0.1", "port": 8123, "log_level": "info"}] * 2
    with TestClient(served[1][0]) as http:
        title = generate_kb().passages[0].title
        body = http.post("/retrieve", json={"queries": [title]}).json()
        assert (
            len(body["result"][0]) == 2 and body["result"][0][0]["title"] == title
        )  # --topk 2 is the default


def test_missing_corpus_is_a_config_error(
    tmp_path: Path, served: list[tuple[FastAPI, dict[str, Any]]]
) -> None:
    args = ["serve", "retriever", "--corpus", str(tmp_path / "none.jsonl"), "--index", str(tmp_path / "i")]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, ConfigError) and "does not exist" in str(result.exception)
    assert served == []
