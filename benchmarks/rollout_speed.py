"""Rollout speed of the ``hf`` backend on CPU with the tiny model, by batch size.

Usage::

    python benchmarks/rollout_speed.py            # batch sizes 1, 4, 16; 6-turn episodes; 3 runs
    python benchmarks/rollout_speed.py --quick    # batch sizes 1, 4; 3-turn episodes; 2 runs

One run plays ``B`` Maze episodes (tasks ``0..B-1``, seed 0, ``max_turns`` turns) in one lock-step
batch through :func:`turngym.agents.loop.run_batch` in ``full`` context mode, sampling at
temperature 1 with ``--max-new-tokens`` per turn. The untrained tiny model rarely ends its turn
early, so nearly every turn samples the full budget and every episode runs all its turns.
``tokens/s`` is generated (sampled) tokens divided by the run's wall time, which includes prompt
processing, the chat glue and the env steps; ``episodes/s`` is ``B`` divided by the same time.
Each figure is the median of ``--repeats`` runs. The same run also measures the largest batch
with the KV-cache prefix reuse of :class:`~turngym.agents.hf.HFPolicy` switched off, and reports
the ratio. On CPU torch uses one thread (fastest for a model this small on a shared machine);
``--device cuda`` runs the same measurement on a GPU.

Prints a markdown table and writes ``benchmarks/results/rollout_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from turngym.agents.hf import HFPolicy
from turngym.agents.loop import run_batch
from turngym.agents.policy import LoopConfig, SamplingParams
from turngym.agents.tiny import build_tiny, describe
from turngym.envs import make

RESULTS = Path(__file__).parent / "results" / "rollout_speed.json"


@dataclass(frozen=True)
class Row:
    batch_size: int
    prefix_reuse: bool
    tokens_per_s: float
    episodes_per_s: float
    tokens_per_run: int
    turns_per_episode: float
    runs_tokens_per_s: tuple[float, ...]


def measure(policy: HFPolicy, batch: int, turns: int, max_new: int, repeats: int, reuse: bool) -> Row:
    policy.prefix_cache = reuse
    config = LoopConfig(
        sampling=SamplingParams(max_new_tokens=max_new, seed=0), batch_size=batch, max_context_tokens=8192
    )
    jobs = [(task, 0) for task in range(batch)]
    rates, eps, tokens, mean_turns = [], [], 0, 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        trajs = run_batch(
            lambda: make("turngym/Maze-v0", max_turns=turns), policy, policy.tokenizer, jobs, config
        )
        wall = time.perf_counter() - start
        tokens = sum(len(turn.action_ids) for t in trajs for turn in t.turns)
        mean_turns = sum(len(t.turns) for t in trajs) / len(trajs)
        rates.append(tokens / wall)
        eps.append(batch / wall)
    return Row(
        batch, reuse, statistics.median(rates), statistics.median(eps), tokens, mean_turns, tuple(rates)
    )


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{platform.processor() or platform.machine()}, 1 torch thread"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch sizes 1 and 4, 3 turns, 2 runs")
    parser.add_argument("--batch-sizes", default=None, help="comma-separated, e.g. 1,4,16")
    parser.add_argument("--turns", type=int, default=None)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args()
    sizes = [int(x) for x in (args.batch_sizes or ("1,4" if args.quick else "1,4,16")).split(",")]
    turns = args.turns or (3 if args.quick else 6)
    repeats = args.repeats or (2 if args.quick else 3)

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        path = build_tiny(Path(tmp) / "tiny")
        build_s = time.perf_counter() - start
        threads = 1 if args.device == "cpu" else None
        policy = HFPolicy.from_pretrained(path, device=args.device, num_threads=threads)
        model = describe(path)
    params = sum(p.numel() for p in policy.model.parameters())
    rows = [measure(policy, b, turns, args.max_new_tokens, repeats, reuse=True) for b in sizes]
    baseline = measure(policy, sizes[-1], turns, args.max_new_tokens, repeats, reuse=False)
    speedup = rows[-1].tokens_per_s / baseline.tokens_per_s

    print(
        f"tiny model: {params / 1e6:.2f} M parameters, built in {build_s:.1f} s; "
        f"torch {torch.__version__}, {args.device} ({device_name(args.device)})"
    )
    print(
        f"Maze, full context, {turns} turns, {args.max_new_tokens} new tokens per turn, median of {repeats}\n"
    )
    print("| batch | prefix reuse | tokens/s | episodes/s |")
    print("| ---: | :---: | ---: | ---: |")
    for row in [*rows, baseline]:
        reuse = "yes" if row.prefix_reuse else "no"
        print(f"| {row.batch_size} | {reuse} | {row.tokens_per_s:.0f} | {row.episodes_per_s:.2f} |")
    print(f"\nprefix reuse speed-up at batch {sizes[-1]}: {speedup:.2f}x")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "benchmark": "rollout_speed",
                "machine": {
                    "platform": platform.platform(),
                    "cpus": os.cpu_count(),
                    "torch": torch.__version__,
                },
                "model": {**model, "parameters": params, "build_s": build_s},
                "settings": {
                    "turns": turns,
                    "max_new_tokens": args.max_new_tokens,
                    "repeats": repeats,
                    "threads": 1,
                },
                "rows": [asdict(r) for r in rows],
                "no_prefix_reuse": asdict(baseline),
                "prefix_reuse_speedup": speedup,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
