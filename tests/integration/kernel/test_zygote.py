"""The evaluation zygote end to end: reuse, containment of crashing children, restart, thread pools
after fork, and results equal to the fresh-process mode."""

from __future__ import annotations

import importlib.util
import os
import signal
import time

import pytest

from turngym.envs.kernel.cpp_library import CPP_PRELUDE
from turngym.envs.kernel.evaluate import EvalConfig, evaluate
from turngym.envs.kernel.tasks import builtin_tasks, find_task

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RELU = find_task(builtin_tasks(), "1_ReLU")
CPP = EvalConfig(backend="cpp", num_perf_trials=3, num_warmup=1)
TIMING = ("reference_ms", "kernel_ms", "speedup", "coverage", "wall_s", "extra")


def relu_candidate(forward: str) -> str:
    return (
        CPP_PRELUDE
        + "class ModelNew(nn.Module):\n    def __init__(self):\n        super().__init__()\n\n"
        + f"    def forward(self, x):\n{forward}\n"
    )


def zygote_threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def test_two_evaluations_in_a_row_reuse_the_zygote() -> None:
    first = evaluate(RELU.reference, RELU.solutions["cpp"][-1], CPP)
    second = evaluate(RELU.reference, RELU.solutions["cpp"][-1], CPP)
    assert first.status == second.status == "correct"
    assert first.extra["isolation"] == second.extra["isolation"] == "zygote"
    assert first.extra["zygote_pid"] == second.extra["zygote_pid"]
    assert first.extra["child_pid"] != second.extra["child_pid"]


def test_crashing_exiting_and_hanging_children_leave_the_zygote_running() -> None:
    zygote = evaluate(RELU.reference, RELU.solutions["cpp"][-1], CPP).extra["zygote_pid"]
    segfault = evaluate(
        RELU.reference, relu_candidate("        import ctypes\n        return ctypes.string_at(0)"), CPP
    )
    assert segfault.status == "crashed" and "SIGSEGV" in segfault.message
    exited = evaluate(RELU.reference, relu_candidate("        import os\n        os._exit(3)"), CPP)
    assert exited.status == "crashed" and "exited with code 3" in exited.message
    start = time.monotonic()
    hang = evaluate(
        RELU.reference,
        relu_candidate("        while True:\n            pass"),
        EvalConfig(num_perf_trials=3, timeout_s=10),
    )
    assert hang.status == "timeout" and time.monotonic() - start < 30
    for result in (segfault, exited, hang):
        assert result.extra["zygote_pid"] == zygote
    with pytest.raises(ProcessLookupError):  # the hanging child was killed, not left behind
        os.kill(hang.extra["child_pid"], 0)
    after = evaluate(RELU.reference, RELU.solutions["cpp"][-1], CPP)
    assert after.status == "correct" and after.extra["zygote_pid"] == zygote


def test_a_killed_zygote_is_restarted() -> None:
    zygote = evaluate(RELU.reference, RELU.solutions["cpp"][-1], CPP).extra["zygote_pid"]
    os.kill(zygote, signal.SIGKILL)
    result = evaluate(RELU.reference, RELU.solutions["cpp"][-1], CPP)
    assert result.status == "correct" and result.extra["zygote_pid"] != zygote


MATMUL_REFERENCE = """
import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, a, b):
        return torch.relu(a @ b)


def get_inputs():
    return [torch.randn(384, 384), torch.randn(384, 384)]


def get_init_inputs():
    return []
"""


def test_multithreaded_torch_in_forked_children_does_not_deadlock() -> None:
    """Each child runs a parallel matmul on 2 threads; the zygote itself starts no pool threads."""
    candidate = MATMUL_REFERENCE.replace("class Model(", "class ModelNew(")
    config = EvalConfig(threads=2, num_perf_trials=3, num_warmup=1, timeout_s=60)
    first = evaluate(MATMUL_REFERENCE, candidate, config)
    zygote = first.extra["zygote_pid"]
    before = zygote_threads(zygote)
    second = evaluate(MATMUL_REFERENCE, candidate, config)
    assert first.status == second.status == "correct"  # (flagged reference_op: no kernel of its own)
    assert {h.name for h in second.hacks} >= {"reference_op", "kernel_not_launched"}
    assert second.extra["zygote_pid"] == zygote and zygote_threads(zygote) == before


@pytest.mark.parametrize(
    "candidate",
    [RELU.solutions["cpp"][-1], relu_candidate("        return _lib.sigmoid(x.contiguous())")],
    ids=["correct", "incorrect"],
)
def test_results_equal_the_fresh_process_mode(candidate: str) -> None:
    forked = evaluate(RELU.reference, candidate, CPP).to_dict()
    fresh = evaluate(RELU.reference, candidate, EvalConfig(**{**CPP.__dict__, "isolation": "process"}))
    assert forked["extra"]["isolation"] == "zygote" and fresh.extra == {"isolation": "process"}
    fresh_fields = fresh.to_dict()
    assert (forked["speedup"] is None) == (fresh_fields["speedup"] is None)
    for key in TIMING:
        forked.pop(key), fresh_fields.pop(key)
    assert forked == fresh_fields


def test_cuda_device_uses_a_fresh_process() -> None:
    result = evaluate(RELU.reference, RELU.solutions["cpp"][-1], EvalConfig(device="cuda", timeout_s=120))
    assert result.extra == {"isolation": "process"} and result.device == "cuda"


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs triton (the kernel extra)")
def test_triton_interpreter_jobs_get_a_zygote_started_with_it() -> None:
    """``torch._dynamo`` imports Triton in the zygote, so ``TRITON_INTERPRET`` must be set there."""
    softmax = find_task(builtin_tasks(), "8_Softmax")
    cpp = evaluate(RELU.reference, RELU.solutions["cpp"][-1], CPP)
    triton = evaluate(softmax.reference, softmax.solutions["triton"][-1], EvalConfig(backend="triton"))
    assert triton.status == "correct" and not triton.hacks, triton.message
    assert triton.extra["isolation"] == "zygote" and triton.extra["zygote_pid"] != cpp.extra["zygote_pid"]
