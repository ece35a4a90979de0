"""Resumable checkpoints: everything a killed run needs to continue with nothing lost.

A checkpoint is a directory ``checkpoints/iter-NNNNNN/`` holding ``state.pt`` with the model
(with LoRA: only the adapter), optimizer and scheduler state dicts, the RNG states (Python, NumPy,
torch), the iteration it was taken after, the run's history (evaluations so far) and the config
digest. It is written into a temporary directory first and renamed into place, then
``checkpoints/latest`` is replaced atomically, so a SIGKILL at any moment leaves either the
previous or the new checkpoint, never a
torn one. Resuming with a config whose digest differs is refused (:class:`CheckpointError`).
A run of several processes (:mod:`turngym.trainers.distributed`) keeps its model and optimizer
sharded in the checkpoint's ``learner/`` directory instead (``state.pt`` then has ``sharded: True``).

:func:`open_run` decides, reading only, whether a run may start or continue in a directory, so a
refused run leaves the directory exactly as it was.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from turngym.errors import CheckpointError, ConfigError
from turngym.trainers.config import TrainConfig
from turngym.trainers.lora import model_state
from turngym.trainers.precision import MasterWeightsAdamW
from turngym.trainers.rundir import config_differences

STATE_FILE = "state.pt"
LATEST = "latest"
CONFIG_FILE = "config.yaml"
REPORT_FILE = "report.json"


@dataclass(frozen=True)
class Checkpoint:
    """What :func:`load_checkpoint` returns."""

    iteration: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: dict[str, Any]
    history: dict[str, Any]
    config_digest: str
    path: Path
    sharded: bool = False
    """Model and optimizer are in ``path/learner`` (``torch.distributed.checkpoint``), not above."""


def rng_state() -> dict[str, Any]:
    """The global RNG states of Python, NumPy and torch."""
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(
    root: str | Path,
    iteration: int,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | MasterWeightsAdamW,
    scheduler: Any,
    history: dict[str, Any],
    config_digest: str,
    keep: int = 2,
) -> Path:
    """Write checkpoint ``iteration`` under ``root`` atomically and prune to the ``keep`` newest."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        state = {"model": model_state(model), "optimizer": optimizer.state_dict()}
        write_state(tmp, iteration, state, scheduler=scheduler, history=history, config_digest=config_digest)
        return publish_checkpoint(root, tmp, iteration, keep=keep)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_state(
    tmp: Path,
    iteration: int,
    weights: dict[str, Any],
    *,
    scheduler: Any,
    history: dict[str, Any],
    config_digest: str,
) -> None:
    """``tmp/state.pt``: ``weights`` (model and optimizer state, or ``sharded: True``), the
    scheduler, the RNG states, the history and the config digest."""
    torch.save(
        {
            "iteration": iteration,
            **weights,
            "scheduler": scheduler.state_dict() if scheduler is not None else {},
            "rng": rng_state(),
            "history": history,
            "config_digest": config_digest,
        },
        tmp / STATE_FILE,
    )


def publish_checkpoint(root: Path, tmp: Path, iteration: int, *, keep: int) -> Path:
    """Rename the written ``tmp`` into place as checkpoint ``iteration``, point ``latest`` at it
    atomically and prune to the ``keep`` newest."""
    final = root / f"iter-{iteration:06d}"
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    pointer = root / f".{LATEST}.tmp"
    pointer.write_text(final.name)
    os.replace(pointer, root / LATEST)
    for old in sorted(root.glob("iter-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(root: str | Path) -> Path | None:
    """The directory ``root/latest`` points to, or ``None`` when the run has no checkpoint."""
    pointer = Path(root) / LATEST
    if not pointer.is_file():
        return None
    path = Path(root) / pointer.read_text().strip()
    if not (path / STATE_FILE).is_file():
        raise CheckpointError(
            f"{pointer} points to {path.name}, which has no {STATE_FILE}; delete {pointer} to start over"
        )
    return path


def load_checkpoint(path: str | Path, *, config_digest: str | None = None) -> Checkpoint:
    """Read a checkpoint directory; refuses one written under another config."""
    path = Path(path)
    try:
        data = torch.load(path / STATE_FILE, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    if config_digest is not None and data["config_digest"] != config_digest:
        raise CheckpointError(
            f"checkpoint {path} was written by a run with config digest {data['config_digest']}, but this "
            f"config has {config_digest}; resume with the same config, or start a new run without --resume"
        )
    return Checkpoint(
        iteration=int(data["iteration"]),
        model=data.get("model") or {},
        optimizer=data.get("optimizer") or {},
        scheduler=data["scheduler"],
        rng=data["rng"],
        history=data["history"],
        config_digest=data["config_digest"],
        path=path,
        sharded=bool(data.get("sharded", False)),
    )


@dataclass(frozen=True)
class RunStart:
    """Where an accepted run starts (what :func:`open_run` returns)."""

    checkpoint: Checkpoint | None
    """The checkpoint to continue from; None for a run that starts from scratch."""
    finished: bool
    """The run already did all its iterations and wrote its report: there is nothing to do."""


def open_run(config: TrainConfig, *, resume: bool) -> RunStart:
    """Accept ``config``'s run directory for a new run (``resume=False``: it must not hold a run) or
    for continuing the run it holds (``resume=True``: same settings, apart from ``iterations``).

    Reads only: a refusal (:class:`CheckpointError`, :class:`ConfigError`) changes nothing.
    """
    out = Path(config.output_dir)
    recorded = out / CONFIG_FILE
    holds_run = recorded.is_file() or (out / "checkpoints" / LATEST).is_file()
    if not resume:
        if holds_run:
            raise CheckpointError(
                f"{out} already holds a run; continue it with `turngym train --resume {out}`, or name "
                "another directory (without -o / output_dir, every run gets a new one under runs/)"
            )
        return RunStart(None, finished=False)
    if not holds_run:
        raise ConfigError(
            f"{out} holds no run to resume (no {CONFIG_FILE}); start a new run without --resume"
        )
    if recorded.is_file():
        differences = config_differences(yaml.safe_load(recorded.read_text()) or {}, config.to_dict())
        if differences:
            raise CheckpointError(
                f"{out} was trained with another config ({'; '.join(differences)}); a run continues with "
                "its own config (only iterations may change): drop those settings, or start a new run "
                "without --resume"
            )
    found = latest_checkpoint(out / "checkpoints")
    if found is None:  # stopped before its first checkpoint: it starts again from scratch, in place
        return RunStart(None, finished=False)
    checkpoint = load_checkpoint(found, config_digest=config.digest())
    if checkpoint.iteration > config.iterations:
        raise ConfigError(
            f"{out} has already done {checkpoint.iteration} iterations; iterations={config.iterations} "
            "is fewer (a run can be extended, not shortened)"
        )
    finished = checkpoint.iteration == config.iterations and (out / REPORT_FILE).is_file()
    return RunStart(checkpoint, finished=finished)
