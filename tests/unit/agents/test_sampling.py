"""The hf sampler's token choice, by hand (turngym/agents/sampling.py's example)."""

from __future__ import annotations

import math

import torch

from turngym.agents.policy import SamplingParams
from turngym.agents.sampling import pick


def test_inverse_cdf_with_and_without_top_p() -> None:
    logits = torch.tensor([[0.5, 0.3, 0.2]]).log().repeat(3, 1)
    uniform = torch.tensor([0.4, 0.7, 0.85], dtype=torch.float64)
    # no truncation: c = [0.5, 0.8, 1.0]; first c_k > u
    tokens, logprobs, dist = pick(logits, SamplingParams(temperature=1.0), uniform)
    assert tokens.tolist() == [0, 1, 2]
    assert torch.allclose(logprobs, torch.tensor([0.5, 0.3, 0.2]).log())
    assert torch.allclose(dist.exp(), torch.tensor([0.5, 0.3, 0.2]).repeat(3, 1))
    # top_p 0.7 keeps tokens 0 and 1: c = [0.5, 0.8, 0.8], first c_k > 0.8 u
    tokens, logprobs, _ = pick(logits, SamplingParams(temperature=1.0, top_p=0.7), uniform)
    assert tokens.tolist() == [0, 1, 1]
    assert math.isclose(float(logprobs[2]), math.log(0.3), rel_tol=1e-6)  # untruncated log-prob


def test_temperature_zero_is_argmax_with_untempered_logprobs() -> None:
    logits = torch.tensor([[1.0, 3.0, 2.0]])
    uniform = torch.tensor([0.99], dtype=torch.float64)
    tokens, logprobs, _ = pick(logits, SamplingParams(temperature=0), uniform)
    assert tokens.tolist() == [1]
    assert math.isclose(float(logprobs[0]), float(torch.log_softmax(logits, -1)[0, 1]), rel_tol=1e-6)
