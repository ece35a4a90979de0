"""Held-out success of GRPO, GiGPO, SALT, TRLOO (and ARPO) trained with the same budget on the same env.

For each seed, one SFT warm start is made (``turngym sft``'s code path) and shared by every
method, so the methods differ only in credit assignment (or, for ARPO, in how the same number of
trajectories per task is sampled). Each method then runs ``--iterations`` RL iterations with the
same trajectory budget (``rollout.groups_per_iteration`` × ``rollout.group_size`` episodes per
iteration), evaluated on held-out tasks every ``--eval-every`` iterations.

Task families (``--env``):

* ``keydoor`` (default): ``turngym/KeyDoor-v0`` on 3 × 3 rooms, up to 20 turns, sparse terminal
  reward, states revisited within and across the episodes of a group, a compass tool that costs
  reward; ``window:1`` context (verl-agent's memory mode), so long episodes stay cheap. All five
  methods, 5 seeds.
* ``calculator``: ``turngym/Calculator-v0`` (word problems, a calculator tool, up to 4 turns) with
  the settings of ``examples/train_calculator_arpo.yaml``: ARPO against GRPO at the same budget
  (8 trajectories per task), 3 seeds; ARPO branches after calculator results.
* ``search``: ``turngym/Search-v0`` on the generated knowledge base (BM25, top-1 passage, at most
  2 searches, EM reward; RL on training questions 0-499, SFT demos from 500-547 of its 552): ARPO
  against GRPO at the same budget, 3 seeds; ARPO branches after search results.
* ``maze``: the default training job (Maze 2 × 2, 1-4 turns), the earlier comparison.

Output (``--out``, default ``benchmarks/results/credit_learning_<env>``): ``.json`` with every curve,
the mean and 95% confidence interval (Student t over seeds) at each evaluated iteration, and the
credit diagnostics per method (step-group size, singleton fraction, zero-advantage share, tool
calls and turns per episode, from the training rollouts); ``.png`` with mean held-out success
against iterations and the 95% bands; the markdown table on stdout and in the JSON.

``--jobs 2`` runs two trainings at a time (one torch thread each); ``--quick`` is the CI smoke
size (about 3 minutes on 2 idle cores), the defaults are the full comparison (sized for about
60 minutes on 2 idle cores with ``--jobs 2``).

    python benchmarks/credit_learning.py --quick
    nice python benchmarks/credit_learning.py --jobs 2
    python benchmarks/credit_learning.py --env maze --iterations 20 --seeds 0 1 2 --methods grpo gigpo
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from turngym.errors import ConfigError
from turngym.trainers.config_load import load_config
from turngym.trainers.loop import train
from turngym.trainers.metrics import read_metrics
from turngym.trainers.sft import run_sft

METHODS = ("grpo", "gigpo", "salt", "trloo", "arpo")
"""Credit estimators by name; ``arpo`` is ARPO's branching rollout (``rollout.strategy: arpo``) with
its default soft attribution, i.e. GRPO advantages over the branched trajectories."""

ENVS: dict[str, list[str]] = {
    "keydoor": [
        "env.env_id=turngym/KeyDoor-v0",
        "env.kwargs={size: 3, max_turns: 20}",
        "rollout.context=window:1",
        "rollout.max_new_tokens=14",
        "rollout.group_size=8",
        "rollout.groups_per_iteration=2",
        "optim.mini_batch_rows=64",
        "optim.micro_batch_rows=32",
        "sft.demos=64",
        "sft.steps=60",
        "eval.batch_size=64",
    ],
    "calculator": [
        "env.env_id=turngym/Calculator-v0",
        "env.kwargs={max_turns: 4}",
        "env.train_tasks=500",
        "rollout.group_size=8",
        "rollout.groups_per_iteration=4",
        "rollout.max_new_tokens=48",
        "loss.aggregation=token-mean",
        "sft.demos=48",
        "sft.steps=120",
        "sft.task_offset=100000",
    ],
    "search": [
        "env.env_id=turngym/Search-v0",
        "env.kwargs={max_searches: 2, topk: 1}",
        "env.train_tasks=500",
        "rollout.group_size=8",
        "rollout.groups_per_iteration=4",
        "rollout.max_new_tokens=40",
        "loss.aggregation=token-mean",
        "sft.demos=48",
        "sft.steps=120",
        "sft.task_offset=500",
    ],
    "maze": [],
}
"""Config overrides of each task family on top of the default training job."""

DEFAULTS: dict[str, dict[str, Any]] = {
    "keydoor": {"methods": list(METHODS), "seeds": [0, 1, 2, 3, 4]},
    "calculator": {"methods": ["grpo", "arpo"], "seeds": [0, 1, 2]},
    "search": {"methods": ["grpo", "arpo"], "seeds": [0, 1, 2]},
    "maze": {"methods": list(METHODS), "seeds": [0, 1, 2, 3, 4]},
}
"""Methods and seeds of each family's full comparison (``--methods`` / ``--seeds`` override them)."""

