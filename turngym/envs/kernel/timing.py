"""Timing in the evaluation child: kernel-call counting, forward-pass timing, speedup and coverage.

CPU: ``perf_counter`` around each forward call; GPU: CUDA events, with ``synchronize`` before and
after. A buffer is written before every timed call to flush the caches (KernelBench's L2 flush),
the first timed call is discarded, and the speedup divides median times. Coverage is the share of
time in the candidate's own kernels: on CPU the wall time inside counted extension/Triton calls,
on GPU the device time of non-library kernels from the profiler.
"""

from __future__ import annotations

import time
from typing import Any

_perf_counter = time.perf_counter  # bound at import, before any candidate code can replace it


class LaunchCounter:
    """Counts calls into custom kernels and the wall time they take."""

    def __init__(self) -> None:
        self.calls = 0
        self.seconds = 0.0

    def wrap(self, fn: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            start = _perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += _perf_counter() - start

        counted.__name__ = getattr(fn, "__name__", "kernel")
        counted.__doc__ = getattr(fn, "__doc__", None)
        counted.__wrapped__ = fn  # type: ignore[attr-defined]  # lets a second patch find the original
        return counted


def sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def _time_forward(model: Any, inputs: list[Any], job: dict[str, Any], device: str) -> list[float]:
    """Milliseconds per forward call: warm-up, then trials (first discarded), cache flushed before each."""
    import torch

    flush = torch.empty(int(job["flush_mb"]) << 18, dtype=torch.float32, device=device)
    times = []
    with torch.no_grad():
        for _ in range(job["num_warmup"]):
            model(*inputs)
        sync(device)
        for _ in range(job["num_perf_trials"] + 1):
            flush.zero_()
            sync(device)
            if device == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                model(*inputs)
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end))
            else:
                t0 = _perf_counter()
                model(*inputs)
                times.append((_perf_counter() - t0) * 1e3)
    return times[1:]


def _stats(times: list[float]) -> dict[str, float]:
    import statistics

    return {
        "mean": statistics.fmean(times),
        "median": statistics.median(times),
        "std": statistics.pstdev(times),
        "min": min(times),
        "max": max(times),
        "trials": float(len(times)),
    }


def measure(
    job: dict[str, Any],
    result: dict[str, Any],
    ref_model: Any,
    new_model: Any,
    inputs: list[Any],
    counter: LaunchCounter,
) -> None:
    """Time the reference and the candidate on ``inputs``; add times, speedup, launches, coverage."""
    import torch

    device = job["device"]
    reference = ref_model
    if job["reference_backend"] == "compile":
        reference = torch.compile(ref_model)
    ref_times = _time_forward(reference, inputs, job, device)
    calls = counter.calls
    new_times = _time_forward(new_model, inputs, job, device)
    result["reference_ms"] = _stats(ref_times)
    result["kernel_ms"] = _stats(new_times)
    # medians: robust to the preemptions of a shared machine (KernelBench divides means)
    result["speedup"] = result["reference_ms"]["median"] / max(result["kernel_ms"]["median"], 1e-9)
    result["kernel_launches"] = counter.calls - calls
    if result["speedup"] > job["recheck_speedup_above"]:  # KernelGYM re-measures speedups above its cap
        ref_again = _stats(_time_forward(reference, inputs, job, device))
        new_again = _stats(_time_forward(new_model, inputs, job, device))
        again = ref_again["median"] / max(new_again["median"], 1e-9)
        if again < result["speedup"]:
            result.update(reference_ms=ref_again, kernel_ms=new_again, speedup=again)
    if device == "cpu":
        result["coverage"] = _cpu_coverage(new_model, inputs, counter, job["num_perf_trials"])
    else:
        result["coverage"] = _device_coverage(new_model, inputs)


def _cpu_coverage(model: Any, inputs: list[Any], counter: LaunchCounter, calls: int) -> float:
    """Share of the forward passes' wall time spent inside the candidate's own kernels (the CPU
    analogue of KernelGYM's time_coverage: time in aten ops and Python glue is the rest)."""
    import torch

    seconds = counter.seconds
    with torch.no_grad():
        start = _perf_counter()
        for _ in range(calls):
            model(*inputs)
        wall = _perf_counter() - start
    return min((counter.seconds - seconds) / max(wall, 1e-9), 1.0)


def _device_coverage(model: Any, inputs: list[Any]) -> float:
    """Share of device time in the candidate's own kernels (not aten/cuBLAS ones), from the profiler."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad(), profile(activities=[ProfilerActivity.CUDA]) as prof:
        model(*inputs)
        torch.cuda.synchronize()
    total = custom = 0.0
    library = (
        "at::",
        "void at::",
        "cublas",
        "cutlass",
        "sm80_",
        "sm90_",
        "ampere_",
        "Memcpy",
        "Memset",
        "gemm",
    )
    for event in prof.key_averages():
        device_us = float(getattr(event, "device_time_total", 0.0))
        if device_us <= 0:
            continue
        total += device_us
        if not any(event.key.startswith(p) or p in event.key for p in library):
            custom += device_us
    return custom / total if total else 0.0
