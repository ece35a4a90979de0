"""The default ``turngym train`` job on the asynchronous rollout engine vs the lock-step one.

Usage::

    python benchmarks/train_engine_speed.py              # 4 iterations, 2 runs of each engine
    python benchmarks/train_engine_speed.py --quick      # 2 iterations, 1 run of each

Each run is the default job (``hf:tiny``, Maze 2x2, 8 groups x 8 rollouts, GiGPO) shortened to
``--iterations`` RL iterations, a 5-step SFT warm start and 32 held-out episodes per evaluation,
with ``rollout.engine`` set to ``lockstep`` or ``async`` (everything else equal). The runs
alternate (lock-step, async, lock-step, ...) so a change in the machine's load hits both alike.
Reported per engine: the median over runs of the whole run's wall time and of the summed rollout
time of the iterations (``perf/rollout_s``), and whether the two engines logged the same metrics
(they should: with every episode in flight and the default ``rollout.batch_wait_s: null`` the
async engine forms the lock-step batches). Then the rollout stage alone (``collect_rollouts`` of
the default job, 64 episodes, untrained tiny model), ``--stage-repeats`` alternating runs per
engine: median wall time and CPU time of the process (less sensitive to other jobs' load).

Prints a markdown table and writes ``benchmarks/results/train_engine_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from turngym.agents.hf import HFPolicy
from turngym.agents.tiny import ensure_tiny
from turngym.trainers.config_load import load_config
from turngym.trainers.loop import train
from turngym.trainers.metrics import read_metrics
from turngym.trainers.rollout import collect_rollouts

RESULTS = Path(__file__).parent / "results" / "train_engine_speed.json"


def stage(engine: str, iteration: int) -> tuple[float, float]:
    """(wall s, CPU s of this process) of the default job's rollout stage alone."""
    config = load_config(None, [f"rollout.engine={engine}"])
    policy = HFPolicy.from_pretrained(ensure_tiny(), num_threads=1)
    wall, cpu = time.perf_counter(), time.process_time()
    collect_rollouts(policy, policy.tokenizer, config, iteration)
    return time.perf_counter() - wall, time.process_time() - cpu


def run(engine: str, iterations: int, out: Path) -> tuple[float, float, list[dict[str, Any]]]:
    """(wall s, rollout s summed over iterations, metric rows without timings) of one training run."""
    config = load_config(
        None,
        [
            f"iterations={iterations}",
            f"output_dir={out}",
            "progress=false",
            "tensorboard=false",
            "sft.steps=5",
            "eval.episodes=32",
            f"eval.every={iterations}",
            f"rollout.engine={engine}",
        ],
    )
    start = time.perf_counter()
    train(config)
    wall = time.perf_counter() - start
    rows = read_metrics(out / "metrics.jsonl")
    rollout = sum(r.get("perf/rollout_s", 0.0) for r in rows)
    plain = [{k: v for k, v in r.items() if not k.startswith("perf/") and "seconds" not in k} for r in rows]
    return wall, rollout, plain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 iterations, 1 run of each engine")
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--stage-repeats", type=int, default=6, help="rollout-stage-only runs per engine")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    iterations = args.iterations or (2 if args.quick else 4)
    repeats = args.repeats or (1 if args.quick else 2)
    torch.set_num_threads(1)
    walls: dict[str, list[float]] = {"lockstep": [], "async": []}
    rollouts: dict[str, list[float]] = {"lockstep": [], "async": []}
    metrics: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(repeats):
            for engine in ("lockstep", "async"):
                wall, rollout, rows = run(engine, iterations, Path(tmp) / f"{engine}-{k}")
                walls[engine].append(wall)
                rollouts[engine].append(rollout)
                metrics[engine] = rows
    same = metrics["lockstep"] == metrics["async"]
    stages: dict[str, list[tuple[float, float]]] = {"lockstep": [], "async": []}
    for k in range(args.stage_repeats):
        for engine in ("lockstep", "async"):
            stages[engine].append(stage(engine, iteration=k + 1))
    summary = {
        engine: {
            "wall_s": statistics.median(walls[engine]),
            "rollout_s": statistics.median(rollouts[engine]),
            "runs_wall_s": walls[engine],
            "runs_rollout_s": rollouts[engine],
        }
        for engine in walls
    }
    print(f"default train job, {iterations} iterations, median of {repeats} runs per engine\n")
    print("| engine | wall s | rollout s (all iterations) |")
    print("| :--- | ---: | ---: |")
    for engine, row in summary.items():
        print(f"| {engine} | {row['wall_s']:.1f} | {row['rollout_s']:.1f} |")
    for engine, runs in stages.items():
        summary[engine]["stage_wall_s"] = statistics.median(w for w, _ in runs)
        summary[engine]["stage_cpu_s"] = statistics.median(c for _, c in runs)
        summary[engine]["stage_runs"] = runs
    print(f"\nthe rollout stage alone (64 episodes), median of {args.stage_repeats} alternating runs\n")
    print("| engine | wall s | CPU s |")
    print("| :--- | ---: | ---: |")
    for engine, row in summary.items():
        print(f"| {engine} | {row['stage_wall_s']:.2f} | {row['stage_cpu_s']:.2f} |")
    ratio = summary["lockstep"]["wall_s"] / summary["async"]["wall_s"]
    print(f"\nasync / lock-step speed: {ratio:.2f}x wall; same metrics: {same}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "benchmark": "train_engine_speed",
                "machine": {
                    "platform": platform.platform(),
                    "cpus": os.cpu_count(),
                    "torch": torch.__version__,
                },
                "settings": {
                    "iterations": iterations,
                    "repeats": repeats,
                    "sft_steps": 5,
                    "eval_episodes": 32,
                },
                "engines": summary,
                "speedup_wall": ratio,
                "stage_speedup_wall": summary["lockstep"]["stage_wall_s"] / summary["async"]["stage_wall_s"],
                "same_metrics": same,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
