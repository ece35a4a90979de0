"""WebShop speed and baseline success: search and click steps per second, index build time, expert/random.

Usage::

    python benchmarks/webshop_speed.py            # quick: index for 1k and 10k products
    python benchmarks/webshop_speed.py --full     # index for 1k and 100k products

Every timing is the median of ``--repeats`` runs. Steps are measured on the default generated
catalog (3,000 products); index builds use a fresh temporary cache so nothing is reused. Prints a
markdown table and writes ``benchmarks/results/webshop_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from turngym.agents.baselines import run_episode
from turngym.envs.webshop.catalog import build_catalog
from turngym.envs.webshop.env import WebShopEnv
from turngym.envs.webshop.expert import instruction_query
from turngym.envs.webshop.generate import generate_records
from turngym.envs.webshop.search import ProductSearch

RESULTS = Path(__file__).parent / "results" / "webshop_speed.json"


def index_seconds(num_products: int, repeats: int) -> tuple[float, float]:
    """Median seconds to build the index in an empty cache, and to load it back from the cache."""
    items, attributes, human = generate_records(num_products, seed=1)
    products = build_catalog(items, attributes, human).products
    builds, loads = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as cache:
            start = time.perf_counter()
            ProductSearch(products, Path(cache))
            builds.append(time.perf_counter() - start)
            start = time.perf_counter()
            assert ProductSearch(products, Path(cache)).loaded_from_cache
            loads.append(time.perf_counter() - start)
    return statistics.median(builds), statistics.median(loads)


def steps_per_second(env: WebShopEnv, kind: str, steps: int, repeats: int) -> float:
    """Median steps/s of ``search[...]`` steps or of click steps (results pages, products, options)."""
    rates = []
    for r in range(repeats):
        count, elapsed = 0, 0.0
        task = 0
        while count < steps:
            env.reset(seed=r, options={"task_id": task % env.num_tasks})
            task += 1
            query = f"search[{instruction_query(env.shop.goal.instruction_text)}]"  # type: ignore[union-attr]
            if kind == "search":
                start = time.perf_counter()
                for _ in range(10):
                    env.step(query)
                elapsed += time.perf_counter() - start
                count += 10
                continue
            env.step(query)
            rng = np.random.default_rng(task)
            start = time.perf_counter()
            for _ in range(12):
                actions = env.admissible_actions() or [query]
                buyable = [a for a in actions if a != "click[buy now]"]
                _, _, terminated, truncated, _ = env.step(buyable[int(rng.integers(len(buyable)))])
                count += 1
                if terminated or truncated:
                    break
            elapsed += time.perf_counter() - start
        rates.append(count / elapsed)
    return statistics.median(rates)


def success(env: WebShopEnv, agent: str, episodes: int) -> tuple[float, float]:
    trajectories = [run_episode(env, "webshop", agent, seed=k, task_id=k) for k in range(episodes)]
    return (
        float(np.mean([t.won for t in trajectories])),
        float(np.mean([sum(turn.reward for turn in t.turns) for t in trajectories])),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="index 100k products instead of 10k")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300, help="steps per timing run")
    args = parser.parse_args()

    rows: list[tuple[str, float, str]] = []
    for n in (1_000, 100_000 if args.full else 10_000):
        build, load = index_seconds(n, 1 if n > 10_000 else args.repeats)
        rows.append((f"index build, {n:,} products", build, "s"))
        rows.append((f"index load from the disk cache, {n:,} products", load, "s"))
    with tempfile.TemporaryDirectory() as cache:
        env = WebShopEnv(split="test", cache_dir=cache)
        rows.append(("search steps", steps_per_second(env, "search", args.steps, args.repeats), "steps/s"))
        rows.append(("click steps", steps_per_second(env, "click", args.steps, args.repeats), "steps/s"))
        episodes = env.num_tasks
        for agent in ("expert", "random"):
            rate, score = success(env, agent, episodes)
            rows.append((f"{agent} success, test split ({episodes} goals)", rate, "fraction"))
            rows.append((f"{agent} mean score, test split", score, "score"))

    print("| measure | value | unit |\n| --- | --- | --- |")
    for name, value, unit in rows:
        print(f"| {name} | {value:.3g} | {unit} |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "full": args.full,
                "repeats": args.repeats,
                "rows": [{"measure": n, "value": v, "unit": u} for n, v, u in rows],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
