"""GPU check of the kernel evaluator (PREPARED, NOT YET RUN: the project's machines have no GPU).

Needs a CUDA GPU, torch with CUDA and triton (``pip install -e ".[kernel]"``). It evaluates, on
the GPU, every built-in task's Triton solution (backend ``triton``: compiled Triton, CUDA-event
timing, L2 flush of 256 MB, profiler coverage) and every CUDA solution (backend ``cuda``:
``load_inline`` with ``cuda_sources``, :mod:`turngym.envs.kernel.cuda_solutions`), 5 input sets and
100 timed trials as KernelBench does,
prints a table (correct, speedup over eager PyTorch, coverage, findings) and writes
``benchmarks/results/kernel_gpu.json``. Exit code 1 when a reference solution is not correct or
has findings, so the script doubles as the GPU acceptance test.

    python benchmarks/kernel_gpu.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from turngym.envs.kernel.evaluate import EvalConfig, cuda_available, evaluate
from turngym.envs.kernel.tasks import builtin_tasks

OUT = Path(__file__).parent / "results" / "kernel_gpu.json"


def main() -> int:
    if not cuda_available():
        print("no CUDA GPU: this script checks the triton and cuda backends on a GPU; nothing to do here")
        return 0
    jobs = [(t, "triton", t.solutions["triton"][-1]) for t in builtin_tasks() if "triton" in t.solutions]
    jobs += [(t, "cuda", t.solutions["cuda"][-1]) for t in builtin_tasks() if "cuda" in t.solutions]
    rows, failures = [], 0
    print(
        "| task | backend | status | speedup | coverage | findings |\n| --- | --- | --- | --- | --- | --- |"
    )
    for task, backend, source in jobs:
        config = EvalConfig(backend=backend, device="cuda", num_correct_trials=5, num_perf_trials=100)
        result = evaluate(task.reference, source, config)
        failures += result.category != "correct"
        rows.append({"task": task.task_id, "backend": backend, **result.to_dict()})
        hacks = ", ".join(h.name for h in result.hacks) or "-"
        print(
            f"| {task.task_id} | {backend} | {result.category} | {result.speedup or 0:.2f} "
            f"| {result.coverage or 0:.2f} | {hacks} |"
            + (f" {result.message[:200]}" if result.message else ""),
            flush=True,
        )
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"{len(rows) - failures}/{len(rows)} correct and clean; wrote {OUT}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
