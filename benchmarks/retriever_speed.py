"""Retriever speed: BM25 index build, queries per second (single and batched), HTTP latency.

Usage::

    python benchmarks/retriever_speed.py            # quick: corpora of 10k and 100k passages
    python benchmarks/retriever_speed.py --full     # adds a corpus of 1M passages (minutes, GBs of RAM)

Passages are generated: 100 words each (the length of Search-R1's wiki-18 passages) drawn from a
Zipf-distributed (exponent 1.1) vocabulary of 50,000 made-up words, titled by their first two
words. Queries are 4 words taken from a random passage. Measured per corpus size: the BM25 index build time
(tokenising included), single-query throughput (one ``retrieve([q], 3)`` call per query) and
batched throughput (one call for 256 queries). Over HTTP, ``turngym serve retriever`` runs in its
own process on 127.0.0.1 with the 10k corpus, and an asyncio httpx client keeps 1, 16 or 64
requests in flight (one query, topk 3 each; bounded count) and reports p50/p99 latency and the
request rate. The expert and no-search baselines' EM on the generated knowledge base
close the table. Every in-process timing is the median of ``--repeats`` runs. Prints a markdown table
and writes ``benchmarks/results/retriever_speed.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np

from turngym.envs.search.data import Passage, write_corpus
from turngym.envs.search.env import SearchEnv
from turngym.envs.search.retriever import BM25Retriever
from turngym.envs.search.scoring import tool_productivity

RESULTS = Path(__file__).parent / "results" / "retriever_speed.json"
WORDS_PER_PASSAGE = 100
VOCABULARY = 50_000


def make_vocabulary(seed: int = 0) -> list[str]:
    """50,000 distinct made-up words of 4 to 10 characters."""
    rng = np.random.default_rng(seed)
    letters = rng.integers(ord("a"), ord("z") + 1, size=(VOCABULARY, 9), dtype=np.uint8)
    lengths = rng.integers(3, 10, size=VOCABULARY)
    return [
        bytes(row[:n]).decode() + str(i % 10) for i, (row, n) in enumerate(zip(letters, lengths, strict=True))
    ]


def generate_passages(count: int, seed: int = 0) -> tuple[list[Passage], np.ndarray]:
    """``count`` passages of 100 Zipf-distributed words, and the word ids of each (for queries)."""
    rng = np.random.default_rng(seed)
    vocab = make_vocabulary()
    ids = (rng.zipf(1.1, size=(count, WORDS_PER_PASSAGE)) - 1) % VOCABULARY
    passages = []
    for i, row in enumerate(ids.tolist()):
        words = [vocab[w] for w in row]
        passages.append(Passage(str(i), f'"{words[0]} {words[1]}"\n' + " ".join(words)))
    return passages, ids


def make_queries(ids: np.ndarray, count: int, seed: int = 1) -> list[str]:
    rng = np.random.default_rng(seed)
    vocab = make_vocabulary()
    rows = rng.integers(len(ids), size=count)
    return [" ".join(vocab[w] for w in rng.choice(ids[r], size=4, replace=False)) for r in rows]


def median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def in_process(size: int, repeats: int, rows: list[dict[str, object]]) -> None:
    passages, ids = generate_passages(size)
    build_repeats = repeats if size <= 100_000 else 1
    retriever: list[BM25Retriever] = []
    build = median_time(lambda: retriever.append(BM25Retriever(passages)), build_repeats)
    index = retriever[-1]
    queries = make_queries(ids, 256)
    single = median_time(lambda: [index.retrieve([q], 3) for q in queries[:100]], repeats)
    batched = median_time(lambda: index.retrieve(queries, 3), repeats)
    rows.append({"measure": f"index build, {size:,} passages", "value": build, "unit": "s"})
    rows.append({"measure": f"single queries, {size:,} passages", "value": 100 / single, "unit": "queries/s"})
    rows.append({"measure": f"batched (256), {size:,} passages", "value": 256 / batched, "unit": "queries/s"})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _load(url: str, queries: list[str], concurrency: int, total: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    counter = iter(range(total))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def worker() -> None:
            for i in counter:
                body = {"queries": [queries[i % len(queries)]], "topk": 3, "return_scores": True}
                start = time.perf_counter()
                response = await client.post("/retrieve", json=body)
                latencies.append(time.perf_counter() - start)
                response.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies, time.perf_counter() - start


def over_http(size: int, rows: list[dict[str, object]]) -> None:
    passages, ids = generate_passages(size)
    queries = make_queries(ids, 256)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.jsonl"
        write_corpus(corpus, passages)
        port = _free_port()
        command = [sys.executable, "-c", "from turngym.cli import main; main()", "serve", "retriever"]
        args = ["--corpus", str(corpus), "--index", str(Path(tmp) / "index"), "--port", str(port)]
        server = subprocess.Popen([*command, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError("the retriever server did not start") from None
                    time.sleep(0.3)
            asyncio.run(_load(url, queries, 4, 40))  # warm-up
            for concurrency, total in ((1, 200), (16, 640), (64, 1280)):
                latencies, wall = asyncio.run(_load(url, queries, concurrency, total))
                ms = np.percentile(np.array(latencies) * 1000, [50, 99])
                label = f"HTTP c={concurrency}, {size:,} passages"
                rows.append({"measure": f"{label} p50", "value": float(ms[0]), "unit": "ms"})
                rows.append({"measure": f"{label} p99", "value": float(ms[1]), "unit": "ms"})
                rows.append({"measure": f"{label} rate", "value": total / wall, "unit": "requests/s"})
        finally:
            server.terminate()
            server.wait(timeout=30)


def baselines(rows: list[dict[str, object]]) -> None:
    """EM of the expert and the no-search baseline on the generated KB (in-process BM25, top-3)."""
    for split in ("train", "test"):
        env = SearchEnv(split=split)
        expert, searches, guess = [], [], []
        for task in range(env.num_tasks):
            env.reset(seed=0, options={"task_id": task})
            while True:
                _, _, terminated, truncated, info = env.step(env.expert_action())
                if terminated or truncated:
                    break
            expert.append(info["metrics"]["em"])
            searches.append(info["metrics"]["searches"])
            env.reset(seed=0, options={"task_id": task})
            guess.append(env.step(env.no_search_action())[1])
        label = f"{split} split ({env.num_tasks} questions)"
        rows.append({"measure": f"expert EM, {label}", "value": statistics.mean(expert), "unit": "fraction"})
        rows.append(
            {"measure": f"expert searches, {label}", "value": statistics.mean(searches), "unit": "mean"}
        )
        rows.append(
            {
                "measure": f"expert tool productivity, {label}",
                "value": tool_productivity(expert, searches),
                "unit": "EM/search",
            }
        )
        rows.append(
            {"measure": f"no-search EM, {label}", "value": statistics.mean(guess), "unit": "fraction"}
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="also index 1M passages (minutes, several GB)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows: list[dict[str, object]] = []
    for size in (10_000, 100_000, *((1_000_000,) if args.full else ())):
        in_process(size, args.repeats, rows)
    over_http(10_000, rows)
    baselines(rows)
    print("| measure | value | unit |\n| --- | ---: | --- |")
    for row in rows:
        print(f"| {row['measure']} | {row['value']:,.2f} | {row['unit']} |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg": os.getloadavg()}
    RESULTS.write_text(
        json.dumps({"full": args.full, "repeats": args.repeats, "machine": machine, "rows": rows}, indent=2)
    )


if __name__ == "__main__":
    main()
