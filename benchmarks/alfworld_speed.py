"""ALFWorld speed and baselines: our in-process engine against the real TextWorld/ALFWorld engine.

Measures, in one run on one process (one thread):

1. ``ALFWorld-v0`` expert episodes: steps per CPU second of this process over whole episodes
   (reset and expert included, households already generated once) and over ``step`` calls alone,
   plus wall-clock steps per second; medians of the repeats. CPU time is the fair measure of "one
   core" on a shared machine, where wall time also counts time spent waiting for a core.
2. Expert and random (uniform over admissible commands) success rates, per task type.
3. The real engine (``ALFWorld-TW-v0``: TextWorld's PDDL env with ALFWorld's domain and grammar)
   and ours on the *same* exported tasks (one per task type) and the *same* command sequences (the
   expert's walkthroughs): seconds per step of each, and the ratio. Load/reset is timed apart.

Prints a markdown table and writes ``benchmarks/results/alfworld_speed.json``.
Usage: ``python benchmarks/alfworld_speed.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from turngym.envs.alfworld.env import ALFWorldEnv
from turngym.envs.alfworld.export import walkthrough
from turngym.envs.alfworld.vocab import TASK_BY_ID
from turngym.envs.alfworld.world import generate

RESULTS = Path(__file__).parent / "results" / "alfworld_speed.json"


def expert_speed(split: str, tasks: int) -> tuple[float, float, float, int]:
    """Expert episodes: (steps per CPU second over whole episodes, the same over ``step`` calls
    only, steps per wall-clock second over whole episodes, steps)."""
    env = ALFWorldEnv(split=split)
    steps, in_step = 0, 0.0
    wall, cpu = time.perf_counter(), time.process_time()
    for k in range(tasks):
        env.reset(seed=k, options={"task_id": k})
        while True:
            action = env.expert_action()
            t = time.process_time()
            _, _, terminated, truncated, _ = env.step(action)
            in_step += time.process_time() - t
            steps += 1
            if terminated or truncated:
                break
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return steps / cpu, steps / in_step, steps / wall, steps


def success(split: str, tasks: int, agent: str) -> tuple[float, dict[str, float]]:
    env = ALFWorldEnv(split=split)
    rng = np.random.default_rng(0)
    wins: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    for k in range(tasks):
        env.reset(seed=k, options={"task_id": k})
        while True:
            action = env.expert_action() if agent == "expert" else env.random_action(rng)
            _, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
        kind = TASK_BY_ID[env.household.task_type].short
        seen[kind] += 1
        wins[kind] += int(info["won"])
    return sum(wins.values()) / tasks, {k: wins[k] / seen[k] for k in sorted(seen)}


def one_task_per_type(split: str) -> list[int]:
    first: dict[int, int] = {}
    k = 0
    while len(first) < 6:
        first.setdefault(generate(split, k).task_type, k)
        k += 1
    return [first[t] for t in sorted(first)]


def ours_on(split: str, task_ids: list[int], sequences: list[list[str]], repeats: int) -> float:
    """Median wall-clock seconds per step of ALFWorld-v0 replaying ``sequences`` (reset not counted;
    wall clock, as for the real engine, whose time is partly spent outside Python)."""
    env = ALFWorldEnv(split=split)
    per_step = []
    for _ in range(repeats):
        elapsed, steps = 0.0, 0
        for k, commands in zip(task_ids, sequences, strict=True):
            env.reset(seed=0, options={"task_id": k})
            t = time.perf_counter()
            for c in commands:
                env.step(c)
            elapsed += time.perf_counter() - t
            steps += len(commands)
        per_step.append(elapsed / steps)
    return statistics.median(per_step)


def real_on(split: str, task_ids: list[int], sequences: list[list[str]]) -> tuple[float, float, list[bool]]:
    """(median seconds per step, median seconds per load+reset, won per task) of the real engine."""
    from turngym.envs.alfworld.tw_env import ALFWorldTWEnv

    with tempfile.TemporaryDirectory() as cache:
        env = ALFWorldTWEnv(split=split, cache_dir=cache)
        for k in task_ids:
            env.game_file(k)  # export before timing
        step_times, reset_times, won = [], [], []
        for k, commands in zip(task_ids, sequences, strict=True):
            t = time.perf_counter()
            env.reset(seed=0, options={"task_id": k})
            reset_times.append(time.perf_counter() - t)
            info: dict[str, object] = {}
            for c in commands:
                t = time.perf_counter()
                _, _, _, _, info = env.step(c)
                step_times.append(time.perf_counter() - t)
            won.append(bool(info.get("won")))
        env.close()
    return statistics.median(step_times), statistics.median(reset_times), won


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer tasks and repeats (a minute or two)")
    parser.add_argument("--no-real", action="store_true", help="skip the real engine")
    args = parser.parse_args()
    tasks, repeats, rate_tasks = (140, 3, 300) if args.quick else (1000, 5, 2000)

    generate.cache_clear()
    runs = [expert_speed("train", tasks) for _ in range(repeats)]  # the first run also generates
    episode_sps = statistics.median(r[0] for r in runs[1:] or runs)
    step_sps = statistics.median(r[1] for r in runs[1:] or runs)
    wall_sps = statistics.median(r[2] for r in runs[1:] or runs)
    expert_rate, expert_by_type = success("train", rate_tasks, "expert")
    random_rate, random_by_type = success("train", rate_tasks, "random")
    result: dict[str, object] = {
        "machine_note": "shared 2-core machine; one process, one thread; CPU-time rates unless 'wall'",
        "load_average_1min": os.getloadavg()[0],
        "expert_steps_per_cpu_s_episodes": episode_sps,
        "expert_steps_per_cpu_s_step_only": step_sps,
        "expert_steps_per_wall_s_episodes": wall_sps,
        "expert_steps_per_episode": runs[0][3] / tasks,
        "expert_success": expert_rate,
        "expert_success_by_type": expert_by_type,
        "random_success": random_rate,
        "random_success_by_type": random_by_type,
        "tasks_for_rates": rate_tasks,
    }
    rows = [
        ("ALFWorld-v0 expert, steps per CPU second (whole episodes, median)", f"{episode_sps:,.0f}"),
        ("ALFWorld-v0 expert, steps per CPU second (step calls only)", f"{step_sps:,.0f}"),
        ("ALFWorld-v0 expert, steps per wall second (whole episodes)", f"{wall_sps:,.0f}"),
        (f"expert success ({rate_tasks} train tasks)", f"{100 * expert_rate:.1f} %"),
        (f"random success ({rate_tasks} train tasks, 50 steps)", f"{100 * random_rate:.2f} %"),
    ]
    if not args.no_real:
        task_ids = one_task_per_type("valid_seen")
        sequences = [walkthrough(generate("valid_seen", k)) for k in task_ids]
        real_step, real_reset, won = real_on("valid_seen", task_ids, sequences)
        ours_step = ours_on("valid_seen", task_ids, sequences, repeats=200)
        result.update(
            real_tasks=task_ids,
            real_steps=sum(map(len, sequences)),
            real_s_per_step=real_step,
            real_s_per_load_reset=real_reset,
            real_walkthroughs_won=won,
            ours_s_per_step_same_sequences=ours_step,
            speed_ratio=real_step / ours_step,
        )
        rows += [
            ("real engine, steps/s (same tasks and commands)", f"{1 / real_step:,.2f}"),
            ("ALFWorld-v0, steps/s (same tasks and commands)", f"{1 / ours_step:,.0f}"),
            ("speed ratio ours / real", f"{real_step / ours_step:,.0f}x"),
            ("real engine load + reset, s (median)", f"{real_reset:.2f}"),
            ("real engine reaches the goal on our walkthroughs", f"{sum(won)}/{len(won)}"),
        ]
    print("| measurement | value |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
