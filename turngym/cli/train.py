"""``turngym train`` and ``turngym sft``.

``turngym train`` with no arguments runs the embedded default job (tiny model, SFT warm start on
Maze expert demos, GiGPO on CPU, held-out evaluation, report). ``--config FILE`` loads a YAML
config (see ``examples/``); ``--set section.field=value`` overrides any field (repeatable). A
``--set credit.estimator=NAME`` drops the file's estimator parameters that NAME does not take,
with a note.

Every run gets a new directory, ``runs/<env>-<estimator>-<date>-<time>`` (``runs/latest`` links to
the newest), unless ``-o DIR`` (or ``output_dir``) names one, which must not hold a run yet.
``--resume DIR`` continues the run in DIR with the config it recorded (``--set iterations=N``
extends it); a finished run says so and is left as it is.

``--nproc N`` (N > 1) runs the job in N processes: it resolves the run directory, then replaces
itself with ``torchrun --nproc-per-node N -m turngym.cli train ... -o DIR`` on 127.0.0.1 (FSDP2
learner, rollouts split across ranks: :mod:`turngym.trainers.distributed`). Under a ``torchrun``
of one's own (several nodes), name the run directory with ``-o`` or ``--resume``.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from turngym.errors import ConfigError
from turngym.trainers.config import TrainConfig
from turngym.trainers.config_load import load_config
from turngym.trainers.metrics import format_interval
from turngym.trainers.rundir import LATEST, new_run_dir

CONFIG_OPT = typer.Option(None, "--config", "-c", help="YAML config file (see examples/).")
SET_OPT = typer.Option(None, "--set", "-s", help="Override a field: section.field=value (repeatable).")


def train(
    config: Path = CONFIG_OPT,
    set_: list[str] = SET_OPT,
    output_dir: str = typer.Option(
        None, "--output-dir", "-o", help="Run directory (default: a new one under runs/)."
    ),
    resume: Path = typer.Option(
        None, "--resume", help="Continue the run in this directory, with the config it recorded."
    ),
    print_config: bool = typer.Option(False, "--print-config", help="Print the resolved config and exit."),
    nproc: int = typer.Option(
        1, "--nproc", help="Training processes on this machine (> 1: torchrun, an FSDP2 learner)."
    ),
) -> None:
    """Train a policy with GRPO-family RL (default: the tiny model on Maze with GiGPO)."""
    overrides = list(set_ or [])
    if nproc < 1:
        raise ConfigError(f"--nproc must be >= 1, got {nproc}")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1 and nproc > 1:
        raise ConfigError("--nproc starts torchrun itself; under torchrun leave it out")
    cfg, notes = _run_config(config, overrides, output_dir, resume, world_size)
    err = Console(stderr=True, highlight=False)
    for note in notes:
        err.print(f"note: {note}", markup=False, soft_wrap=True)
    console = Console(highlight=False)
    if print_config:
        console.print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), markup=False)
        return
    if nproc > 1:
        _exec_processes(cfg, nproc, config, overrides, output_dir, resume)
    from turngym.trainers.loop import train as run_train

    auto_named = resume is None and not (output_dir or _names_output_dir(config, overrides))
    result = run_train(cfg, resume=resume is not None, on_start=_link_latest if auto_named else None)
    if int(os.environ.get("RANK", "0")) != 0:
        return  # rank 0 prints the result
    _print_result(console, result.output_dir, result.report, result.already_finished)


def _run_config(
    config: Path | None, overrides: list[str], output_dir: str | None, resume: Path | None, world_size: int
) -> tuple[TrainConfig, list[str]]:
    """The run's config and its notes: with ``resume`` the config the run recorded, else the
    ``config`` file's (default: the embedded job) in the named or a new run directory."""
    if resume is not None:
        if output_dir:
            raise ConfigError("--resume DIR continues the run in DIR; leave out --output-dir")
        run_dir = _real_dir(resume)
        recorded = run_dir / "config.yaml"
        if not recorded.is_file():
            raise ConfigError(
                f"{resume} holds no run to resume (no config.yaml); start a new run without --resume"
            )
        return resolve_config(config or recorded, [*overrides, f"output_dir={run_dir}"])
    explicit = bool(output_dir) or _names_output_dir(config, overrides)
    cfg, notes = resolve_config(config, overrides + ([f"output_dir={output_dir}"] if output_dir else []))
    if not explicit and world_size > 1:
        raise ConfigError("under torchrun every rank must train the same run: name its directory with -o DIR")
    if not explicit:
        cfg = replace(cfg, output_dir=str(new_run_dir(cfg)))
    return cfg, notes


def _exec_processes(
    cfg: TrainConfig,
    nproc: int,
    config: Path | None,
    overrides: list[str],
    output_dir: str | None,
    resume: Path | None,
) -> None:
    """Replace this process with ``torchrun`` training ``cfg`` in ``nproc`` processes, in the run
    directory resolved here (``-o`` added when this process named it)."""
    from turngym.trainers.loop import check_multiprocess

    check_multiprocess(cfg)  # before torchrun starts: one message, not one per rank
    named = ["-o", cfg.output_dir] if resume is None and not output_dir else []
    if resume is None and not (output_dir or _names_output_dir(config, overrides)):
        Path(cfg.output_dir).parent.mkdir(parents=True, exist_ok=True)
        _link_latest(Path(cfg.output_dir))
    _exec_torchrun(nproc, [*_without_nproc(sys.argv[1:]), *named])


