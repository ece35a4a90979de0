"""Cost of each credit estimator for 10^3 .. 10^6 steps (pure NumPy over a :class:`StepBatch`).

Synthetic groups of N = 8 trajectories with 1-10 turns each; anchors are drawn from 6 states per
group, actions from 4, rewards are sparse. The batch is built once per size from arrays (interning
anchors is the caller's one-off cost; ``build_10^5_s`` times ``StepBatch.from_rows`` on Python
step rows for reference), then each estimator is timed (median of ``--repeats``). The last column
is nanoseconds per step at the largest size; a linear cost keeps it flat across sizes.

    python benchmarks/advantage_speed.py            # 10^3..10^6, 3 repeats
    python benchmarks/advantage_speed.py --quick    # 1 repeat
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from turngym.trainers.advantages import StepBatch, StepRow, compute_steps

ESTIMATORS = {
    "grpo": {},
    "dr_grpo": {},
    "rloo": {},
    "reinforce_pp": {},
    "reinforce_pp_baseline": {},
    "gigpo": {},
    "salt": {},
    "trloo": {},
    "empg": {"host": "gigpo"},
}
SIZES = (10**3, 10**4, 10**5, 10**6)


def synthetic(steps: int, seed: int = 0) -> StepBatch:
    """A batch of about ``steps`` steps (exact count: ``steps``)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 11, size=steps)  # more than enough trajectories
    cum = np.cumsum(lengths)
    n_traj = int(np.searchsorted(cum, steps)) + 1
    lengths = lengths[:n_traj].copy()
    lengths[-1] -= int(cum[n_traj - 1] - steps)
    traj_group = np.arange(n_traj) // 8
    traj = np.repeat(np.arange(n_traj), lengths)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    turn = np.arange(steps) - starts[traj]
    group = traj_group[traj]
    reward = np.where(turn == lengths[traj] - 1, rng.integers(0, 2, size=steps), 0).astype(np.float64)
    anchor_id = group * 6 + rng.integers(0, 6, size=steps)
    return StepBatch(
        group=group,
        traj=traj,
        turn=turn,
        reward=reward,
        anchor_id=anchor_id,
        action_id=rng.integers(0, 4, size=steps),
        entropy=rng.random(steps),
        anchors=tuple(range(int(anchor_id.max()) + 1)),
        traj_group=traj_group,
        traj_start=starts,
        traj_len=lengths,
        traj_keys=tuple(range(n_traj)),
    )


def time_build(steps: int) -> float:
    rows = [
        StepRow(i // 40, i // 5, i % 5, float(i % 7 == 0), f"state {i % 13}", "go north")
        for i in range(steps)
    ]
    t0 = time.perf_counter()
    StepBatch.from_rows(rows)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat per cell")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/advantage_speed.json")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    results: dict[str, dict[str, float]] = {name: {} for name in ESTIMATORS}
    for size in SIZES:
        batch = synthetic(size)
        for name, params in ESTIMATORS.items():
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                compute_steps(name, batch, **params)
                times.append(time.perf_counter() - t0)
            results[name][str(size)] = statistics.median(times)
    build = time_build(10**5)
    header = (
        "| estimator | "
        + " | ".join(f"10^{len(str(s)) - 1} steps (ms)" for s in SIZES)
        + " | ns/step at 10^6 |"
    )
    print(header)
    print("|" + "---|" * (len(SIZES) + 2))
    for name, row in results.items():
        cells = " | ".join(f"{row[str(s)] * 1e3:.2f}" for s in SIZES)
        print(f"| {name} | {cells} | {row[str(SIZES[-1])] / SIZES[-1] * 1e9:.0f} |")
    print(f"\nStepBatch.from_rows on 10^5 Python step rows: {build:.2f} s (one-off interning)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"seconds": results, "build_10^5_s": build, "repeats": repeats}, indent=2))


if __name__ == "__main__":
    main()
