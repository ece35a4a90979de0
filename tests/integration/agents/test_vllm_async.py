"""vLLM's AsyncLLM under the asynchronous loop: the lock-step vLLM loop's tokens, episode by episode.

Runs ``vllm_async_script.py`` in the vLLM interpreter (see test_vllm.py); skips with the reason
when that interpreter is absent.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.agents.test_vllm import VLLM_PYTHON, vllm_env  # noqa: F401 (fixture)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SCRIPT = Path(__file__).with_name("vllm_async_script.py")


@pytest.fixture(scope="module")
def report(vllm_env: dict[str, str]) -> dict[str, Any]:  # noqa: F811 (the fixture above)
    from turngym.agents.tiny import ensure_tiny

    run = subprocess.run(
        [str(VLLM_PYTHON), str(SCRIPT), str(ensure_tiny())],
        capture_output=True, text=True, env=vllm_env, timeout=500,
    )  # fmt: skip
    lines = [line for line in run.stdout.splitlines() if line.startswith("VLLM_ASYNC ")]
    assert run.returncode == 0 and lines, f"failed:\n{run.stdout[-2000:]}\n{run.stderr[-4000:]}"
    return json.loads(lines[-1].removeprefix("VLLM_ASYNC "))


def test_async_engine_gives_the_lockstep_tokens(report: dict[str, Any]) -> None:
    assert report["same_tokens"] and report["rerun_same"]
    assert report["logprob_gap"] < 1e-4
    assert report["first_and_last_differ"]
    assert set(report["stops"]) <= {"won", "lost", "truncated"}
