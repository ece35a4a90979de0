"""The kernel evaluation server (``turngym serve kernels``): a job queue in front of worker processes.

Architecture (KernelGYM's, without Redis): FastAPI takes jobs into a bounded in-memory queue;
``workers`` supervisor threads each own one worker process (``spawn``ed; one per GPU or N on a CPU
machine) and hand it one job at a time over a pipe. The worker runs
:func:`~turngym.envs.kernel.evaluate.evaluate`, which runs each evaluation in yet another process
(on CPU forked from the worker's evaluation zygote, started with the worker), so a segfaulting
candidate ends that process only. If a worker process itself dies or runs past the
job's timeout (plus a grace period), its job fails with the reason and the worker is restarted.

Endpoints:

* ``POST /evaluate`` → 202 ``{job_id, status}``; 429 when the queue is full.
* ``POST /evaluate/batch`` (1–100 jobs, all or none) → ``{job_ids}``; 429 when they do not fit.
* ``GET /status/{job_id}`` → status and times; ``GET /result/{job_id}`` → 200 with the result once
  finished (``done`` or ``failed``), 202 with the status before; 404 for an unknown id.
* ``GET /health``, ``GET /metrics`` (counters, queue depth, evaluations per minute, restarts),
  ``GET /workers`` (pid, alive, current job, restarts per worker).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from turngym.envs.kernel.evaluate import EvalConfig, EvalResult, evaluate, start_zygote
from turngym.envs.kernel.zygote import ZygoteError

GRACE_S = 30.0
"""A worker may run this long past a job's own timeout before it is killed and restarted."""


class JobRequest(BaseModel):
    """One evaluation request (KernelGYM's EvaluationRequest, the fields turngym uses)."""

    model_config = ConfigDict(extra="forbid")

    reference_code: str = Field(min_length=10, max_length=200_000)
    kernel_code: str = Field(min_length=10, max_length=100_000)
    backend: Literal["cpp", "triton", "cuda"] = "cpp"
    num_correct_trials: int = Field(3, ge=2, le=20)
    num_perf_trials: int = Field(20, ge=1, le=1000)
    num_warmup: int = Field(3, ge=0, le=100)
    timeout_s: float = Field(180.0, gt=0, le=1800)
    measure_performance: bool = True
    reference_backend: Literal["eager", "compile"] = "eager"
    seed: int = 42

    def config(self, build_dir: str | None) -> EvalConfig:
        fields = self.model_dump(exclude={"reference_code", "kernel_code"})
        return EvalConfig(**fields, build_dir=build_dir)


class BatchRequest(BaseModel):
    """Up to 100 jobs submitted together."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[JobRequest] = Field(min_length=1, max_length=100)


@dataclass
class Job:
    """A job's state on the server."""

    job_id: str
    request: JobRequest
    status: str = "queued"
    submitted_at: float = field(default_factory=time.time)
    started_at: float | None = None
    completed_at: float | None = None
    worker: int | None = None
    result: dict[str, Any] | None = None
    error: str = ""

    def summary(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "status": self.status,
            "submitted_at": self.submitted_at,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
            "worker": self.worker,
        }


def _worker_main(conn: Any) -> None:
    """A worker process: evaluate each ``(reference, candidate, config)`` received, send the result back."""
    with contextlib.suppress(ZygoteError):  # started now, not by the first job; evaluate retries
        start_zygote()
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        reference, candidate, config = message
        try:
            result = evaluate(reference, candidate, EvalConfig(**config))
        except Exception as exc:  # an evaluator bug must not take the worker down with it
            result = EvalResult("crashed", message=f"the worker could not evaluate the job: {exc!r}")
        conn.send(result.to_dict())


class _Worker:
    """One worker process and the supervisor thread that feeds it."""

    def __init__(self, pool: KernelJobPool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.restarts = 0
        self.current: str | None = None
        self.process: Any = None
        self.conn: Any = None
        self._start()
        self.thread = threading.Thread(target=self._loop, name=f"kernel-worker-{index}", daemon=True)
        self.thread.start()

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_worker_main, args=(child,), daemon=True, name=f"kernel-worker-{self.index}"
        )
        self.process.start()
        child.close()
        self.conn = parent

    def _restart(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()
        self.restarts += 1
        with self.pool.lock:
            self.pool.counters["worker_restarts"] += 1
        if not self.pool.stopping.is_set():
            self._start()

    def _loop(self) -> None:
        while not self.pool.stopping.is_set():
            if not self.process.is_alive():  # died while idle
                self._restart()
                continue
            try:
                job = self.pool.pending.get(timeout=0.2)
            except queue.Empty:
                continue
            self.current = job.job_id
            self.pool.mark_running(job, self.index)
            outcome, payload = self._run(job)
            self.current = None
            self.pool.finish(job, outcome, payload)

    def _run(self, job: Job) -> tuple[str, Any]:
        config = asdict(job.request.config(self.pool.build_dir))
        try:
            self.conn.send((job.request.reference_code, job.request.kernel_code, config))
        except (BrokenPipeError, OSError):
            self._restart()
            return "failed", "the worker process was not running; it was restarted"
        deadline = time.monotonic() + job.request.timeout_s + GRACE_S
        while time.monotonic() < deadline:
            try:
                if self.conn.poll(0.2):
                    return "done", self.conn.recv()
            except (EOFError, OSError):
                break
            if not self.process.is_alive():
                break
        self.process.join(timeout=1)  # a broken pipe can be seen before the dead process is reaped
        code = self.process.exitcode
        why = (
            f"the worker process died (exit code {code}) while evaluating this job"
            if code is not None
            else f"the worker ran past the job's timeout plus {GRACE_S:g} s"
        )
        self._restart()
        return "failed", f"{why}; the worker was restarted"

    def info(self) -> dict[str, Any]:
        return {
            "worker": self.index,
            "pid": self.process.pid,
            "alive": self.process.is_alive(),
            "current_job": self.current,
            "restarts": self.restarts,
        }

    def stop(self) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            self.conn.send(None)
        self.process.join(timeout=2)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=2)


