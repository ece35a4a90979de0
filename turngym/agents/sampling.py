"""Token choice of the ``hf`` sampler: one step's tokens from logits and per-row uniform draws.

Formulas (``z`` a row's float32 logits, ``T`` the temperature, ``u`` the row's ``U[0, 1)`` draw
for this step):

* ``log p = log_softmax(z / T)`` (``T = 0``: ``log_softmax(z)`` and the argmax is taken); the
  reported log-prob of the token and the entropy ``-Σ p log p`` come from this ``p``, before any
  top-p truncation (as vLLM and verl report them);
* top-p keeps the smallest set of most likely tokens whose mass reaches ``top_p`` (a token is
  kept when the mass of the strictly more likely ones is below ``top_p``);
* inverse CDF: with ``c`` the cumulative kept mass in vocabulary order, the token is the first
  ``k`` with ``c_k > u · c_V``.

Example: ``p = [0.5, 0.3, 0.2]``, ``top_p = 0.7`` keeps tokens 0 and 1 (mass before token 2 is
0.8 ≥ 0.7); ``c = [0.5, 0.8, 0.8]``; ``u = 0.7`` picks the first ``c_k > 0.56``: token 1.

Each row's draws come from its own CPU generator (:func:`row_generator`), so a row's tokens do
not depend on its batch mates or the device.
"""

from __future__ import annotations

import secrets

import torch

from turngym.agents.policy import SamplingParams, derive_seed


def pick(
    logits: torch.Tensor, params: SamplingParams, uniform: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sampled tokens, their log-probs and the full log-prob rows they came from.

    Row ``b`` takes the first token whose cumulative (kept, unnormalised) probability exceeds
    ``uniform[b]`` (its own ``U[0, 1)`` draw for this step) times the kept mass.
    """
    if params.temperature == 0:
        dist = torch.log_softmax(logits, dim=-1)
        tokens = dist.argmax(-1)
    else:
        dist = torch.log_softmax(logits / params.temperature, dim=-1)
        probs = dist.exp()
        if params.top_p < 1.0:
            sorted_p, order = probs.sort(dim=-1, descending=True)
            before = sorted_p.cumsum(-1) - sorted_p  # mass of the strictly more likely tokens
            sorted_p = sorted_p.masked_fill(before >= params.top_p, 0.0)
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
        cdf = probs.double().cumsum(-1)
        target = (uniform[:, None] * cdf[:, -1:]).clamp(max=cdf[:, -1:] * (1 - 1e-12))
        tokens = torch.searchsorted(cdf, target, right=True).squeeze(-1)
    return tokens, dist.gather(-1, tokens[:, None]).squeeze(-1), dist


def row_generator(seed: int | None, sample: int, n: int) -> torch.Generator:
    """The CPU generator of sample ``sample`` of a prompt seeded ``seed`` (OS entropy when None)."""
    generator = torch.Generator()
    if seed is None:
        generator.manual_seed(secrets.randbits(63))
    else:
        generator.manual_seed(seed if n == 1 else derive_seed(seed, sample))
    return generator
