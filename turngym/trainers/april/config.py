"""``rollout.april``: the knobs of partial rollouts (see :mod:`turngym.trainers.april`)."""

from __future__ import annotations

from dataclasses import dataclass

from turngym.errors import ConfigError


@dataclass
class AprilConfig:
    enabled: bool = False
    """Partial rollouts: oversample, stop at ``groups_per_iteration`` whole groups, carry the rest."""
    oversample: float = 1.5
    """Groups launched per iteration, as a multiple of ``groups_per_iteration`` (>= 1)."""
    carry: bool = True
    """Carry unfinished groups to the next iteration (false: close and drop them)."""
    tis_cap: float = 2.0
    """C of the truncated importance weight min(π_old/π_behaviour, C) on turns of older versions."""

    def validate(self) -> None:
        if self.oversample < 1:
            raise ConfigError(f"rollout.april.oversample={self.oversample} must be >= 1")
        if self.tis_cap <= 0:
            raise ConfigError(f"rollout.april.tis_cap={self.tis_cap} must be > 0")

    def check(self, *, engine: str, workers: int, strategy: str, policy_loss: str) -> None:
        """The settings partial rollouts work with (raises :class:`ConfigError` otherwise)."""
        self.validate()
        if not self.enabled:
            return
        if engine != "async" or workers or strategy != "independent":
            raise ConfigError(
                "rollout.april.enabled needs rollout.engine=async, rollout.workers=0 and "
                f"rollout.strategy=independent, got {engine!r}, {workers}, {strategy!r}"
            )
        if policy_loss != "ppo_clip":
            raise ConfigError(
                f"rollout.april's TIS weight applies to loss.policy_loss=ppo_clip, not {policy_loss!r}"
            )
