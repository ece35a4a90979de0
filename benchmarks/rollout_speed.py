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
the ratio. On CPU torch uses ``--threads`` threads (default 1: fastest for a model this small on
a shared machine); ``--device cuda`` runs the same measurement on a GPU.

Lock-step vs asynchronous (``--parts async``; both parts run by default), on the same episodes
(same jobs and seeds) through :func:`turngym.agents.loop.run_batch` and
:func:`turngym.agents.async_loop.run_episodes`:

* ``sleepy``: an env with short prompts whose ``step`` sleeps 20 ms (4 turns), 64 episodes, with
  the ``random`` policy
  (random admissible actions, no model) and ``hf:tiny`` (4 new tokens per turn). Lock-step runs
  them as one batch of 64 (its env steps one after another); asynchronous as 64 episodes in
  flight, env steps in the thread pool. Episodes/s.
* ``varied``: Maze whose turn limit is 16 for one task in eight and 2 for the rest, 64 episodes,
  ``hf:tiny`` (16 new tokens per turn). Lock-step in batches of 16 (each batch lasts as long as
  its longest episode), asynchronous with 16 slots that refill. Sampled tokens/s.
* ``code``: Code-v0 with the local sandbox (its 2 pooled workers), 16 episodes of the ``expert``
  policy (its solution is run on the hidden tests); lock-step batch of 16 vs 16 in flight.

With ``hf:tiny`` two more engines run the same jobs asynchronously with ``max_wait_s`` 5 ms (a
call starts without waiting for every episode): ``timed`` keeps every call whole, ``continuous``
lets requests join its running decode and completions leave it as they finish. Each case runs its
engines alternately ``--repeats`` times and reports each engine's median.

