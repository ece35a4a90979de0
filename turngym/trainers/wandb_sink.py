"""Weights & Biases as a third metrics sink (``logging.wandb``), beside JSONL and TensorBoard.

The run is written under ``output_dir/wandb``; its id is derived from the run directory, so a
resumed run continues the same W&B run (``resume="allow"``). Mode (``logging.wandb_mode``):
``online``, ``offline``, or ``auto``: ``WANDB_MODE`` when set, else online when ``WANDB_API_KEY``
is set and offline otherwise; an offline run is uploaded later with ``wandb sync DIR``.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import Any

from turngym.errors import ConfigError


def wandb_mode(setting: str) -> str:
    """The W&B mode ``setting`` resolves to (see the module docstring)."""
    if setting != "auto":
        return setting
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if os.environ.get("WANDB_API_KEY") else "offline"


class WandbSink:
    """Logs each iteration's finite numeric metrics to one W&B run."""

    def __init__(self, out_dir: str | Path, *, project: str, mode: str, config: dict[str, Any]) -> None:
        try:
            import wandb
        except ImportError as exc:
            raise ConfigError(
                f'logging.wandb needs the wandb package ({exc}): pip install -e ".[wandb]"'
            ) from None
        out = Path(out_dir).resolve()
        (out / "wandb").mkdir(parents=True, exist_ok=True)
        run_id = hashlib.sha256(str(out).encode()).hexdigest()[:16]
        self.mode = wandb_mode(mode)
        self.run = wandb.init(
            project=project,
            name=out.name,
            id=run_id,
            dir=str(out),
            mode=self.mode,
            resume="allow",
            config=config,
            settings=wandb.Settings(silent=True, console="off"),
        )

    def write(self, iteration: int, metrics: dict[str, Any]) -> None:
        values = {k: v for k, v in metrics.items() if isinstance(v, int | float) and math.isfinite(v)}
        self.run.log(values, step=iteration)

    def close(self) -> None:
        self.run.finish()
