"""``turngym view`` on a big file: indexing time and memory, page, trajectory and search latency.

Writes about ``--mb`` MB of eval-style trajectory records (2 turns of about 1 kB each per line) as
plain JSONL and as ``.jsonl.gz``, then for each: builds the index (timed; then again under
``tracemalloc`` for the peak of Python allocations), and times through the JSON API (FastAPI's
test client, in process) the last page of the list, single trajectories at random ids (median of
``--repeats``), and one text search (a pass over the whole file).

    python benchmarks/viewer_speed.py              # 100 MB
    python benchmarks/viewer_speed.py --mb 10      # quicker
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import shutil
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

from fastapi.testclient import TestClient

from turngym.viewer import TrajectoryStore, create_viewer_app

WORDS = "north south east west kitchen hall pantry garden cellar attic".split()


def synthetic_record(n: int) -> dict:
    """Eval-style record ``n`` (about 2 kB): its env, outcome and group vary with ``n``, and its
    first action holds the unique word ``needle{n}`` to search for."""
    text = " ".join(WORDS[(n + k) % len(WORDS)] for k in range(150))
    return {
        "env_id": f"turngym/Env{n % 3}-v0",
        "task_id": n,
        "seed": n,
        "stop_reason": "won" if n % 4 == 0 else "lost",
        "won": n % 4 == 0,
        "metadata": {"group": f"{n // 8}:0"},
        "turns": [
            {"observation": text, "action": f"go needle{n}", "reward": float(n % 4 == 0), "info": {}},
            {"observation": text, "action": "look", "reward": 0.0, "info": {}},
        ],
    }


def write_records(path: Path, megabytes: int) -> int:
    """About ``megabytes`` MB of records in ``path``; returns how many lines."""
    size, written, n = megabytes * 1024 * 1024, 0, 0
    with path.open("w") as f:
        while written < size:
            n += 1
            record = synthetic_record(n)
            line = json.dumps(record) + "\n"
            f.write(line)
            written += len(line)
    return n


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def measure(path: Path, lines: int, repeats: int) -> dict[str, float]:
    t0 = time.perf_counter()
    store = TrajectoryStore([path])
    index_s = time.perf_counter() - t0
    assert len(store) == lines and not store.problems
    tracemalloc.start()
    TrajectoryStore([path])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    client = TestClient(create_viewer_app(path, store))
    rng = random.Random(0)

    def last_page() -> None:
        assert client.get("/api/trajectories", params={"offset": lines - 50, "limit": 50}).status_code == 200

    def one_trajectory() -> None:
        assert client.get(f"/api/trajectories/{rng.randrange(lines)}").status_code == 200

    t0 = time.perf_counter()
    found = client.get("/api/trajectories", params={"q": f"needle{lines // 2}"}).json()
    search_s = time.perf_counter() - t0
    assert found["total"] >= 1
    return {
        "file_mb": path.stat().st_size / 2**20,
        "lines": lines,
        "index_s": index_s,
        "index_peak_mib": peak / 2**20,
        "last_page_ms": median_ms(last_page, repeats),
        "trajectory_ms": median_ms(one_trajectory, repeats),
        "search_s": search_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "viewer_speed.json"))
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="viewer-speed-"))
    try:
        plain = folder / "big.jsonl"
        lines = write_records(plain, args.mb)
        packed = folder / "big.jsonl.gz"
        with plain.open("rb") as src, gzip.open(packed, "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst)
        results = {"plain": measure(plain, lines, args.repeats), "gzip": measure(packed, lines, args.repeats)}
    finally:
        shutil.rmtree(folder)
    header = [
        "file",
        "MiB on disk",
        "lines",
        "index s",
        "index peak MiB",
        "last page ms",
        "one trajectory ms",
    ]
    print("| " + " | ".join([*header, "search s"]) + " |")
    print("|---" * (len(header) + 1) + "|")
    for name, r in results.items():
        cells = [name, f"{r['file_mb']:.1f}", r["lines"], f"{r['index_s']:.1f}", f"{r['index_peak_mib']:.1f}"]
        cells += [f"{r['last_page_ms']:.1f}", f"{r['trajectory_ms']:.1f}", f"{r['search_s']:.1f}"]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    Path(args.out).write_text(json.dumps({"megabytes": args.mb, **results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
