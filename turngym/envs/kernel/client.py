"""httpx client of the kernel evaluation server: submit a job, poll for its result.

A full queue (429) is waited out with backoff up to ``wait_s``; a job the server could not finish
(its worker died or hung) comes back as an :class:`EvalResult` with status ``crashed``, like a
local evaluation whose process died. Server and transport failures raise
:class:`~turngym.errors.ToolServerError`.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import httpx

from turngym.envs.kernel.evaluate import EvalConfig, EvalResult
from turngym.errors import ToolServerError
from turngym.http import send

_REQUEST_FIELDS = (
    "backend", "num_correct_trials", "num_perf_trials", "num_warmup", "timeout_s", "measure_performance",
    "reference_backend", "seed",
)  # fmt: skip


class KernelEvalClient:
    """Evaluates candidates on a ``turngym serve kernels`` server."""

    def __init__(
        self,
        url: str,
        *,
        poll_s: float = 0.2,
        wait_s: float = 3600.0,
        retries: int = 3,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.poll_s = poll_s
        self.wait_s = wait_s
        self.retries = retries
        self._http = httpx.Client(base_url=self.url, timeout=30.0, transport=transport)

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return send(
            self._http, method, path, retries=self.retries, backoff_s=0.2, error=ToolServerError,
            server="the kernel evaluation server", **kwargs,
        )  # fmt: skip

    def submit(self, reference: str, candidate: str, config: EvalConfig) -> str:
        """Queue one evaluation; returns its job id (waits while the queue is full)."""
        fields = {k: v for k, v in asdict(config).items() if k in _REQUEST_FIELDS}
        body = {"reference_code": reference, "kernel_code": candidate, **fields}
        deadline = time.monotonic() + self.wait_s
        delay = self.poll_s
        while True:
            response = self._request("POST", "/evaluate", json=body)
            if response.status_code != 429:
                break
            if time.monotonic() > deadline:
                raise ToolServerError(
                    f"the kernel evaluation server's queue stayed full for {self.wait_s:g} s"
                )
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        if response.status_code != 202:
            raise ToolServerError(
                f"the kernel evaluation server refused the job ({response.status_code}): {response.text}"
            )
        return str(response.json()["job_id"])

    def result(self, job_id: str, *, timeout_s: float) -> EvalResult:
        """Wait for a job's result."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            response = self._request("GET", f"/result/{job_id}")
            if response.status_code == 200:
                data = response.json()
                if data["status"] == "done":
                    return EvalResult.from_dict(
                        {**data["result"], "extra": {"job_id": job_id, "worker": data["worker"]}}
                    )
                return EvalResult("crashed", message=f"the evaluation server failed the job: {data['error']}")
            if response.status_code != 202:
                raise ToolServerError(
                    f"GET /result/{job_id} answered {response.status_code}: {response.text}"
                )
            time.sleep(self.poll_s)
        raise ToolServerError(f"job {job_id} did not finish within {timeout_s:g} s")

    def evaluate(self, reference: str, candidate: str, config: EvalConfig) -> EvalResult:
        """Submit and wait (the job's timeout plus the server's grace period and queueing time)."""
        job_id = self.submit(reference, candidate, config)
        return self.result(job_id, timeout_s=self.wait_s + config.timeout_s)

    def health(self) -> dict[str, Any]:
        """``GET /health``."""
        return dict(self._request("GET", "/health").json())

    def close(self) -> None:
        self._http.close()
