"""Kernel evaluation on CPU: evaluations per minute per worker, the cost of isolation, and the
speedups of the built-in reference solutions (cpp backend, single-threaded, against eager PyTorch).

* Every built-in task's final cpp solution is evaluated once with the default settings of
  ``turngym kernel eval`` (3 input sets, 3 warm-up and 20 timed calls): its speedup, coverage and
  the evaluation's wall time. Evaluations per minute per worker = 60 / mean wall time.
* Isolation overhead: ``--repeats`` evaluations of ``1_ReLU`` through :func:`evaluate` (a fresh
  subprocess each: interpreter start, ``import torch``, loading the cached extension) against the
  same job run in this process by the runner's own function (torch already imported, the extension
  already loaded after the first call); the medians' difference is what isolation costs.

The C++ library is compiled before timing starts (cached by source hash), so no row includes a
build. ``--tasks 1_ReLU,8_Softmax`` limits the task list.

    python benchmarks/kernel_eval.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict
from pathlib import Path

from turngym.envs.kernel.evaluate import EvalConfig, default_build_dir, evaluate
from turngym.envs.kernel.runner import run_job
from turngym.envs.kernel.tasks import builtin_tasks, find_task

OUT = Path(__file__).parent / "results" / "kernel_eval.json"


def isolation_overhead(repeats: int) -> dict[str, float]:
    task = find_task(builtin_tasks(), "1_ReLU")
    config = EvalConfig(num_perf_trials=5, num_warmup=1)
    job = {
        **asdict(config), "device": "cpu", "reference": task.reference,
        "candidate": task.solutions["cpp"][-1],
        "build_dir": str(default_build_dir()), "measure_performance": True,
    }  # fmt: skip
    run_job(job)  # load the extension and warm torch once in this process
    subprocess_s, inprocess_s = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        assert evaluate(task.reference, task.solutions["cpp"][-1], config).correct
        subprocess_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        assert run_job(job)["correct"]
        inprocess_s.append(time.perf_counter() - start)
    sub, inp = statistics.median(subprocess_s), statistics.median(inprocess_s)
    return {
        "subprocess_median_s": sub,
        "in_process_median_s": inp,
        "overhead_s": sub - inp,
        "repeats": repeats,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="", help="comma-separated task ids (default: all built-in)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    tasks = (
        [find_task(builtin_tasks(), t) for t in args.tasks.split(",")]
        if args.tasks
        else list(builtin_tasks())
    )
    config = EvalConfig()
    evaluate(tasks[0].reference, tasks[0].solutions["cpp"][-1], config)  # build (or load) the library
    rows = []
    for task in tasks:
        result = evaluate(task.reference, task.solutions["cpp"][-1], config)
        rows.append(
            {
                "task": task.task_id,
                "level": task.level,
                "status": result.category,
                "reference_ms": (result.reference_ms or {}).get("median"),
                "kernel_ms": (result.kernel_ms or {}).get("median"),
                "speedup": result.speedup,
                "coverage": result.coverage,
                "eval_s": result.wall_s,
            }
        )
        r = rows[-1]
        print(
            f"| {r['task']} | {r['level']} | {r['status']} | {r['reference_ms'] or 0:.4f} "
            f"| {r['kernel_ms'] or 0:.4f} "
            f"| {r['speedup'] or 0:.2f} | {r['coverage'] or 0:.2f} | {r['eval_s']:.1f} |",
            flush=True,
        )
    mean_eval = statistics.fmean(r["eval_s"] for r in rows)
    speedups = [r["speedup"] for r in rows if r["speedup"]]
    geomean = statistics.geometric_mean(speedups) if speedups else None
    isolation = isolation_overhead(args.repeats)
    summary = {
        "evaluations_per_minute_per_worker": 60.0 / mean_eval,
        "mean_eval_s": mean_eval,
        "correct": sum(r["status"] == "correct" for r in rows),
        "tasks": len(rows),
        "geomean_speedup": geomean,
        "faster_than_eager": sum(s > 1.0 for s in speedups),
        "isolation": isolation,
    }
    print(
        f"\n{summary['correct']}/{summary['tasks']} correct; geometric-mean speedup {geomean or 0:.2f}x; "
        f"{summary['faster_than_eager']} faster than eager; "
        f"{summary['evaluations_per_minute_per_worker']:.1f} "
        f"evaluations/min/worker (mean {mean_eval:.1f} s); "
        f"isolation: {isolation['subprocess_median_s']:.2f} s "
        f"in a subprocess vs {isolation['in_process_median_s']:.2f} s in process "
        f"(+{isolation['overhead_s']:.2f} s per evaluation)"
    )
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps({"rows": rows, "summary": summary}, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