class KernelJobPool:
    """The queue, the job table and the workers."""

    def __init__(
        self, workers: int = 2, max_queue: int = 256, build_dir: str | None = None, keep: int = 10_000
    ) -> None:
        if workers < 1 or max_queue < 1:
            raise ValueError(f"workers and max_queue must be >= 1, got {workers} and {max_queue}")
        self.build_dir = build_dir
        self.keep = keep
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.pending: queue.Queue[Job] = queue.Queue(maxsize=max_queue)
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.counters = {"submitted": 0, "completed": 0, "failed": 0, "rejected": 0, "worker_restarts": 0}
        self.eval_seconds = 0.0
        self.started = time.monotonic()
        self.workers = [_Worker(self, i) for i in range(workers)]

    def submit(self, requests: list[JobRequest]) -> list[str] | None:
        """Queue every request, or none (``None``) when they do not all fit."""
        with self.lock:
            if self.pending.maxsize - self.pending.qsize() < len(requests):
                self.counters["rejected"] += len(requests)
                return None
            ids = []
            for request in requests:
                job = Job(uuid.uuid4().hex, request)
                self.jobs[job.job_id] = job
                self.pending.put_nowait(job)
                ids.append(job.job_id)
            self.counters["submitted"] += len(ids)
            while len(self.jobs) > self.keep:
                oldest = next(iter(self.jobs))
                if self.jobs[oldest].status in ("queued", "running"):
                    break
                self.jobs.popitem(last=False)
            return ids

    def mark_running(self, job: Job, worker: int) -> None:
        with self.lock:
            job.status, job.started_at, job.worker = "running", time.time(), worker

    def finish(self, job: Job, outcome: str, payload: Any) -> None:
        with self.lock:
            job.completed_at = time.time()
            job.status = outcome
            if outcome == "done":
                job.result = payload
                self.counters["completed"] += 1
                self.eval_seconds += float(payload.get("wall_s", 0.0))
            else:
                job.error = str(payload)
                self.counters["failed"] += 1

    def get(self, job_id: str) -> Job:
        with self.lock:
            job = self.jobs.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id!r} (unknown, or dropped after {self.keep} newer jobs)")
        return job

    def metrics(self) -> dict[str, Any]:
        with self.lock:
            running = sum(j.status == "running" for j in self.jobs.values())
            done = self.counters["completed"]
            minutes = (time.monotonic() - self.started) / 60
            return {
                **self.counters,
                "queued": self.pending.qsize(),
                "running": running,
                "workers": len(self.workers),
                "workers_alive": sum(w.process.is_alive() for w in self.workers),
                "evaluations_per_minute": done / minutes if minutes > 0 else 0.0,
                "mean_eval_s": self.eval_seconds / done if done else 0.0,
            }

    def close(self) -> None:
        self.stopping.set()
        for worker in self.workers:
            worker.thread.join(timeout=2)
            worker.stop()


def create_kernel_app(pool: KernelJobPool) -> FastAPI:
    """The FastAPI app around ``pool`` (the caller owns the pool and closes it)."""
    app = FastAPI(title="turngym kernel evaluation server")

    def busy(count: int) -> JSONResponse:
        detail = f"the job queue is full ({pool.pending.maxsize} jobs); retry later"
        return JSONResponse({"detail": detail, "jobs": count}, status_code=429)

    @app.post("/evaluate", status_code=202)
    def submit(request: JobRequest) -> Any:
        ids = pool.submit([request])
        return busy(1) if ids is None else {"job_id": ids[0], "status": "queued"}

    @app.post("/evaluate/batch", status_code=202)
    def submit_batch(batch: BatchRequest) -> Any:
        ids = pool.submit(batch.jobs)
        return busy(len(batch.jobs)) if ids is None else {"job_ids": ids}

    @app.get("/status/{job_id}")
    def status(job_id: str) -> dict[str, Any]:
        return pool.get(job_id).summary()

    @app.get("/result/{job_id}")
    def result(job_id: str) -> Any:
        job = pool.get(job_id)
        if job.status in ("queued", "running"):
            return JSONResponse(job.summary(), status_code=202)
        return {**job.summary(), "result": job.result, "error": job.error}

    @app.get("/health")
    def health() -> dict[str, Any]:
        metrics = pool.metrics()
        return {"status": "ok", **{k: metrics[k] for k in ("workers", "workers_alive", "queued", "running")}}

    @app.get("/metrics")
    def metrics() -> dict[str, Any]:
        return pool.metrics()

    @app.get("/workers")
    def workers() -> list[dict[str, Any]]:
        return [w.info() for w in pool.workers]

    return app
