"""``turngym train`` option handling (the training itself is covered by the integration tests)."""

from __future__ import annotations

import subprocess
import sys

import yaml
from typer.testing import CliRunner

from turngym.cli import app
from turngym.errors import ConfigError


def test_print_config_applies_file_sets_and_output_dir(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("credit:\n  estimator: trloo\n")
    result = CliRunner().invoke(
        app, ["train", "-c", str(path), "--set", "rollout.group_size=4", "-o", "x/run", "--print-config"]
    )
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.output)
    assert printed["credit"]["estimator"] == "trloo"
    assert printed["rollout"]["group_size"] == 4
    assert printed["output_dir"] == "x/run"


def test_bad_config_is_a_config_error():
    result = CliRunner().invoke(app, ["train", "--set", "optim.lr=-"])
    assert isinstance(result.exception, ConfigError)


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
