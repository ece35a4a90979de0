"""``turngym serve sandbox``: option errors are one-line messages, and the app it builds works."""

from __future__ import annotations

import sys

import pytest

from turngym.cli import main
from turngym.cli.sandbox import build_sandbox
from turngym.sandboxes import LocalSandbox


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "podman"], "--backend must be local or docker, got 'podman'"),
        (["--isolation", "chroot"], "--isolation must be auto, bwrap or process, got 'chroot'"),
    ],
)
def test_bad_options_are_one_line_errors(
    args: list[str], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["turngym", "serve", "sandbox", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_build_sandbox_makes_a_local_pool() -> None:
    sandbox = build_sandbox("local", "auto", 1, "unused")
    try:
        assert isinstance(sandbox, LocalSandbox)
        assert sandbox.status()["pool_size"] == 1
        assert sandbox.run("print('up')").stdout == "up\n"
    finally:
        sandbox.close()
