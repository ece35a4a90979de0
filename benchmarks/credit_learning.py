"""Held-out success of GRPO, GiGPO, SALT and TRLOO trained with the same budget on the same env.

For each seed, one SFT warm start is made (``turngym sft``'s code path) and shared by every
estimator, so the estimators differ only in credit assignment. Each estimator then runs the
default training config (tiny model, Maze) for ``--iterations`` RL iterations, evaluated on the
held-out split every ``--eval-every`` iterations. The table reports the warm-start and final
held-out success (mean ± std over seeds); the plot shows mean success against iterations with a
band of ± one std. Everything runs on CPU; ``--quick`` is a short budget for a shared machine.

    python benchmarks/credit_learning.py --quick
    python benchmarks/credit_learning.py --iterations 30 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from turngym.trainers.config import load_config
from turngym.trainers.loop import train
from turngym.trainers.sft import run_sft

ESTIMATORS = ("grpo", "gigpo", "salt", "trloo")


def run(args: argparse.Namespace) -> dict:
    curves: dict[str, dict[int, list[tuple[int, float]]]] = {name: {} for name in args.estimators}
    seconds: dict[str, list[float]] = {name: [] for name in args.estimators}
    with tempfile.TemporaryDirectory(prefix="credit-learning-") as tmp:
        for seed in args.seeds:
            common = [f"seed={seed}", "progress=false", "tensorboard=false", *args.set]
            sft_dir = Path(tmp) / f"sft-{seed}"
            run_sft(load_config(None, common), sft_dir)
            for name in args.estimators:
                cfg = load_config(
                    None,
                    [
                        *common,
                        f"credit.estimator={name}",
                        f"model.model=hf:{sft_dir}",
                        "sft.enabled=false",
                        f"iterations={args.iterations}",
                        f"eval.every={args.eval_every}",
                        f"eval.episodes={args.eval_episodes}",
                        f"checkpoint_every={args.iterations}",
                        f"output_dir={Path(tmp) / f'{name}-{seed}'}",
                    ],
                )
                t0 = time.perf_counter()
                report = train(cfg, resume=False).report
                seconds[name].append(time.perf_counter() - t0)
                curves[name][seed] = [(e["iteration"], e["eval/success_rate"]) for e in report["evals"]]
                print(f"{name} seed {seed}: {curves[name][seed]}", flush=True)
    return {"curves": curves, "seconds": seconds, "args": {k: v for k, v in vars(args).items() if k != "out"}}


def summarize(result: dict) -> str:
    lines = [
        "| estimator | warm start (mean ± std) | final (mean ± std) | change | seconds/run |",
        "|---|---|---|---|---|",
    ]
    for name, by_seed in result["curves"].items():
        first = [curve[0][1] for curve in by_seed.values()]
        last = [curve[-1][1] for curve in by_seed.values()]
        sd = statistics.stdev if len(last) > 1 else (lambda _: 0.0)
        change = statistics.mean(b - a for a, b in zip(first, last, strict=True))
        lines.append(
            f"| {name} | {statistics.mean(first):.3f} ± {sd(first):.3f} | {statistics.mean(last):.3f} ± "
            f"{sd(last):.3f} | {change:+.3f} | {statistics.mean(result['seconds'][name]):.0f} |"
        )
    return "\n".join(lines)


def plot(result: dict, out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, by_seed in result["curves"].items():
        curves = list(by_seed.values())
        its = [it for it, _ in curves[0]]
        values = [[curve[k][1] for curve in curves] for k in range(len(its))]
        mean = [statistics.mean(v) for v in values]
        std = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
        ax.plot(its, mean, "o-", label=name)
        low = [m - s for m, s in zip(mean, std, strict=True)]
        high = [m + s for m, s in zip(mean, std, strict=True)]
        ax.fill_between(its, low, high, alpha=0.15)
    ax.set(
        xlabel="RL iteration", ylabel="held-out success", ylim=(0, 1), title="credit assignment on Maze (CPU)"
    )
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 iterations, 100 eval episodes")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--eval-episodes", type=int, default=200)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--estimators", nargs="+", default=list(ESTIMATORS))
    parser.add_argument("--set", action="append", default=[], help="extra config override (repeatable)")
    parser.add_argument("--out", default="benchmarks/results/credit_learning")
    args = parser.parse_args()
    if args.quick:
        args.iterations, args.eval_every, args.eval_episodes = 6, 3, 100
    result = run(args)
    table = summarize(result)
    print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({**result, "table": table}, indent=2))
    plot(result, out.with_suffix(".png"))


if __name__ == "__main__":
    main()
