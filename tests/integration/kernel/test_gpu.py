"""The triton and cuda backends on a GPU (skipped without one; benchmarks/kernel_gpu.py runs them all)."""

from __future__ import annotations

import pytest

from turngym.envs.kernel.cuda_solutions import CUDA_SOLUTIONS
from turngym.envs.kernel.evaluate import EvalConfig, evaluate
from turngym.envs.kernel.tasks import builtin_tasks, find_task

pytestmark = [pytest.mark.gpu, pytest.mark.integration]


@pytest.mark.parametrize("task_id", ["1_ReLU", "8_Softmax"])
def test_triton_solution_on_the_gpu_is_correct_and_timed(task_id: str) -> None:
    task = find_task(builtin_tasks(), task_id)
    result = evaluate(
        task.reference, task.solutions["triton"][-1], EvalConfig(backend="triton", device="cuda")
    )
    assert result.category == "correct" and result.device == "cuda"
    assert result.speedup is not None and result.coverage is not None and result.coverage > 0.5


@pytest.mark.parametrize("task_id", sorted(CUDA_SOLUTIONS))
def test_cuda_solution_on_the_gpu_is_correct_and_timed(task_id: str) -> None:
    task = find_task(builtin_tasks(), task_id)
    result = evaluate(task.reference, task.solutions["cuda"][-1], EvalConfig(backend="cuda", device="cuda"))
    assert result.category == "correct" and result.speedup is not None