QUICK: dict[str, list[str]] = {
    "keydoor": ["sft.steps=4", "sft.demos=8", "rollout.group_size=4", "env.kwargs.max_turns=10"],
    "calculator": ["sft.steps=4", "sft.demos=8", "rollout.group_size=4", "rollout.groups_per_iteration=2"],
    "search": ["sft.steps=4", "sft.demos=8", "rollout.group_size=4", "rollout.groups_per_iteration=2"],
    "maze": ["sft.steps=4", "sft.demos=8", "rollout.group_size=4"],
}
"""``--quick`` overrides of each family (CI smoke size)."""

DIAGNOSTICS = {
    "step_group_size": "credit/step_group_size_mean",
    "singleton_fraction": "credit/singleton_fraction",
    "zero_adv_fraction": "credit/zero_adv_fraction",
    "tool_calls": "rollout/env_tool_calls",
    "turns": "rollout/mean_turns",
    "train_success": "rollout/success_rate",
}
"""Per-iteration training metrics averaged over a run, reported per method."""

_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)
"""Student t 0.975 quantiles for 1..10 degrees of freedom (1.96 beyond)."""


def ci95(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of its 95% confidence interval (Student t over ``values``; 0 for one value).

    E.g. ``[0.2, 0.4, 0.6]``: mean 0.4, std 0.2, half-width 4.303 · 0.2 / √3 = 0.4969.
    """
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, 0.0
    t = _T975[len(values) - 2] if len(values) - 1 <= len(_T975) else 1.96
    return mean, t * statistics.stdev(values) / math.sqrt(len(values))


def method_overrides(method: str) -> list[str]:
    """Config overrides selecting ``method``."""
    if method == "arpo":
        return ["credit.estimator=grpo", "rollout.strategy=arpo"]
    return [f"credit.estimator={method}"]


def check_methods(methods: list[str], base: list[str]) -> None:
    """Refuse unknown methods, and ``arpo`` where this tree has no ARPO rollout, before any work."""
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ConfigError(f"unknown methods {unknown}; choose from {list(METHODS)}")
    for method in methods:
        try:
            load_config(None, [*base, *method_overrides(method)])
        except ConfigError as exc:
            if method == "arpo":
                raise ConfigError(
                    f"method arpo needs the ARPO rollout (config key rollout.strategy), which this "
                    f"tree rejects: {exc}"
                ) from None
            raise


def train_one(job: dict[str, Any]) -> dict[str, Any]:
    """One RL run (in a worker process): its held-out curve, diagnostics and wall time."""
    cfg = load_config(None, job["overrides"])
    t0, cpu0 = time.perf_counter(), time.process_time()
    report = train(cfg, resume=False).report
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - cpu0
    rows = read_metrics(Path(cfg.output_dir) / "metrics.jsonl")
    diagnostics = {}
    for name, key in DIAGNOSTICS.items():
        values = [row[key] for row in rows if key in row and row.get("iteration", 0) > 0]
        diagnostics[name] = statistics.fmean(values) if values else math.nan
    evals = report["evals"]
    return {
        "method": job["method"],
        "seed": job["seed"],
        "curve": [(e["iteration"], e["eval/success_rate"]) for e in evals],
        "eval_tool_calls": [(e["iteration"], e.get("eval/env_tool_calls", 0.0)) for e in evals],
        "eval_turns": [(e["iteration"], e["eval/mean_turns"]) for e in evals],
        "diagnostics": diagnostics,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
    }


def sft_one(job: dict[str, Any]) -> float:
    """One SFT warm start (in a worker process); returns its CPU seconds."""
    cpu0 = time.process_time()
    run_sft(load_config(None, job["overrides"]), job["out"])
    return time.process_time() - cpu0


def run(args: argparse.Namespace) -> dict[str, Any]:
    base = ["progress=false", "tensorboard=false", *ENVS[args.env], *args.set]
    check_methods(args.methods, base)
    with (
        tempfile.TemporaryDirectory(prefix="credit-learning-") as tmp,
        ProcessPoolExecutor(args.jobs) as pool,
    ):
        sft_jobs = [
            {"overrides": [*base, f"seed={seed}"], "out": str(Path(tmp) / f"sft-{seed}")}
            for seed in args.seeds
        ]
        sft_cpu_seconds = list(pool.map(sft_one, sft_jobs))
        print(f"SFT warm starts: {[round(s) for s in sft_cpu_seconds]} CPU s", flush=True)
        jobs = [
            {
                "method": method,
                "seed": seed,
                "overrides": [
                    *base,
                    f"seed={seed}",
                    *method_overrides(method),
                    f"model.model=hf:{Path(tmp) / f'sft-{seed}'}",
                    "sft.enabled=false",
                    f"iterations={args.iterations}",
                    f"eval.every={args.eval_every}",
                    f"eval.episodes={args.eval_episodes}",
                    f"checkpoint_every={args.iterations}",
                    f"output_dir={Path(tmp) / f'{method}-{seed}'}",
                ],
            }
            for seed in args.seeds
            for method in args.methods
        ]
        runs = []
        for result in pool.map(train_one, jobs):
            print(
                f"{result['method']} seed {result['seed']}: {result['curve']} ({result['seconds']:.0f} s)",
                flush=True,
            )
            runs.append(result)
    return {
        "env": args.env,
        "env_id": load_config(None, base).env.env_id,
        "overrides": base,
        "args": {k: v for k, v in vars(args).items() if k != "out"},
        "sft_cpu_seconds": sft_cpu_seconds,
        "cpu_seconds_total": sum(sft_cpu_seconds) + sum(r["cpu_seconds"] for r in runs),
        "runs": runs,
        "summary": summarize(runs, args.methods),
    }


def summarize(runs: list[dict[str, Any]], methods: list[str]) -> dict[str, Any]:
    """Per method: iterations, mean and 95% CI half-width of held-out success at each, the change
    from the warm start, diagnostics averaged over seeds, seconds per run."""
    out: dict[str, Any] = {}
    for method in methods:
        mine = [r for r in runs if r["method"] == method]
        iterations = [it for it, _ in mine[0]["curve"]]
        stats = [ci95([r["curve"][k][1] for r in mine]) for k in range(len(iterations))]
        change = ci95([r["curve"][-1][1] - r["curve"][0][1] for r in mine])
        out[method] = {
            "seeds": [r["seed"] for r in mine],
            "iterations": iterations,
            "success_mean": [m for m, _ in stats],
            "success_ci95": [h for _, h in stats],
            "change_mean": change[0],
            "change_ci95": change[1],
            "final_eval_tool_calls": statistics.fmean(r["eval_tool_calls"][-1][1] for r in mine),
            "warm_eval_tool_calls": statistics.fmean(r["eval_tool_calls"][0][1] for r in mine),
            "final_eval_turns": statistics.fmean(r["eval_turns"][-1][1] for r in mine),
            "diagnostics": {
                name: statistics.fmean(r["diagnostics"][name] for r in mine) for name in DIAGNOSTICS
            },
            "seconds_per_run": statistics.fmean(r["seconds"] for r in mine),
            "cpu_seconds_per_run": statistics.fmean(r["cpu_seconds"] for r in mine),
        }
    return out


def table(summary: dict[str, Any]) -> str:
    lines = [
        "| method | warm start | final (95% CI) | change (95% CI) | tool calls/episode (train; held-out "
        "start → end) | turns/episode | step-group size | singletons | CPU s/run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for method, s in summary.items():
        d = s["diagnostics"]
        lines.append(
            f"| {method} | {s['success_mean'][0]:.3f} "
            f"| {s['success_mean'][-1]:.3f} ± {s['success_ci95'][-1]:.3f} "
            f"| {s['change_mean']:+.3f} ± {s['change_ci95']:.3f} | {d['tool_calls']:.2f}; "
            f"{s['warm_eval_tool_calls']:.2f} → {s['final_eval_tool_calls']:.2f} | {d['turns']:.1f} "
            f"| {d['step_group_size']:.2f} | {d['singleton_fraction']:.2f} | {s['cpu_seconds_per_run']:.0f} |"
        )
    return "\n".join(lines)


def plot(result: dict[str, Any], out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for method, s in result["summary"].items():
        mean, half = s["success_mean"], s["success_ci95"]
        ax.plot(s["iterations"], mean, "o-", label=f"{method} (n={len(s['seeds'])})")
        low = [m - h for m, h in zip(mean, half, strict=True)]
        high = [m + h for m, h in zip(mean, half, strict=True)]
        ax.fill_between(s["iterations"], low, high, alpha=0.15)
    ax.set(
        xlabel="RL iteration",
        ylabel="held-out success (mean, 95% CI)",
        ylim=(0, 1),
        title=f"credit assignment on {result['env_id']} (tiny model, CPU)",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="CI size: 1 seed, 2 iterations of 2 x 4, 4 SFT steps"
    )
    parser.add_argument("--env", choices=sorted(ENVS), default="keydoor")
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--eval-every", type=int, default=3)
    parser.add_argument("--eval-episodes", type=int, default=32)
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default: the family's")
    parser.add_argument("--methods", nargs="+", default=None, help="default: the family's")
    parser.add_argument("--jobs", type=int, default=2, help="trainings run at the same time")
    parser.add_argument("--set", action="append", default=[], help="extra config override (repeatable)")
    parser.add_argument(
        "--out",
        default=None,
        help="output path without suffix (default benchmarks/results/credit_learning_ENV)",
    )
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = f"benchmarks/results/credit_learning_{args.env}"
    args.methods = args.methods or DEFAULTS[args.env]["methods"]
    args.seeds = args.seeds or DEFAULTS[args.env]["seeds"]
    if args.quick:
        args.iterations, args.eval_every, args.eval_episodes, args.seeds = 2, 1, 8, [0]
        args.set = [*QUICK[args.env], *args.set]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = run(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result["table"] = table(result["summary"])
    print(result["table"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    plot(result, out.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
