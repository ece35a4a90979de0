"""Partial rollouts (APRIL: Zhou et al., arXiv 2509.18521), ``rollout.april``; off by default.

An iteration launches ``ceil(oversample × groups_per_iteration)`` groups — the groups carried over
from the last iteration first, then fresh tasks — on the asynchronous loop, and stops as soon as
``groups_per_iteration`` whole groups have finished without a failure: no slot starts another
episode, and every episode in flight stops at its next turn boundary
(:func:`~turngym.agents.partial.run_partial_episodes`). The iteration trains on exactly those
groups (the oldest first). Every other group is carried to the next iteration as it is: its
finished episodes, its stopped episodes (env open, every turn's tokens and log-probs kept) and its
episodes that never started; there the stopped ones go on from where they stopped, with the new
weights. Each turn's ``info['policy_version']`` is the policy version that sampled it (and each
trained trajectory's ``metadata['april_launched']`` the iteration that launched it), so a
carried trajectory mixes versions; the loss corrects the older turns with truncated importance
sampling (:mod:`turngym.trainers.losses.tis`), for which π_old is recomputed by the learner.

With ``carry: false`` the unfinished groups are closed and dropped instead (their envs closed).
A group in which an episode failed (``StopReason.is_failure``) is dropped at once (its unfinished
episodes closed), not re-rolled: the oversampling makes up for it. Carried state lives in this
process only: a resumed run starts without it (the envs cannot be checkpointed).

Metrics: ``april/version_lag_mean`` and ``april/version_lag_max`` (over the trained turns: the
policy version now minus the turn's), ``april/carried_groups`` (groups carried to the next
iteration), ``april/cancelled_episodes`` (episodes stopped mid-way this iteration).

| module | job |
|---|---|
| ``config`` | ``rollout.april``: enabled, oversample, carry, tis_cap |
| ``rollout`` | :class:`~turngym.trainers.april.rollout.PartialRollouts` and the version-lag metrics |

The TIS weight lives with the losses (:mod:`turngym.trainers.losses.tis`).
"""

from turngym.trainers.april.config import AprilConfig

__all__ = ["AprilConfig"]
