"""Markdown reports that ``turngym train`` and ``turngym eval`` write next to their JSONL.

* :func:`train_report_markdown` → ``RUN/report.md``: held-out success at every evaluation, a table
  of the training signals per iteration, links to the dashboard PNGs and how to open the
  trajectories in ``turngym view``.
* :func:`eval_report_markdown` → ``OUT.md`` beside ``--out OUT.jsonl``: the summary the command
  prints, outcomes by stop reason, success per task, and ``OUT.png`` (:func:`write_eval_plot`).

Relative links only, so a report can move with its files.
"""

from __future__ import annotations

import io
import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from turngym.trajectory import Trajectory


def _cell(value: Any) -> str:
    text = str(value).replace("|", "\\|").replace("\n", " ")
    return text or " "


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table (``|`` and newlines in cells are escaped)."""
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{float(value):.{digits}f}"


TRAIN_COLUMNS = (
    ("rollout/success_rate", "training success", 2),
    ("reward/mean_return", "mean return", 3),
    ("rollout/mean_turns", "turns", 2),
    ("credit/adv_abs_mean", "mean abs advantage", 3),
    ("credit/step_group_size_mean", "step-group size", 2),
    ("credit/singleton_fraction", "singleton fraction", 2),
    ("loss/clip_fraction", "clip fraction", 3),
    ("loss/approx_kl", "approx KL", 4),
    ("perf/rollout_s", "rollout s", 1),
    ("perf/update_s", "update s", 1),
)
"""``(metric, column, digits)`` of the per-iteration table of a training report."""


def train_report_markdown(
    report: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], pngs: Sequence[str], run_dir: str
) -> str:
    """``report.md`` of a finished run: ``report`` is its ``report.json``, ``rows`` its
    ``metrics.jsonl``, ``pngs`` the dashboard files relative to the run directory."""
    out = [f"# {report['estimator']} on {report['env_id']}\n", f"Run directory: `{run_dir}`.\n"]
    evals = [r for r in rows if r.get("eval/success_rate") is not None]
    out.append("## Held-out success (95% Wilson interval)\n")
    out.append(
        markdown_table(
            ["iteration", "success", "95% CI", "episodes", "mean turns", "invalid/turn"],
            [
                [
                    r["iteration"],
                    _num(r["eval/success_rate"]),
                    f"[{_num(r.get('eval/ci_low'))}, {_num(r.get('eval/ci_high'))}]",
                    int(r.get("eval/episodes", 0)),
                    _num(r.get("eval/mean_turns"), 2),
                    _num(r.get("eval/invalid_rate"), 2),
                ]
                for r in evals
            ],
        )
    )
    train = [r for r in rows if r.get("iteration", 0) > 0]
    columns = [c for c in TRAIN_COLUMNS if any(r.get(c[0]) is not None for r in train)]
    if train:
        out.append("\n## Training signals per iteration\n")
        out.append(
            markdown_table(
                ["iteration", *(label for _, label, _ in columns)],
                [[r["iteration"], *(_num(r.get(k), d) for k, _, d in columns)] for r in train],
            )
        )
    if pngs:
        out.append("\n## Dashboards\n")
        out += [f"![{Path(p).stem}]({p})\n" for p in pngs]
    out.append(
        "\n## Trajectories\n\nEvery iteration's trajectories, with each turn's reward, advantage and "
        f"step group, are in `rollouts/`; browse them with `turngym view {run_dir}`.\n"
    )
    return "\n".join(out)


def write_train_report(
    run_dir: str | Path, report: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], pngs: Sequence[Path]
) -> Path:
    """Write ``run_dir/report.md``; returns its path."""
    run = Path(run_dir)
    relative = [str(Path(p).relative_to(run)) for p in pngs]
    path = run / "report.md"
    path.write_text(train_report_markdown(report, rows, relative, str(run_dir)))
    return path


def eval_report_markdown(
    title: str,
    summary_header: Sequence[str],
    summary_row: Sequence[str],
    trajectories: Sequence[Trajectory],
    png: str | None,
    jsonl: str,
) -> str:
    """``OUT.md`` of ``turngym eval --out OUT.jsonl``: the printed summary plus outcomes and tasks."""
    out = [f"# {title}\n", markdown_table(summary_header, [summary_row])]
    reasons = Counter(t.stop_reason.value for t in trajectories)
    n = max(len(trajectories), 1)
    out.append("\n## Outcomes by stop reason\n")
    out.append(
        markdown_table(
            ["stop reason", "episodes", "share"],
            [[reason, count, _num(count / n, 3)] for reason, count in sorted(reasons.items())],
        )
    )
    by_task: dict[str, list[Trajectory]] = defaultdict(list)
    for t in trajectories:
        by_task[str(t.task_id)].append(t)
    out.append("\n## Tasks\n")
    out.append(
        markdown_table(
            ["task", "episodes", "won", "mean return", "mean turns"],
            [
                [
                    task,
                    len(group),
                    sum(t.won for t in group),
                    _num(sum(t.total_reward for t in group) / len(group)),
                    _num(sum(len(t.turns) for t in group) / len(group), 1),
                ]
                for task, group in by_task.items()
            ],
        )
    )
    if png:
        out.append(f"\n![outcomes]({png})\n")
    out.append(f"\nTrajectories: `{jsonl}`; browse them with `turngym view {jsonl}`.\n")
    return "\n".join(out)


def eval_plot_png(trajectories: Sequence[Trajectory]) -> bytes:
    """Two panels: episodes by stop reason, and the histogram of returns."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    reasons = Counter(t.stop_reason.value for t in trajectories)
    names = sorted(reasons)
    ax1.bar(names, [reasons[r] for r in names], color="tab:blue")
    ax1.set(title="episodes by stop reason", ylabel="episodes")
    ax2.hist([t.total_reward for t in trajectories], bins=20, color="tab:green")
    ax2.set(title="returns", xlabel="episode return", ylabel="episodes")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def write_eval_report(
    jsonl: str | Path,
    title: str,
    summary_header: Sequence[str],
    summary_row: Sequence[str],
    trajectories: Sequence[Trajectory],
) -> Path:
    """Write ``OUT.md`` and ``OUT.png`` beside ``OUT.jsonl``; returns the markdown path."""
    jsonl = Path(jsonl)
    png: Path | None = _beside(jsonl, ".png")
    try:
        png.write_bytes(eval_plot_png(trajectories))
    except ModuleNotFoundError:  # matplotlib comes with the train/dev extras, not the base install
        png = None
    path = _beside(jsonl, ".md")
    text = eval_report_markdown(
        title, summary_header, summary_row, trajectories, png.name if png else None, jsonl.name
    )
    path.write_text(text)
    return path


def _beside(path: Path, suffix: str) -> Path:
    """``path`` with ``suffix`` instead of its own (appended when that would name ``path`` itself)."""
    other = path.with_suffix(suffix)
    return other if other != path else path.with_name(path.name + suffix)
