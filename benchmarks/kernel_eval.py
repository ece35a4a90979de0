"""Kernel evaluation on CPU: evaluations per minute per worker, the cost of isolation, and the
speedups of the built-in reference solutions (cpp backend, single-threaded, against eager PyTorch).

* Every built-in task's final cpp solution is evaluated with the default settings of
  ``turngym kernel eval`` (3 input sets, 3 warm-up and 20 timed calls), once in a child forked from
  the evaluation zygote (the default) and once in a fresh process (``isolation="process"``, the
  old way): its speedup and coverage (from the zygote run) and both wall times. Evaluations per
  minute per worker = 60 / mean wall time, for each mode.
* Isolation overhead: ``--repeats`` evaluations of ``1_ReLU`` through :func:`evaluate` in each mode
  against the same job run in this process by the runner's own function (torch already imported,
  the extension already loaded after the first call); a mode's median minus the in-process
  median is what its isolation costs.

The C++ library is compiled and the zygote started before timing starts, so no row includes a
build or the zygote's one-time start (reported separately). ``--tasks 1_ReLU,8_Softmax`` limits
the task list.

    python benchmarks/kernel_eval.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict, replace
from pathlib import Path

from turngym.envs.kernel.evaluate import EvalConfig, default_build_dir, evaluate, start_zygote
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
    times: dict[str, list[float]] = {"process": [], "zygote": [], "in_process": []}
    for _ in range(repeats):
        for mode in ("process", "zygote"):
            start = time.perf_counter()
            result = evaluate(task.reference, task.solutions["cpp"][-1], replace(config, isolation=mode))
            assert result.correct
            times[mode].append(time.perf_counter() - start)
        start = time.perf_counter()
        assert run_job(job)["correct"]
        times["in_process"].append(time.perf_counter() - start)
    medians = {mode: statistics.median(values) for mode, values in times.items()}
    return {
        "subprocess_median_s": medians["process"],
        "zygote_median_s": medians["zygote"],
        "in_process_median_s": medians["in_process"],
        "overhead_s": medians["process"] - medians["in_process"],
        "zygote_overhead_s": medians["zygote"] - medians["in_process"],
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
    start = time.perf_counter()
    start_zygote()
    zygote_start_s = time.perf_counter() - start
    evaluate(tasks[0].reference, tasks[0].solutions["cpp"][-1], config)  # build (or load) the library
    rows = []
    for task in tasks:
        result = evaluate(task.reference, task.solutions["cpp"][-1], config)
        fresh = evaluate(task.reference, task.solutions["cpp"][-1], replace(config, isolation="process"))
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
                "fresh_process_status": fresh.category,
                "fresh_process_eval_s": fresh.wall_s,
            }
        )
        r = rows[-1]
        print(
            f"| {r['task']} | {r['level']} | {r['status']} | {r['reference_ms'] or 0:.4f} "
            f"| {r['kernel_ms'] or 0:.4f} "
            f"| {r['speedup'] or 0:.2f} | {r['coverage'] or 0:.2f} | {r['eval_s']:.1f} "
            f"| {r['fresh_process_eval_s']:.1f} |",
            flush=True,
        )
    mean_eval = statistics.fmean(r["eval_s"] for r in rows)
    mean_fresh = statistics.fmean(r["fresh_process_eval_s"] for r in rows)
    speedups = [r["speedup"] for r in rows if r["speedup"]]
    geomean = statistics.geometric_mean(speedups) if speedups else None
    isolation = isolation_overhead(args.repeats)
    summary = {
        "evaluations_per_minute_per_worker": 60.0 / mean_eval,
        "mean_eval_s": mean_eval,
        "fresh_process_evaluations_per_minute_per_worker": 60.0 / mean_fresh,
        "fresh_process_mean_eval_s": mean_fresh,
        "zygote_start_s": zygote_start_s,
        "correct": sum(r["status"] == "correct" for r in rows),
        "fresh_process_correct": sum(r["fresh_process_status"] == "correct" for r in rows),
        "tasks": len(rows),
        "geomean_speedup": geomean,
        "faster_than_eager": sum(s > 1.0 for s in speedups),
        "isolation": isolation,
    }
    print(
        f"\n{summary['correct']}/{summary['tasks']} correct; geometric-mean speedup {geomean or 0:.2f}x; "
        f"{summary['faster_than_eager']} faster than eager; "
        f"{summary['evaluations_per_minute_per_worker']:.1f} evaluations/min/worker forked from the "
        f"zygote (mean {mean_eval:.1f} s; zygote start {zygote_start_s:.1f} s once) vs "
        f"{summary['fresh_process_evaluations_per_minute_per_worker']:.1f} in fresh processes "
        f"(mean {mean_fresh:.1f} s); isolation: {isolation['subprocess_median_s']:.2f} s in a fresh "
        f"process, {isolation['zygote_median_s']:.2f} s forked from the zygote, "
        f"{isolation['in_process_median_s']:.2f} s in process (+{isolation['overhead_s']:.2f} s and "
        f"+{isolation['zygote_overhead_s']:.2f} s per evaluation)"
    )
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps({"rows": rows, "summary": summary}, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
