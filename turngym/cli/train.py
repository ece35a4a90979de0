"""``turngym train`` and ``turngym sft``.

``turngym train`` with no arguments runs the embedded default job (tiny model, SFT warm start on
Maze expert demos, GiGPO on CPU, held-out evaluation, report). ``--config FILE`` loads a YAML
config (see ``examples/``); ``--set section.field=value`` overrides any field (repeatable).
A run directory with a checkpoint is resumed unless ``--no-resume`` is given.
"""

from __future__ import annotations

from pathlib import Path

import typer
import yaml
from rich.console import Console
from rich.table import Table

from turngym.trainers.config import load_config

CONFIG_OPT = typer.Option(None, "--config", "-c", help="YAML config file (see examples/).")
SET_OPT = typer.Option(None, "--set", "-s", help="Override a field: section.field=value (repeatable).")


def train(
    config: Path = CONFIG_OPT,
    set_: list[str] = SET_OPT,
    output_dir: str = typer.Option(None, "--output-dir", "-o", help="Run directory (overrides output_dir)."),
    no_resume: bool = typer.Option(False, "--no-resume", help="Start over even if a checkpoint exists."),
    print_config: bool = typer.Option(False, "--print-config", help="Print the resolved config and exit."),
) -> None:
    """Train a policy with GRPO-family RL (default: the tiny model on Maze with GiGPO)."""
    overrides = list(set_ or []) + ([f"output_dir={output_dir}"] if output_dir else [])
    cfg = load_config(config, overrides)
    console = Console()
    if print_config:
        console.print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), highlight=False)
        return
    from turngym.trainers.loop import train as run_train

    result = run_train(cfg, resume=not no_resume)
    report = result.report
    table = Table(title=f"{report['estimator']} on {report['env_id']}: held-out success (95% Wilson CI)")
    for col in ("checkpoint", "success", "95% CI", "episodes"):
        table.add_column(col)
    for name, row in (("warm start (SFT)", report["warm_start"]), ("after RL", report["final"])):
        table.add_row(
            name,
            f"{row['success_rate']:.3f}",
            f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}]",
            f"{int(row['episodes'])}",
        )
    console.print(table)
    console.print(f"report: {result.output_dir / 'report.json'}  plot: {result.output_dir / 'plot.png'}")


def sft(
    out: Path = typer.Argument(..., help="Directory to save the fine-tuned model (use it as hf:DIR)."),
    config: Path = CONFIG_OPT,
    set_: list[str] = SET_OPT,
) -> None:
    """Supervised warm start on the env's expert demos; saves a model directory."""
    from turngym.trainers.sft import run_sft

    cfg = load_config(config, list(set_ or []))
    path, stats = run_sft(cfg, out)
    Console().print(
        f"fine-tuned on {int(stats.get('sft/demos', 0))} expert demos for {int(stats.get('sft/steps', 0))} "
        f"steps: loss {stats.get('sft/loss_first', 0):.3f} -> {stats.get('sft/loss_last', 0):.3f}; "
        f"saved to {path} (use --set model.model=hf:{path} --set sft.enabled=false)",
        highlight=False,
    )
