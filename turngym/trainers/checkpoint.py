"""Resumable checkpoints: everything a killed run needs to continue with nothing lost.

A checkpoint is a directory ``checkpoints/iter-NNNNNN/`` holding ``state.pt`` with the model,
optimizer and scheduler state dicts, the RNG states (Python, NumPy, torch), the iteration it was
taken after, the run's history (evaluations so far) and the config digest. It is written into a
temporary directory first and renamed into place, then ``checkpoints/latest`` is replaced
atomically, so a SIGKILL at any moment leaves either the previous or the new checkpoint, never a
torn one. Resuming with a config whose digest differs is refused (:class:`CheckpointError`).
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

from turngym.errors import CheckpointError

STATE_FILE = "state.pt"
LATEST = "latest"


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
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    history: dict[str, Any],
    config_digest: str,
    keep: int = 2,
) -> Path:
    """Write checkpoint ``iteration`` under ``root`` atomically and prune to the ``keep`` newest."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"iter-{iteration:06d}"
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        torch.save(
            {
                "iteration": iteration,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else {},
                "rng": rng_state(),
                "history": history,
                "config_digest": config_digest,
            },
            tmp / STATE_FILE,
        )
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
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
            f"config has {config_digest}; resume with the same config or use a new output_dir"
        )
    return Checkpoint(
        iteration=int(data["iteration"]),
        model=data["model"],
        optimizer=data["optimizer"],
        scheduler=data["scheduler"],
        rng=data["rng"],
        history=data["history"],
        config_digest=data["config_digest"],
        path=path,
    )