Prints markdown tables and writes ``benchmarks/results/rollout_speed.json`` (a run of one part
keeps the other part's results in the file).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from turngym.agents.async_loop import AsyncSettings, run_episodes
from turngym.agents.hf import HFPolicy
from turngym.agents.loop import run_batch
from turngym.agents.policy import LoopConfig, Policy, SamplingParams
from turngym.agents.scripted import ExpertPolicy, RandomPolicy
from turngym.agents.tiny import build_tiny, describe
from turngym.envs import make
from turngym.envs.core import StepOutcome, TextEnv
from turngym.envs.toy.maze import MazeEnv
from turngym.trajectory import Trajectory

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


class SleepyEnv(TextEnv):
    """Short prompts, and every step first sleeps ``delay_s``: the time goes to waiting on the env
    (a sandbox run, a page load, a remote call), not to the model."""

    def __init__(self, delay_s: float = 0.02, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.delay_s = delay_s

    @property
    def num_tasks(self) -> int:
        return 1_000_000

    @property
    def system_prompt(self) -> str:
        return "Answer yes or no."

    def admissible_actions(self) -> list[str] | None:
        return ["yes", "no"]

    def _reset(self, task_id: Any) -> str:
        return f"Question {task_id}?"

    def _step(self, action: str) -> StepOutcome:
        time.sleep(self.delay_s)
        return StepOutcome("Next question?", reward=float(action == "yes"))


class VariedMaze(MazeEnv):
    """Maze whose turn limit depends on the task: ``long_turns`` for one task in eight, else 2."""

    def __init__(self, long_turns: int = 16, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.long_turns = long_turns

    def _reset(self, task_id: object) -> str:
        self.max_turns = self.long_turns if int(task_id) % 8 == 0 else 2  # type: ignore[call-overload]
        return super()._reset(task_id)


@dataclass(frozen=True)
class Comparison:
    case: str
    agent: str
    engine: str
    episodes: int
    wall_s: float
    episodes_per_s: float
    tokens_per_s: float
    turns: int
    runs_wall_s: tuple[float, ...]


def compare(
    case: str,
    agent: str,
    factory: Any,
    policy: Policy,
    tokenizer: Any,
    jobs: list,
    config: LoopConfig,
    slots: int,
    repeats: int,
) -> list[Comparison]:
    """The same jobs lock-step (batches of ``slots``), asynchronous (``slots`` in flight) and, for
    ``hf``, asynchronous with ``max_wait_s`` 5 ms in whole calls (``timed``) and with continuous
    batching (requests join running decodes), alternating ``repeats`` times; each engine's row is
    its median run."""
    hf = isinstance(policy, HFPolicy)
    engines = ("lockstep", "async", "timed", "continuous") if hf else ("lockstep", "async")
    walls: dict[str, list[float]] = {engine: [] for engine in engines}
    trajs: dict[str, list[Trajectory]] = {}
    for _ in range(repeats):
        for engine in engines:
            start = time.perf_counter()
            if engine == "lockstep":
                trajs[engine] = run_batch(factory, policy, tokenizer, jobs, replace(config, batch_size=slots))
            else:
                wait = None if engine == "async" else 0.005
                settings = AsyncSettings(slots, max_wait_s=wait, continuous=engine == "continuous")
                trajs[engine] = run_episodes(factory, policy, tokenizer, jobs, config, settings)
            walls[engine].append(time.perf_counter() - start)
    return [_comparison(case, agent, engine, trajs[engine], walls[engine]) for engine in walls]


def _comparison(
    case: str, agent: str, engine: str, trajs: list[Trajectory], walls: list[float]
) -> Comparison:
    tokens = sum(len(turn.action_ids) for t in trajs for turn in t.turns)
    turns = sum(len(t.turns) for t in trajs)
    wall = statistics.median(walls)
    return Comparison(
        case, agent, engine, len(trajs), wall, len(trajs) / wall, tokens / wall, turns, tuple(walls)
    )


def async_part(policy: HFPolicy, quick: bool, repeats: int) -> list[Comparison]:
    tok = policy.tokenizer
    episodes = 16 if quick else 64
    rows: list[Comparison] = []
    sleepy = LoopConfig(sampling=SamplingParams(max_new_tokens=4, seed=0), max_context_tokens=8192)
    jobs = [(task, 0) for task in range(episodes)]
    sleepy_env = partial(SleepyEnv, max_turns=4)
    for agent, sampler in (("random", RandomPolicy(tok, seed=0)), ("hf:tiny", policy)):
        rows += compare("sleepy", agent, sleepy_env, sampler, tok, jobs, sleepy, episodes, repeats)
    varied = LoopConfig(sampling=SamplingParams(max_new_tokens=16, seed=0), max_context_tokens=8192)
    rows += compare(
        "varied", "hf:tiny", lambda: VariedMaze(max_turns=16), policy, tok, jobs, varied, 16, repeats
    )
    code = LoopConfig(sampling=SamplingParams(max_new_tokens=4096, seed=0), max_context_tokens=32768)
    code_jobs = [(task, 0) for task in range(8 if quick else 16)]
    rows += compare(
        "code",
        "expert",
        lambda: make("turngym/Code-v0"),
        ExpertPolicy(tok),
        tok,
        code_jobs,
        code,
        16,
        repeats,
    )
    return rows


def print_async(rows: list[Comparison]) -> dict[str, float]:
    print("\n| case | agent | engine | episodes | wall s | episodes/s | tokens/s |")
    print("| :--- | :--- | :--- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r.case} | {r.agent} | {r.engine} | {r.episodes} | {r.wall_s:.2f} | "
            f"{r.episodes_per_s:.2f} | {r.tokens_per_s:.0f} |"
        )
    ratios = {}
    locks = {(r.case, r.agent): r for r in rows if r.engine == "lockstep"}
    for fast in rows:
        lock = locks[fast.case, fast.agent]
        if fast is lock:
            continue
        key = f"{fast.case}/{fast.agent}" + ("" if fast.engine == "async" else f"/{fast.engine}")
        ratios[f"{key}/episodes_per_s"] = fast.episodes_per_s / lock.episodes_per_s
        ratios[f"{key}/tokens_per_s"] = fast.tokens_per_s / lock.tokens_per_s if lock.tokens_per_s else 0.0
        print(f"{key}: {fast.engine} / lock-step = {ratios[f'{key}/episodes_per_s']:.2f}x episodes/s, "
              f"{ratios[f'{key}/tokens_per_s']:.2f}x tokens/s")  # fmt: skip
    return ratios


def device_name(device: str, threads: int) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{platform.processor() or platform.machine()}, {threads} torch thread{'s' * (threads > 1)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch sizes 1 and 4, 3 turns, 2 runs")
    parser.add_argument("--parts", default="batch,async", help="batch (by batch size), async, or both")
    parser.add_argument("--batch-sizes", default=None, help="comma-separated, e.g. 1,4,16")
    parser.add_argument("--turns", type=int, default=None)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the CPU policy")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if not parts or parts - {"batch", "async"}:
        parser.error(f"--parts takes batch, async or both, got {args.parts!r}")
    sizes = [int(x) for x in (args.batch_sizes or ("1,4" if args.quick else "1,4,16")).split(",")]
    turns = args.turns or (3 if args.quick else 6)
    repeats = args.repeats or (2 if args.quick else 3)

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        path = build_tiny(Path(tmp) / "tiny")
        build_s = time.perf_counter() - start
        threads = args.threads if args.device == "cpu" else None
        policy = HFPolicy.from_pretrained(path, device=args.device, num_threads=threads)
        model = describe(path)
    params = sum(p.numel() for p in policy.model.parameters())
    print(
        f"tiny model: {params / 1e6:.2f} M parameters, built in {build_s:.1f} s; "
        f"torch {torch.__version__}, {args.device} ({device_name(args.device, args.threads)})"
    )
    report = json.loads(args.out.read_text()) if args.out.is_file() else {}
    report.update(
        {
            "benchmark": "rollout_speed",
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__},
            "model": {**model, "parameters": params, "build_s": build_s},
        }
    )
    if "batch" in parts:
        report.update(batch_part(policy, sizes, turns, args.max_new_tokens, repeats, args.threads))
    if "async" in parts:
        rows = async_part(policy, args.quick, repeats)
        report["async_vs_lockstep"] = {
            "threads": args.threads,
            "repeats": repeats,
            "rows": [asdict(r) for r in rows],
            "ratios": print_async(rows),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


def batch_part(
    policy: HFPolicy, sizes: list[int], turns: int, max_new: int, repeats: int, threads: int
) -> dict[str, Any]:
    rows = [measure(policy, b, turns, max_new, repeats, reuse=True) for b in sizes]
    baseline = measure(policy, sizes[-1], turns, max_new, repeats, reuse=False)
    policy.prefix_cache = True  # the async part (next) measures the sampler as it runs by default
    speedup = rows[-1].tokens_per_s / baseline.tokens_per_s
    print(f"Maze, full context, {turns} turns, {max_new} new tokens per turn, median of {repeats}\n")
    print("| batch | prefix reuse | tokens/s | episodes/s |")
    print("| ---: | :---: | ---: | ---: |")
    for row in [*rows, baseline]:
        reuse = "yes" if row.prefix_reuse else "no"
        print(f"| {row.batch_size} | {reuse} | {row.tokens_per_s:.0f} | {row.episodes_per_s:.2f} |")
    print(f"\nprefix reuse speed-up at batch {sizes[-1]}: {speedup:.2f}x")
    return {
        "settings": {"turns": turns, "max_new_tokens": max_new, "repeats": repeats, "threads": threads},
        "rows": [asdict(r) for r in rows],
        "no_prefix_reuse": asdict(baseline),
        "prefix_reuse_speedup": speedup,
    }


if __name__ == "__main__":
    main()
