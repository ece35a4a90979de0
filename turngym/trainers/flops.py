"""Model-FLOPs utilisation (MFU) of a learner step: the FLOPs the model's matrix products need,
divided by what the hardware could have done in the same time.

A dense transformer spends about 2·N FLOPs per token in the forward pass and 4·N in the backward
pass (N parameters), the 6·N·T rule of Kaplan et al. (2020) and of PaLM's MFU (Chowdhery et al.,
2022; attention's own T² term left out). With frozen weights (LoRA) the backward pass still
propagates activation gradients through every layer (2·N) but forms weight gradients only for the
N_t trainable parameters (2·N_t): (4·N + 2·N_t)·T, which is 6·N·T when everything trains.
"""

from __future__ import annotations

PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12}
"""Dense bf16 tensor-core peak in FLOP/s (NVIDIA's H100 SXM and H200 SXM data sheets: 989 TFLOPS;
the doubled figures they also print assume 2:4 sparsity)."""


def learner_flops(params: int, tokens: int, trainable: int | None = None) -> float:
    """FLOPs of one forward + backward pass over ``tokens`` tokens of a ``params``-parameter model
    of which ``trainable`` (default: all) get weight gradients.

    Example: 1.5e9 parameters, 4096 tokens, all trainable → 6 · 1.5e9 · 4096 = 3.6864e13.
    """
    if params < 1 or tokens < 0:
        raise ValueError(f"need params >= 1 and tokens >= 0, got {params} and {tokens}")
    n_t = params if trainable is None else trainable
    return float((4 * params + 2 * n_t) * tokens)


def mfu(flops: float, seconds: float, peak_flops: float) -> float:
    """``flops`` done in ``seconds`` as a fraction of ``peak_flops`` FLOP/s.

    Example: 3.6864e13 FLOPs in 0.1 s on an H100 (989e12) → 3.6864e14 / 9.89e14 = 0.37274.
    """
    if seconds <= 0 or peak_flops <= 0:
        raise ValueError(f"need seconds > 0 and peak_flops > 0, got {seconds} and {peak_flops}")
    return flops / (seconds * peak_flops)


def peak_for(device_name: str) -> float | None:
    """The bf16 peak of a device whose name contains H100 or H200 (None for others)."""
    for key, value in PEAK_BF16_FLOPS.items():
        if key in device_name.upper():
            return value
    return None
