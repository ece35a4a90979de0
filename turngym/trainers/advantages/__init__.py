"""Credit assignment: pure functions from grouped trajectories to per-turn advantages.

Every estimator is a function ``(batch: StepBatch, **params) -> float64 [S]`` registered by name;
a config picks one by name and users add their own with :func:`register_estimator`. The public,
plain-data entry point is::

    compute(name, groups, **params) -> list (group) of list (trajectory) of list (turn) of float

where ``groups[g][i]`` is a :class:`~turngym.trajectory.Trajectory` whose turns carry their
immediate ``reward`` and the ``anchor`` of the state they acted from.

| name | module | parameters (defaults) |
|---|---|---|
| ``grpo`` | grpo | ``normalize_std=True``, ``episode_stats="trajectory"`` |
| ``dr_grpo`` | grpo | ``episode_stats`` |
| ``rloo`` | rloo | — |
| ``reinforce_pp`` | reinforce_pp | ``gamma=1.0`` |
| ``reinforce_pp_baseline`` | reinforce_pp | — |
| ``gigpo`` | gigpo | ``gamma=0.95``, ``omega=1``, ``mode="mean_norm"``, ``episode_stats``, ``similarity`` |
| ``salt`` | salt | ``host="grpo"``, ``normalize_std=True``, ``node_key="state"``, ``multiplicity`` |
| ``trloo`` | trloo | ``gamma=1.0`` |
| ``empg`` | empg | ``host="grpo"``, ``k=1``, ``k_next=1``, ``zeta=0.05`` + the host's own |
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from turngym.errors import ConfigError
from turngym.trainers.advantages.empg import empg
from turngym.trainers.advantages.gigpo import gigpo, step_group_sizes
from turngym.trainers.advantages.grpo import dr_grpo, grpo
from turngym.trainers.advantages.reinforce_pp import reinforce_pp, reinforce_pp_baseline
from turngym.trainers.advantages.rloo import rloo
from turngym.trainers.advantages.salt import salt
from turngym.trainers.advantages.steps import StepBatch, StepRow
from turngym.trainers.advantages.trloo import trloo
from turngym.trajectory import Trajectory

Estimator = Callable[..., np.ndarray]
"""``(batch: StepBatch, **params) -> float64 array with one advantage per step``."""

_REGISTRY: dict[str, Estimator] = {}


def register_estimator(name: str, fn: Estimator, *, replace: bool = False) -> None:
    """Make ``fn`` available to :func:`compute` and configs under ``name``."""
    if name in _REGISTRY and not replace:
        raise ConfigError(f"an estimator named {name!r} is already registered; pass replace=True to override")
    _REGISTRY[name] = fn


def estimator_names() -> list[str]:
    """The registered names, sorted."""
    return sorted(_REGISTRY)


def get_estimator(name: str) -> Estimator:
    """The estimator registered under ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown advantage estimator {name!r}; choose one of {estimator_names()} "
            "or register your own with register_estimator()"
        ) from None


def check_params(name: str, params: dict[str, Any]) -> None:
    """Raise :class:`ConfigError` when ``params`` holds a name estimator ``name`` does not take."""
    fn = get_estimator(name)
    sig = inspect.signature(fn)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        if name == "empg":
            host = params.get("host", "grpo")
            own = {"host", "k", "k_next", "zeta"}
            check_params(host, {k: v for k, v in params.items() if k not in own})
        return
    accepted = [p for p in list(sig.parameters)[1:]]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ConfigError(f"estimator {name!r} takes parameters {accepted}, not {unknown}")


def compute_steps(name: str, batch: StepBatch, **params: Any) -> np.ndarray:
    """Per-step advantages of ``batch`` (aligned with its rows) by estimator ``name``."""
    check_params(name, params)
    out = np.asarray(get_estimator(name)(batch, **params), dtype=np.float64)
    if out.shape != (batch.num_steps,):
        raise ConfigError(f"estimator {name!r} returned shape {out.shape}, expected ({batch.num_steps},)")
    return out


def compute(name: str, groups: Sequence[Sequence[Trajectory]], **params: Any) -> list[list[list[float]]]:
    """Advantages by estimator ``name`` as ``[group][trajectory][turn]`` floats."""
    batch = StepBatch.from_groups(groups)
    return batch.split(compute_steps(name, batch, **params))


for _name, _fn in {
    "grpo": grpo,
    "dr_grpo": dr_grpo,
    "rloo": rloo,
    "reinforce_pp": reinforce_pp,
    "reinforce_pp_baseline": reinforce_pp_baseline,
    "gigpo": gigpo,
    "salt": salt,
    "trloo": trloo,
    "empg": empg,
}.items():
    register_estimator(_name, _fn)

__all__ = [
    "Estimator",
    "StepBatch",
    "StepRow",
    "check_params",
    "compute",
    "compute_steps",
    "estimator_names",
    "get_estimator",
    "register_estimator",
    "step_group_sizes",
]
