"""The FSDP2 learner: two gloo processes on CPU take the same step as one process.

Both run :func:`tests.integration.trainers.fsdp_case.run` on the same global batch: one process
unsharded, two through ``torchrun`` with the model sharded by ``fully_shard`` and the micro-batches
dealt to the ranks, with log-probs from the chunked head (through the root module's forward, so
FSDP2 gathers the tied output layer and reduces its gradient) and from the full logits. The loss
diagnostics and every updated weight agree to 1e-5.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.integration.trainers import fsdp_case

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def torchrun(nproc: int, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """``torchrun`` on 127.0.0.1 with ``nproc`` processes, bounded in time."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
        "--master-addr", "127.0.0.1", "--master-port", str(free_port()), *args,
    ]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("head", ["chunked", "plain"])
def test_two_gloo_ranks_take_the_same_step_as_one_process(tmp_path: Path, head: str) -> None:
    single = fsdp_case.model()
    expected = fsdp_case.run(single, head=head)
    result = torchrun(2, str(Path(fsdp_case.__file__)), str(tmp_path / "out.pt"), head)
    assert result.returncode == 0, result.stderr[-3000:]
    got = torch.load(tmp_path / "out.pt", weights_only=False)
    assert got["world"] == 2
    assert expected["loss/optimizer_steps"] == got["stats"]["loss/optimizer_steps"] == 4.0
    for key, value in expected.items():
        assert got["stats"][key] == pytest.approx(value, abs=1e-5, rel=1e-5), key
    weights = single.state_dict()
    assert set(got["state"]) == set(weights)
    moved = 0
    for name, tensor in weights.items():
        assert torch.allclose(got["state"][name], tensor, atol=1e-5, rtol=0), name
        moved += int(not torch.equal(tensor, fsdp_case.model().state_dict()[name]))
    assert moved == len(weights) - sum("rotary" in n for n in weights)  # the step moved every weight
