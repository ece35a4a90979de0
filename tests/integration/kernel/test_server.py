"""The kernel evaluation server under failure: a worker killed mid-job, a segfaulting candidate,
a full queue, bad requests; and KernelGym-v0 evaluating through it over HTTP."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.servers import running
from turngym.envs.kernel.client import KernelEvalClient
from turngym.envs.kernel.cpp_library import CPP_PRELUDE
from turngym.envs.kernel.env import KernelGymEnv, fenced
from turngym.envs.kernel.evaluate import EvalConfig
from turngym.envs.kernel.server import KernelJobPool, create_kernel_app
from turngym.envs.kernel.tasks import builtin_tasks, find_task

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RELU = find_task(builtin_tasks(), "1_ReLU")
HANG = (
    CPP_PRELUDE
    + "class ModelNew(nn.Module):\n    def forward(self, x):\n        while True:\n            pass\n"
)
SEGFAULT = (
    CPP_PRELUDE + "class ModelNew(nn.Module):\n    def forward(self, x):\n        import ctypes\n"
    "        return ctypes.string_at(0)\n"
)


def job(candidate: str, **fields) -> dict:
    return {"reference_code": RELU.reference, "kernel_code": candidate, "num_perf_trials": 3, **fields}


def wait_for(http: httpx.Client, job_id: str, timeout_s: float = 240) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = http.get(f"/result/{job_id}")
        if response.status_code == 200:
            return response.json()
        assert response.status_code == 202
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish")


@pytest.fixture()
def server() -> Iterator[tuple[KernelJobPool, httpx.Client]]:
    pool = KernelJobPool(workers=1, max_queue=2)
    try:
        with running(create_kernel_app(pool)) as url, httpx.Client(base_url=url, timeout=30) as http:
            yield pool, http
    finally:
        pool.close()


def test_server_survives_a_killed_worker_and_a_segfault(server) -> None:
    _pool, http = server
    hung = http.post("/evaluate", json=job(HANG, timeout_s=120)).json()["job_id"]
    deadline = time.monotonic() + 60
    while http.get(f"/status/{hung}").json()["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    pid = http.get("/workers").json()[0]["pid"]
    os.kill(pid, signal.SIGKILL)
    failed = wait_for(http, hung)
    assert failed["status"] == "failed" and "died" in failed["error"]
    workers = http.get("/workers").json()
    assert workers[0]["restarts"] == 1 and workers[0]["alive"] and workers[0]["pid"] != pid

    crashed = wait_for(http, http.post("/evaluate", json=job(SEGFAULT)).json()["job_id"])
    assert crashed["status"] == "done" and crashed["result"]["status"] == "crashed"
    assert "SIGSEGV" in crashed["result"]["message"]

    ok = wait_for(http, http.post("/evaluate", json=job(RELU.solutions["cpp"][-1])).json()["job_id"])
    assert ok["result"]["status"] == "correct"
    health = http.get("/health").json()
    assert health == {"status": "ok", "workers": 1, "workers_alive": 1, "queued": 0, "running": 0}
    metrics = http.get("/metrics").json()
    assert metrics["completed"] == 2 and metrics["failed"] == 1 and metrics["worker_restarts"] == 1


def test_full_queue_answers_429_and_bad_requests_422(server) -> None:
    _pool, http = server
    first = http.post("/evaluate", json=job(HANG, timeout_s=30)).json()["job_id"]
    deadline = time.monotonic() + 60
    while http.get(f"/status/{first}").json()["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    batch = http.post("/evaluate/batch", json={"jobs": [job(HANG, timeout_s=30)] * 2})
    assert batch.status_code == 202 and len(batch.json()["job_ids"]) == 2
    full = http.post("/evaluate", json=job(HANG))
    assert full.status_code == 429 and "queue is full" in full.json()["detail"]
    assert http.get("/metrics").json()["rejected"] == 1
    bad = http.post("/evaluate", json={**job(HANG), "backend": "fortran"})
    assert bad.status_code == 422 and "backend" in bad.text
    extra = http.post("/evaluate", json={**job(HANG), "surprise": 1})
    assert extra.status_code == 422
    assert http.get("/result/nope").status_code == 404


def test_env_evaluates_over_http(server) -> None:
    _, http = server
    url = str(http.base_url).rstrip("/")
    env = KernelGymEnv(server_url=url, num_perf_trials=3)
    env.reset(seed=0, options={"task_id": 0})
    _, reward, _, _, info = env.step(env.expert_action())
    assert info["metrics"]["correct"] == 1.0 and reward >= 0.5
    client = KernelEvalClient(url)
    result = client.evaluate(RELU.reference, fenced("x"), EvalConfig())
    assert result.status == "compile_error"
    assert client.health()["status"] == "ok"
    client.close()
    env.close()
