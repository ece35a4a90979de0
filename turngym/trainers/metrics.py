"""Metric sinks of a run: JSONL (one line per iteration), TensorBoard, and the final PNG plot.

Metric names are namespaced: ``rollout/`` (episodes, success, turns, tokens), ``reward/``,
``credit/`` (advantage statistics; GiGPO step-group sizes and singleton fraction), ``loss/``,
``perf/`` (seconds per stage, tokens/s) and ``eval/`` (held-out success with its 95% Wilson
interval). On resume, :class:`MetricsLog` drops the JSONL lines written after the checkpoint it
resumes from, so every iteration appears exactly once.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


class MetricsLog:
    """Append-only JSONL log plus an optional TensorBoard writer."""

    def __init__(self, out_dir: str | Path, *, resume_after: int | None, tensorboard: bool) -> None:
        self.path = Path(out_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if resume_after is not None and self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # a line torn by a kill mid-write
                    continue
                if row.get("iteration", 0) <= resume_after:
                    kept.append(line)
        self.path.write_text("".join(line + "\n" for line in kept))
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(Path(out_dir) / "tensorboard"), purge_step=resume_after)

    def write(self, iteration: int, metrics: dict[str, float]) -> None:
        row = {"iteration": iteration, **{k: _finite(v) for k, v in sorted(metrics.items())}}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        if self._writer is not None:
            for key, value in metrics.items():
                if isinstance(value, int | float) and math.isfinite(value):
                    self._writer.add_scalar(key, value, iteration)
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def _finite(value: Any) -> Any:
    return value if not isinstance(value, float) or math.isfinite(value) else None


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a ``metrics.jsonl``."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_run(rows: list[dict[str, Any]], out_png: str | Path, title: str = "") -> Path:
    """Held-out success (with its 95% interval) and training success/reward against iterations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    train = [r for r in rows if "rollout/success_rate" in r]
    evals = [r for r in rows if "eval/success_rate" in r]
    if evals:
        it = [r["iteration"] for r in evals]
        ax1.plot(it, [r["eval/success_rate"] for r in evals], "o-", label="held-out (eval)")
        ax1.fill_between(it, [r["eval/ci_low"] for r in evals], [r["eval/ci_high"] for r in evals], alpha=0.2)
    if train:
        its = [r["iteration"] for r in train]
        ax1.plot(its, [r["rollout/success_rate"] for r in train], ".-", alpha=0.6, label="training rollouts")
        ax2.plot(its, [r["reward/mean_return"] for r in train], ".-", label="env return")
        ax2.plot(its, [r["reward/shaped_mean"] for r in train], ".-", label="shaped")
    ax1.set(xlabel="iteration", ylabel="success rate", ylim=(0, 1), title=title or "success")
    ax2.set(xlabel="iteration", ylabel="mean episode reward", title="reward")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png
