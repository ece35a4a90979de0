"""A 100 MB JSONL: indexed by streaming (memory stays far below the file's size), paged from the
end, searched, and its malformed lines reported while the rest is served."""

from __future__ import annotations

import importlib.util
import json
import time
import tracemalloc
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from turngym.viewer import TrajectoryStore, create_viewer_app

pytestmark = pytest.mark.slow

SIZE = 100 * 1024 * 1024
SCRIPT = Path(__file__).parents[3] / "benchmarks" / "viewer_speed.py"
_spec = importlib.util.spec_from_file_location("viewer_speed", SCRIPT)
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)  # the benchmark's records: one generator for both


def write_big_jsonl(path: Path) -> tuple[int, list[int]]:
    """About SIZE bytes of eval-style records (about 2 kB each); every 10 000th line is torn.
    Returns the number of lines and the 1-based numbers of the torn ones."""
    written, n, torn = 0, 0, []
    with path.open("w") as f:
        while written < SIZE:
            n += 1
            line = json.dumps(bench.synthetic_record(n))
            if n % 10_000 == 0:
                line, _ = line[: len(line) // 2], torn.append(n)
            f.write(line + "\n")
            written += len(line) + 1
    return n, torn


def test_a_100_mb_file_is_served_page_by_page(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    lines, torn = write_big_jsonl(path)
    assert path.stat().st_size >= SIZE and len(torn) >= 4 and lines < 123_450

    tracemalloc.start()
    started = time.perf_counter()
    store = TrajectoryStore([path])
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(store) == lines
    assert peak < 20 * 1024 * 1024, f"indexing peaked at {peak / 2**20:.1f} MiB for a 100 MiB file"
    print(f"indexed {lines} lines of {path.stat().st_size / 2**20:.0f} MiB in {seconds:.1f} s (traced)")

    assert [p.line for p in store.problems] == torn
    client = TestClient(create_viewer_app(path, store))
    total = lines - len(torn)
    page = client.get("/api/trajectories", params={"offset": total - 3, "limit": 50}).json()
    assert page["total"] == total and [i["task_id"] for i in page["items"]] == [
        str(lines - k) for k in (2, 1, 0)
    ]
    last = client.get(f"/api/trajectories/{lines - 1}").json()
    assert last["turns"][0]["action"] == f"go needle{lines}" and len(last["turns"]) == 2
    assert client.get(f"/api/trajectories/{torn[0] - 1}").status_code == 404
    found = client.get("/api/trajectories", params={"q": "NEEDLE12345", "env": "turngym/Env0-v0"}).json()
    assert [i["task_id"] for i in found["items"]] == [
        "12345"
    ]  # 12345 % 3 == 0; there are fewer than 123450 lines
    won = client.get("/api/trajectories", params={"won": "true", "limit": 2}).json()
    assert won["total"] == sum(1 for n in range(1, lines + 1) if n % 4 == 0 and n not in torn)