def _print_result(console: Console, out: Path, report: dict[str, Any], already_finished: bool) -> None:
    """The result table and where the report, plot and model are (and, for a run that was already
    finished, how to train it longer)."""
    if already_finished:
        n = int(report["iterations"])
        console.print(
            f"{out} is finished ({n} of {n} iterations); nothing was changed. To train it longer: "
            f"turngym train --resume {out} --set iterations={2 * n}",
            markup=False,
            soft_wrap=True,
        )
    console.print(result_table(report))
    console.print(
        f"report: {out / 'report.json'}, {out / 'report.md'}  plot: {out / 'plot.png'}  "
        f"model: {out / 'final'}\n"
        f"browse the trajectories with their credit: turngym view {out}\n"
        f"evaluate the model on its training env: turngym eval --agent hf:{out / 'final'} "
        f"--episodes {int(report['final']['episodes'])}",
        markup=False,
        soft_wrap=True,
    )


def _without_nproc(args: list[str]) -> list[str]:
    """``args`` without ``--nproc N`` / ``--nproc=N``."""
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def _exec_torchrun(nproc: int, args: list[str]) -> None:
    """Replace this process with ``torchrun`` running ``turngym ARGS`` (``train ...``) in ``nproc``
    processes."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
        "--master-addr", "127.0.0.1", "--master-port", str(port), "-m", "turngym.cli", *args,
    ]  # fmt: skip
    sys.stdout.flush()
    os.execv(sys.executable, command)


def resolve_config(path: Path | None, overrides: list[str]) -> tuple[TrainConfig, list[str]]:
    """:func:`load_config`, except that a ``--set credit.estimator=NAME`` drops the parameters of the
    config file's estimator that NAME does not take; returns the config and a note per drop."""
    try:
        return load_config(path, overrides), []
    except ConfigError:
        keys = [key for key, _ in _split(overrides)]
        chosen = [value.strip() for key, value in _split(overrides) if key == "credit.estimator"]
        if not chosen or any(key.startswith("credit.params") for key in keys):
            raise
        own = load_config(path, [])  # the file's parameters, valid for the file's own estimator
        kept, dropped = fit_params(chosen[-1], own.credit.params)
        if not dropped:
            raise
        cfg = load_config(path, [*overrides, f"credit.params={json.dumps(kept)}"])
    source = f"{path}'s" if path is not None else "the"
    note = (
        f"credit.estimator={cfg.credit.estimator} does not take {', '.join(sorted(dropped))} "
        f"({source} parameters for {own.credit.estimator}); dropped them"
        + (f", kept {', '.join(f'{k}={v}' for k, v in kept.items())}" if kept else "")
    )
    return cfg, [note]


def fit_params(estimator: str, params: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``(kept, dropped)``: the parameters ``estimator`` takes (together), and the names of the rest.

    A ``host`` parameter is tried first, since it decides which further names are taken.
    """
    from turngym.trainers.advantages import check_params

    check_params(estimator, {})  # an unknown estimator is an error naming the known ones
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for key in sorted(params, key=lambda k: k != "host"):
        try:
            check_params(estimator, {**kept, key: params[key]})
        except ConfigError:
            dropped.append(key)
        else:
            kept[key] = params[key]
    return kept, dropped


def result_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the result table ``turngym train`` prints (and the README shows)."""
    n = int(report["iterations"])
    rows = []
    labels = (
        "warm start (SFT)" if report.get("sft") else "warm start (no SFT)",
        f"after {n} {report['estimator']} iteration{'s' if n != 1 else ''}",
    )
    for label, row in zip(labels, (report["warm_start"], report["final"]), strict=True):
        rows.append(
            [
                label,
                f"{row['success_rate']:.3f}",
                format_interval(row["ci_low"], row["ci_high"]),
                f"{int(row['episodes'])}",
            ]
        )
    return ["checkpoint", "held-out success", "95% CI", "episodes"], rows


def result_table(report: dict[str, Any]) -> Table:
    header, rows = result_rows(report)
    table = Table(
        *header, title=f"{report['estimator']} on {report['env_id']}: held-out success (95% Wilson CI)"
    )
    for row in rows:
        table.add_row(*row)
    return table


def _split(overrides: list[str]) -> list[tuple[str, str]]:
    return [(item.partition("=")[0].strip(), item.partition("=")[2]) for item in overrides]


def _names_output_dir(config: Path | None, overrides: list[str]) -> bool:
    """Whether ``output_dir`` is set by an override or by the config file."""
    if any(key == "output_dir" for key, _ in _split(overrides)):
        return True
    if config is None:
        return False
    loaded = yaml.safe_load(Path(config).read_text()) or {}
    return "output_dir" in loaded


def _real_dir(path: Path) -> Path:
    """``path``, with a symbolic link (``runs/latest``) replaced by the directory it names."""
    if path.is_symlink():
        target = Path(os.readlink(path))
        return target if target.is_absolute() else path.parent / target
    return path


def _link_latest(run_dir: Path) -> None:
    """Point ``<runs>/latest`` at ``run_dir`` (relative, so the runs directory can move)."""
    link = run_dir.parent / LATEST
    tmp = run_dir.parent / f".{LATEST}.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(run_dir.name)
    os.replace(tmp, link)


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
