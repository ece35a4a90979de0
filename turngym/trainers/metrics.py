"""Metric sinks of a run: JSONL (one line per iteration), TensorBoard, optionally Weights & Biases
(:mod:`turngym.trainers.wandb_sink`), opened as the config asks by :func:`open_metrics_log` (on
rank 0; other ranks log nothing), the final PNG plot, and :class:`ProgressReport`, what a run says
while it runs.

Metric names are namespaced: ``rollout/`` (episodes, success, turns, tokens), ``reward/``,
``credit/`` (advantage statistics; GiGPO step-group sizes and singleton fraction), ``loss/``,
``perf/`` (seconds per stage, tokens/s) and ``eval/`` (held-out success with its 95% Wilson
interval). On resume, :class:`MetricsLog` drops the JSONL lines written after the checkpoint it
resumes from, so every iteration appears exactly once.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from turngym.trainers.config import TrainConfig
    from turngym.trainers.distributed import World


class MetricsLog:
    """Append-only JSONL log plus an optional TensorBoard writer and further sinks (W&B)."""

    def __init__(
        self,
        out_dir: str | Path,
        *,
        resume_after: int | None,
        tensorboard: bool,
        sinks: list[Any] | None = None,
    ) -> None:
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
        self._sinks = list(sinks or [])
        """Objects with ``write(iteration, metrics)`` and ``close()``."""

    def write(self, iteration: int, metrics: dict[str, float]) -> None:
        row = {"iteration": iteration, **{k: _finite(v) for k, v in sorted(metrics.items())}}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        if self._writer is not None:
            for key, value in metrics.items():
                if isinstance(value, int | float) and math.isfinite(value):
                    self._writer.add_scalar(key, value, iteration)
            self._writer.flush()
        for sink in self._sinks:
            sink.write(iteration, metrics)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        for sink in self._sinks:
            sink.close()


class _NoLog:
    """The metrics sink of ranks other than 0."""

    def write(self, iteration: int, metrics: dict[str, float]) -> None:
        pass

    def close(self) -> None:
        pass


def open_metrics_log(config: TrainConfig, world: World, *, resume_after: int | None) -> Any:
    """The metrics log of the run in ``config.output_dir`` (:class:`MetricsLog` with the sinks
    ``tensorboard`` and ``logging`` ask for) on rank 0, a sink that drops everything on the others."""
    if not world.main:
        return _NoLog()
    return MetricsLog(
        Path(config.output_dir),
        resume_after=resume_after,
        tensorboard=config.tensorboard,
        sinks=_sinks(config),
    )


def _sinks(config: TrainConfig) -> list[Any]:
    """The extra metric sinks ``logging`` asks for."""
    if not config.logging.wandb:
        return []
    from turngym.trainers.wandb_sink import WandbSink

    lg = config.logging
    return [
        WandbSink(config.output_dir, project=lg.wandb_project, mode=lg.wandb_mode, config=config.to_dict())
    ]


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


def format_interval(low: float, high: float) -> str:
    """A confidence interval as every command prints it: ``[0.566, 0.699]``."""
    return f"[{low:.3f}, {high:.3f}]"


def format_success(rate: float, low: float, high: float) -> str:
    """A success rate with its interval: ``0.635 [0.566, 0.699]``."""
    return f"{rate:.3f} {format_interval(low, high)}"


def _clock_text(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour on."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressReport:
    """What a training run says while it runs, on stderr.

    Every stage announces itself with a line ``[m:ss] text`` (time since the run started). The RL
    iterations then drive a live bar in a terminal; without one (CI, ``nohup``, a notebook, a pipe)
    they are plain lines instead, flushed at once: the first iteration, every evaluated one, the last
    one, and otherwise at most one every ``interval_s`` seconds.
    """

    def __init__(
        self,
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
        terminal: bool | None = None,
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from rich.console import Console

        self.enabled = enabled
        self._stream = stream if stream is not None else sys.stderr
        self._console = Console(file=self._stream, force_terminal=terminal, highlight=False)
        self.terminal = self._console.is_terminal and not self._console.is_jupyter
        self.interval_s = interval_s
        self._clock = clock
        self._started = clock()
        self._last_line = -math.inf
        self._first = self._total = 0
        self._iterations_started = self._started
        self._bar: Any = None
        self._task: Any = None

    def stage(self, text: str) -> None:
        """Announce a stage (or its result) on a line of its own."""
        if self.enabled:
            self._line(f"[{_clock_text(self._clock() - self._started)}] {text}")

    def start_iterations(self, *, done: int, total: int) -> None:
        """Iterations ``done + 1 .. total`` follow; the pace is measured from now."""
        self._first, self._total = done, total
        self._iterations_started = self._clock()
        if not (self.enabled and self.terminal):
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(), console=self._console,
        )  # fmt: skip
        self._task = self._bar.add_task("training", total=total, completed=done)
        self._bar.start()

    def iteration(self, iteration: int, metrics: Mapping[str, float]) -> None:
        """Iteration ``iteration`` is done with ``metrics``."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, completed=iteration, description=_describe(metrics))
            return
        now = self._clock()
        evaluated = "eval/success_rate" in metrics
        due = now - self._last_line >= self.interval_s
        if not (iteration == self._first + 1 or evaluated or iteration == self._total or due):
            return
        done = iteration - self._first
        pace = (now - self._iterations_started) / max(done, 1)
        left = self._total - iteration
        ending = f"about {_clock_text(pace * left)} left" if left else "done"
        self.stage(
            f"iteration {iteration}/{self._total}: {_describe(metrics, long=True)}; "
            f"{pace:.1f} s per iteration, {ending}"
        )

    def close(self) -> None:
        """Stop the live bar (if any)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def _line(self, text: str) -> None:
        self._last_line = self._clock()
        if self._bar is not None or self.terminal:
            from rich.markup import escape

            self._console.print(escape(text), soft_wrap=True)
        else:
            print(text, file=self._stream, flush=True)


def _describe(metrics: Mapping[str, float], *, long: bool = False) -> str:
    """``training success 0.50, held-out 0.765 [0.700, 0.819]`` (short: ``success 0.50 | held-out 0.765``)."""
    success = metrics.get("rollout/success_rate")
    text = ("training success" if long else "success") + (f" {success:.2f}" if success is not None else " -")
    if "eval/success_rate" in metrics:
        rate = metrics["eval/success_rate"]
        if long:
            text += f", held-out {format_success(rate, metrics['eval/ci_low'], metrics['eval/ci_high'])}"
        else:
            text += f" | held-out {rate:.3f}"
    return text
