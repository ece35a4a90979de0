"""Training precision: the model's dtype, and fp32 master weights for a bf16/fp16 model.

``model.dtype`` sets the dtype of the weights and therefore of the activations (``float32``,
``bfloat16``, ``float16``). The log-prob head and the losses always compute in fp32
(:mod:`turngym.trainers.logprobs`). A plain AdamW over bf16 weights keeps its moments in bf16 and
adds each update to a bf16 weight, where an update smaller than 2⁻⁸ of the weight is rounded away.
``optim.fp32_master_weights`` keeps an fp32 copy of every trainable weight instead
(:class:`MasterWeightsAdamW`, the mixed-precision recipe of Micikevicius et al., 2018): the
gradients are copied up to fp32, clipped and stepped there (AdamW's moments are fp32 too), and the
result is rounded into the model's weights. fp16 needs it, with dynamic loss scaling: the loss is
multiplied by ``loss_scale`` before backward, the fp32 gradients are divided by it, and a step
whose gradients overflowed is skipped and halves the scale (it doubles after ``growth_interval``
clean steps).
"""

from __future__ import annotations

import math
from typing import Any

import torch


def trainable_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The parameters an optimizer updates (all of them, or a LoRA adapter's)."""
    return [p for p in model.parameters() if p.requires_grad]


class MasterWeightsAdamW:
    """AdamW on fp32 copies of a low-precision model's trainable weights (see the module docstring).

    ``optimizer`` is the inner ``torch.optim.AdamW`` over the fp32 copies (hand it to an LR
    scheduler). ``state_dict()`` holds the copies, the inner state and the loss scale, so a resumed
    run continues from the same fp32 numbers.
    """

    def __init__(
        self,
        params: list[torch.nn.Parameter],
        *,
        lr: float,
        weight_decay: float,
        loss_scaling: bool = False,
        init_scale: float = 2.0**16,
        growth_interval: int = 200,
    ) -> None:
        self.params = params
        self.master = [p.detach().float().clone().requires_grad_(True) for p in params]
        self.optimizer = torch.optim.AdamW(self.master, lr=lr, weight_decay=weight_decay)
        self.loss_scale = init_scale if loss_scaling else 1.0
        self.loss_scaling = loss_scaling
        self.growth_interval = growth_interval
        self._clean_steps = 0
        self.skipped_steps = 0

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def clip_and_step(self, max_norm: float) -> float:
        """Unscale the gradients into fp32, clip their global norm, step, write the weights back.

        Returns the pre-clip gradient norm (inf or nan when the step was skipped for overflow).
        """
        for p, m in zip(self.params, self.master, strict=True):
            m.grad = None if p.grad is None else p.grad.float() / self.loss_scale
        norm = float(torch.nn.utils.clip_grad_norm_(self.master, max_norm))
        if not math.isfinite(norm):
            self.skipped_steps += 1
            if self.loss_scaling:
                self.loss_scale /= 2.0
                self._clean_steps = 0
            return norm
        self.optimizer.step()
        with torch.no_grad():
            for p, m in zip(self.params, self.master, strict=True):
                p.copy_(m)
        if self.loss_scaling:
            self._clean_steps += 1
            if self._clean_steps % self.growth_interval == 0:
                self.loss_scale *= 2.0
        return norm

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "master": [m.detach().clone() for m in self.master],
            "loss_scale": self.loss_scale,
            "clean_steps": self._clean_steps,
            "skipped_steps": self.skipped_steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        with torch.no_grad():
            for m, saved in zip(self.master, state["master"], strict=True):
                m.copy_(saved)
        self.loss_scale = float(state["loss_scale"])
        self._clean_steps = int(state["clean_steps"])
        self.skipped_steps = int(state["skipped_steps"])


def build_optimizer(
    model: torch.nn.Module, *, lr: float, weight_decay: float, fp32_master: bool
) -> tuple[torch.optim.Optimizer | MasterWeightsAdamW, torch.optim.Optimizer]:
    """``(optimizer, the torch optimizer an LR scheduler drives)`` over the trainable weights:
    plain AdamW in the model's dtype, or :class:`MasterWeightsAdamW` when ``fp32_master`` and the
    weights are not already fp32."""
    params = trainable_parameters(model)
    low = any(p.dtype != torch.float32 for p in params)
    if fp32_master and low:
        loss_scaling = any(p.dtype == torch.float16 for p in params)
        master = MasterWeightsAdamW(params, lr=lr, weight_decay=weight_decay, loss_scaling=loss_scaling)
        return master, master.optimizer
    plain = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    return plain, plain


def clip_and_step(
    optimizer: torch.optim.Optimizer | MasterWeightsAdamW, model: torch.nn.Module, max_norm: float
) -> float:
    """Clip the global gradient norm to ``max_norm`` and take one step; returns the pre-clip norm."""
    if isinstance(optimizer, MasterWeightsAdamW):
        return optimizer.clip_and_step(max_norm)
    norm = torch.nn.utils.clip_grad_norm_(trainable_parameters(model), max_norm)
    norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm  # FSDP: a DTensor
    optimizer.step()
    return float(norm)
