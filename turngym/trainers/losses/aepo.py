"""AEPO's entropy-balanced policy optimisation (Dong et al., arXiv 2510.14545; research note §3.6):
the entropy-aware advantage and the tokens whose upper clip keeps its gradient.

Entropy-aware advantage: with H [B, T] the token entropies of the current policy and z the
entropies standardised over the loss tokens of the micro-batch (unbiased std, + 1e-6), detached,

    Ã_t = A_t·(1 + c·z_t)            (AEPO: c = 0.2)

Fixture (note §3.6): A = 1, z = +1 → 1.2; z = −1 → 0.8.

Gradient-preserving clipping (the "entropy clipping-balanced mechanism"): above 1 + ε_high the
PPO ratio ρ is replaced by (1 + ε_high)·ρ/sg(ρ), whose value is still 1 + ε_high but whose gradient
is (1 + ε_high)·∇log π instead of zero (:func:`~turngym.trainers.losses.ppo_clip.ppo_clip_loss`,
``preserve_high``). AEPO's code does it for every token; the paper motivates it with the
high-entropy ones, so :func:`preserved_tokens` offers both.
"""

from __future__ import annotations

import torch

from turngym.errors import ConfigError

EPS = 1e-6


def standardized_entropy(entropy: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """z [B, T]: ``entropy`` standardised over the tokens of ``mask`` (0 elsewhere), detached."""
    m = mask.bool()
    values = entropy.detach()[m]
    if values.numel() < 2:
        return torch.zeros_like(entropy)
    z = (entropy.detach() - values.mean()) / (values.std() + EPS)
    return torch.where(m, z, torch.zeros_like(z))


def entropy_scaled_advantages(
    advantages: torch.Tensor, entropy: torch.Tensor, mask: torch.Tensor, coef: float
) -> torch.Tensor:
    """Ã = A·(1 + coef·z), all [B, T] (module docstring)."""
    return advantages * (1.0 + coef * standardized_entropy(entropy, mask))


def preserved_tokens(entropy: torch.Tensor | None, mask: torch.Tensor, which: str) -> torch.Tensor:
    """bool [B, T]: the tokens whose upper clip keeps its gradient: every loss token (``all``) or
    those with entropy above the micro-batch mean (``high_entropy``)."""
    if which == "all":
        return mask.bool()
    if which != "high_entropy":
        raise ConfigError(f"balanced clipping applies to 'all' or 'high_entropy' tokens, got {which!r}")
    if entropy is None:
        raise ConfigError("balanced clipping of high-entropy tokens needs the token entropies")
    return mask.bool() & (standardized_entropy(entropy, mask) > 0)
