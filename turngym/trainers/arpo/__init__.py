"""ARPO (Agentic Reinforced Policy Optimization, Dong et al., arXiv 2507.19849) and AEPO's
entropy-balancing switches (arXiv 2510.14545), selected with ``rollout.strategy: arpo``.

| module | job |
|---|---|
| ``config`` | ``rollout.arpo``: budget M, initial N, k, α, β, beam, attribution, AEPO switches |
| ``entropy`` | step entropy from top-k log-probs, branch probability, AEPO's budget split |
| ``rollout`` | :func:`~turngym.trainers.arpo.rollout.run_branching`: the branching rollout |
| ``attribution`` | ``soft`` / ``hard`` advantage attribution over the branch tree |
| ``metrics`` | ``arpo/`` metrics and tool calls per trajectory |

The AEPO loss switches live with the losses (:mod:`turngym.trainers.losses.aepo`).
"""

from turngym.trainers.arpo.config import ATTRIBUTIONS, ArpoConfig
from turngym.trainers.arpo.entropy import branch_probability, global_samples, segment_entropy

__all__ = ["ATTRIBUTIONS", "ArpoConfig", "branch_probability", "global_samples", "segment_entropy"]
