"""Run dashboards: one PNG per training signal against iterations, drawn from ``metrics.jsonl``.

:data:`CHARTS` lists them: success (training rollouts, and held-out with its 95% interval),
reward, KL, clip fraction, entropy, tool calls, step-group sizes and the singleton fraction. A
chart whose metrics a run did not log (no KL term, an env without tools) is left out rather than
drawn empty. The trainer writes them to ``dashboard/<name>.png`` at the end of every run; ``turngym
view`` draws the same charts from the metrics of a run that is still going.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DASHBOARD_DIR = "dashboard"
"""The folder of a run directory that holds the PNGs."""


@dataclass(frozen=True)
class Chart:
    """One dashboard panel: the metrics it plots (left axis) and, optionally, on a right axis."""

    name: str
    title: str
    ylabel: str
    series: tuple[tuple[str, str], ...]
    """``(metric, legend label)`` pairs on the left axis."""
    right: tuple[tuple[str, str], ...] = ()
    """``(metric, legend label)`` pairs on a second axis (another scale)."""
    right_label: str = ""
    unit_range: bool = False
    """The left axis is a fraction in [0, 1]."""

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(key for key, _ in (*self.series, *self.right))


CHARTS: tuple[Chart, ...] = (
    Chart(
        "success",
        "success rate",
        "success rate",
        (("rollout/success_rate", "training rollouts"), ("eval/success_rate", "held-out (95% CI)")),
        unit_range=True,
    ),
    Chart(
        "reward",
        "episode reward",
        "mean episode reward",
        (("reward/mean_return", "env return"), ("reward/shaped_mean", "shaped")),
    ),
    Chart(
        "kl",
        "KL divergence",
        "KL",
        (("loss/approx_kl", "to the sampling policy (approx.)"), ("loss/kl_ref", "to the warm start")),
    ),
    Chart(
        "clip_fraction", "clip fraction", "fraction of tokens clipped", (("loss/clip_fraction", "clipped"),)
    ),
    Chart(
        "entropy",
        "policy entropy",
        "nats per token",
        (("loss/entropy", "entropy (update)"), ("rollout/token_nll", "−log p of sampled tokens")),
    ),
    Chart(
        "tool_calls",
        "tool calls and turns per episode",
        "per episode",
        (("rollout/env_tool_calls", "tool calls"), ("rollout/mean_turns", "turns")),
    ),
    Chart(
        "step_groups",
        "GiGPO step groups",
        "mean steps per step group",
        (("credit/step_group_size_mean", "mean size"),),
        right=(("credit/step_groups", "step groups per iteration"),),
        right_label="step groups",
    ),
    Chart(
        "singleton_fraction",
        "singleton step groups",
        "fraction of step groups with one step",
        (("credit/singleton_fraction", "singletons"),),
        unit_range=True,
    ),
)
"""The dashboard, in display order."""


def chart_names() -> list[str]:
    return [chart.name for chart in CHARTS]


def get_chart(name: str) -> Chart:
    """The chart called ``name``; ``KeyError`` naming the known ones otherwise."""
    for chart in CHARTS:
        if chart.name == name:
            return chart
    raise KeyError(f"no chart named {name!r}; charts: {chart_names()}")


def _points(rows: Sequence[Mapping[str, Any]], key: str) -> tuple[list[int], list[float]]:
    found = [(int(r["iteration"]), float(r[key])) for r in rows if r.get(key) is not None]
    return [i for i, _ in found], [v for _, v in found]


def has_data(rows: Sequence[Mapping[str, Any]], chart: Chart) -> bool:
    """Whether any row logged any of ``chart``'s metrics."""
    return any(r.get(key) is not None for r in rows for key in chart.metrics)


def render_chart(rows: Sequence[Mapping[str, Any]], chart: Chart, title: str = "") -> bytes:
    """``chart`` drawn from metric ``rows`` (``metrics.jsonl`` lines) as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for key, label in chart.series:
        its, values = _points(rows, key)
        if not its:
            continue
        marker = "o-" if key.startswith("eval/") else ".-"
        ax.plot(its, values, marker, label=label)
        if key == "eval/success_rate":
            _, low = _points(rows, "eval/ci_low")
            _, high = _points(rows, "eval/ci_high")
            if len(low) == len(its) == len(high):
                ax.fill_between(its, low, high, alpha=0.2)
    handles, labels = ax.get_legend_handles_labels()
    if chart.right:
        twin = ax.twinx()
        for key, label in chart.right:
            its, values = _points(rows, key)
            if its:
                twin.plot(its, values, "x--", color="tab:gray", label=label)
        twin.set_ylabel(chart.right_label)
        more_handles, more_labels = twin.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    ax.set(xlabel="iteration", ylabel=chart.ylabel, title=title or chart.title)
    if chart.unit_range:
        ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    if handles:
        ax.legend(handles, labels, loc="best", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def write_dashboards(rows: Sequence[Mapping[str, Any]], out_dir: str | Path) -> list[Path]:
    """Write ``out_dir/<name>.png`` for every chart with data; returns the paths in chart order."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for chart in CHARTS:
        if has_data(rows, chart):
            path = out / f"{chart.name}.png"
            path.write_bytes(render_chart(rows, chart))
            written.append(path)
    return written
