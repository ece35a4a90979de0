"""Run directories: how a new one is named, how a run's config is compared with the one it recorded,
and the record of the training env that ``final/`` carries for ``turngym eval``.

Light on purpose (no torch), so that ``turngym eval`` can read a trained model's record without the
training stack.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from turngym.trainers.config import TrainConfig

RUNS = Path("runs")
"""Where ``turngym train`` creates a new run directory when none is named (git-ignored)."""
LATEST = "latest"
"""``runs/latest``: a symbolic link to the newest run directory ``turngym train`` created there."""
ENV_RECORD = "turngym.json"
"""The file in a trained model directory that records the env and rollout settings it was trained on."""
FIXED_SETTINGS = ("iterations", "output_dir", "progress", "rollouts_every")
"""Top-level settings a resumed run may change (they are left out of the config digest)."""


def new_run_dir(config: TrainConfig, root: Path = RUNS, now: float | None = None) -> Path:
    """``root/<env>-<estimator>-<YYYYmmdd-HHMMSS>``, e.g. ``runs/maze-gigpo-20261127-101502``;
    ``-2``, ``-3``, ... is appended when that directory already exists."""
    name = config.env.env_id.rpartition("/")[2]
    name = re.sub(r"-v\d+$", "", name).lower()
    name = re.sub(r"[^a-z0-9_]+", "-", name).strip("-") or "env"
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    base = root / f"{name}-{config.credit.estimator}-{stamp}"
    path, k = base, 1
    while path.exists() or path.is_symlink():
        k += 1
        path = base.with_name(f"{base.name}-{k}")
    return path


def config_differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``"section.field: old -> new"`` for every setting that differs, except :data:`FIXED_SETTINGS`."""
    out: list[str] = []

    def walk(old: Any, new: Any, where: str) -> None:
        if isinstance(old, dict) and isinstance(new, dict) and where not in ("env.kwargs", "credit.params"):
            for key in sorted(set(old) | set(new)):
                walk(old.get(key), new.get(key), f"{where}.{key}" if where else key)
        elif old != new and where not in FIXED_SETTINGS:
            out.append(f"{where}: {_show(old)} -> {_show(new)}")

    walk(recorded, current, "")
    return out


def _show(value: Any) -> str:
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def write_env_record(model_dir: str | Path, config: TrainConfig) -> Path:
    """Write :data:`ENV_RECORD` into ``model_dir``: the env, its held-out split and the loop settings
    the model was trained and evaluated with, which ``turngym eval`` uses as its defaults."""
    record = {
        "env_id": config.env.env_id,
        "env_kwargs": {**config.env.kwargs, "split": "test"},
        "context": config.rollout.context,
        "max_new_tokens": config.rollout.max_new_tokens,
        "max_context_tokens": config.rollout.max_context_tokens,
        "temperature": config.eval.temperature,
        "run": str(config.output_dir),
    }
    path = Path(model_dir) / ENV_RECORD
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def read_env_record(model_dir: str | Path) -> dict[str, Any] | None:
    """The :data:`ENV_RECORD` of ``model_dir``, or None when it has none."""
    path = Path(model_dir) / ENV_RECORD
    if not path.is_file():
        return None
    return dict(json.loads(path.read_text()))
