"""Counters and a latency histogram for the env server, rendered in Prometheus' text format (0.0.4).

Everything is updated from the server's event loop only, so no lock is needed. A histogram keeps
one cumulative count per upper bound ``le`` (Prometheus semantics: bucket ``le=b`` counts the
observations ``<= b``; ``+Inf`` counts all of them), plus their sum.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds of the latency histogram's buckets, in seconds."""

ERROR_KINDS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "unknown_session",
    409: "reset_needed",
    413: "body_too_large",
    422: "invalid_request",
    429: "sessions_full",
    500: "env_failed",
    503: "overloaded",
    504: "deadline_exceeded",
}
"""The ``kind`` label of ``turngym_env_errors_total`` for each error status."""


class Histogram:
    """Cumulative bucket counts of observed durations."""

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS_S) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.total = 0
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.total += 1
        self.sum += seconds
        for i, bound in enumerate(self.bounds):
            if seconds <= bound:
                self.counts[i] += 1

    def lines(self, name: str, labels: str) -> list[str]:
        out = [
            f'{name}_bucket{{{labels},le="{b:g}"}} {c}' for b, c in zip(self.bounds, self.counts, strict=True)
        ]
        out.append(f'{name}_bucket{{{labels},le="+Inf"}} {self.total}')
        out.append(f"{name}_sum{{{labels}}} {self.sum:.6f}")
        out.append(f"{name}_count{{{labels}}} {self.total}")
        return out


class ServerMetrics:
    """What ``GET /metrics`` reports."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.latency: dict[str, Histogram] = {}
        self.sessions_created = 0
        self.sessions_reaped = 0

    def record(self, op: str, status: int, seconds: float) -> None:
        """One finished call ``op`` (``reset``, ``step``, ...) that answered ``status``."""
        if status >= 400:
            self.errors[ERROR_KINDS.get(status, f"http_{status}")] += 1
            return
        self.calls[op] += 1
        self.latency.setdefault(op, Histogram()).observe(seconds)

    def render(self, gauges: Mapping[str, float]) -> str:
        """The Prometheus text exposition; ``gauges`` are current values (open sessions, ...)."""
        lines: list[str] = []
        for name, value in gauges.items():
            lines += [f"# TYPE turngym_env_{name} gauge", f"turngym_env_{name} {value:g}"]
        lines += ["# TYPE turngym_env_sessions_created_total counter"]
        lines += [f"turngym_env_sessions_created_total {self.sessions_created}"]
        lines += ["# TYPE turngym_env_sessions_reaped_total counter"]
        lines += [f"turngym_env_sessions_reaped_total {self.sessions_reaped}"]
        lines += ["# TYPE turngym_env_calls_total counter"]
        lines += [f'turngym_env_calls_total{{op="{op}"}} {n}' for op, n in sorted(self.calls.items())]
        lines += ["# TYPE turngym_env_errors_total counter"]
        lines += [f'turngym_env_errors_total{{kind="{k}"}} {n}' for k, n in sorted(self.errors.items())]
        lines += ["# TYPE turngym_env_call_seconds histogram"]
        for op, histogram in sorted(self.latency.items()):
            lines += histogram.lines("turngym_env_call_seconds", f'op="{op}"')
        return "\n".join(lines) + "\n"
