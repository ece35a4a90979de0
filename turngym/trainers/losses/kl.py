"""Per-token KL estimators between the trained policy π and a frozen reference π_ref (Schulman's
"Approximating KL divergence" note; verl's names). With δ = log π_ref − log π on sampled tokens:

* ``k1``:          −δ = log π − log π_ref (unbiased, can be negative).
* ``k2``:          ½·δ² (biased, low variance).
* ``k3``:          exp(δ) − 1 − δ (unbiased, always ≥ 0).
* ``low_var_kl``:  k3 with δ clamped to [−20, 20] and the result clamped to [−10, 10] (verl).

Example: log π = −1, log π_ref = −2 → δ = −1: k1 = 1, k2 = 0.5, k3 = e^{−1} − 1 + 1 = 0.3679.
"""

from __future__ import annotations

import torch

from turngym.errors import ConfigError

KINDS = ("k1", "k2", "k3", "low_var_kl")


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, kind: str = "low_var_kl") -> torch.Tensor:
    """Elementwise KL estimate of ``kind``."""
    delta = ref_logprobs - logprobs
    if kind == "k1":
        return -delta
    if kind == "k2":
        return 0.5 * delta.square()
    if kind == "k3":
        return torch.exp(delta) - 1 - delta
    if kind == "low_var_kl":
        d = delta.clamp(-20.0, 20.0)
        return (torch.exp(d) - 1 - d).clamp(-10.0, 10.0)
    raise ConfigError(f"unknown KL estimator {kind!r}; choose one of {KINDS}")
