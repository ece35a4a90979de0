"""Per-token log-probs and entropies without the batch's full-vocabulary logits.

A causal LM ends in ``logits = h · Wᵀ`` (h [N, H] the decoder's last hidden states, W [V, H] the
output embedding). The plain path materialises ``logits`` [B, T, V] in fp32 plus a log-softmax copy
(8 rows × 4k tokens × 152k vocabulary ≈ 2 × 20 GB). Here only the decoder runs over the batch; the
head runs on the N positions that predict a real token (padding is never computed), ``chunk_tokens``
positions × ``vocab_chunk`` vocabulary rows at a time, so the largest temporary is one
[chunk_tokens, vocab_chunk] fp32 block whatever V is.

With z = h Wᵀ / τ (τ the temperature), y the next token, p = softmax(z):

* log p_y = z_y − log Z, log Z = logsumexp(z) = logsumexp_c ℓ_c over the vocabulary chunks c,
  ℓ_c = logsumexp(z_c) (each chunk's own, as in the online softmax);
* entropy H = log Z − Σ p z, with Σ p z = Σ_c e^{ℓ_c − log Z} S_c and S_c = Σ_{k∈c} e^{z_k − ℓ_c} z_k,
  the chunk's softmax-weighted mean of z;
* backward (the chunks are recomputed, nothing [N, V] is stored): with upstream gradients g_ℓ of
  log p_y and g_H of H,  ∂/∂z_k = g_ℓ (δ_{k,y} − p_k) − g_H · p_k (log p_k + H), then
  ∂h = (∂z · W) / τ and ∂W = (∂zᵀ · h) / τ.

All of this math runs in fp32 whatever the model's dtype. The matrix products (:func:`_product`)
give fp32 results: on a GPU with bf16/fp16 weights through the tensor cores (``torch.mm`` with
``out_dtype=float32``: bf16 inputs, fp32 accumulation and output, so z is the same as with up-cast
operands up to summation order, at the bf16 rate instead of the 15× slower fp32 one; in the
backward pass ∂z is rounded to the weights' dtype first, as autograd through a bf16 output layer
does); elsewhere on operands up-cast one chunk at a time. The recomputation costs one extra
[N, H] × [H, V] product in the backward pass, as in the fused linear–cross-entropy kernels of
Liger-Kernel and Apple's Cut Cross-Entropy (Wijmans et al., 2024), whose idea this follows.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from turngym.agents.adapters import base_model
from turngym.errors import TrainerError

_HALF = (torch.bfloat16, torch.float16)
_MM_OUT_DTYPE = hasattr(torch.ops.aten.mm, "dtype")
"""This torch has ``torch.mm(a, b, out_dtype=...)`` (a CUDA kernel for bf16/fp16 → fp32)."""


def _tensor_cores(t: torch.Tensor) -> bool:
    return _MM_OUT_DTYPE and t.is_cuda and t.dtype in _HALF


def _operand(t: torch.Tensor) -> torch.Tensor:
    """``t`` as :func:`_product` takes it: as it is for the tensor cores, else an fp32 copy (made
    once for all the products a chunk takes part in)."""
    return t if _tensor_cores(t) else t.float()


def _product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` in fp32, a [m, k] and b [k, n]: on CUDA with half-precision ``b`` through the
    tensor cores (``a`` rounded to ``b``'s dtype, fp32 accumulation and result), else on fp32
    copies of both (none made for an fp32 operand)."""
    if _tensor_cores(b):
        return torch.mm(a.to(b.dtype), b, out_dtype=torch.float32)
    return a.float() @ b.float()


class _ChunkedHead(torch.autograd.Function):
    """(log p_y [N], H [N]) of z = h Wᵀ / τ in chunks; see the module docstring."""

    @staticmethod
    def forward(  # type: ignore[override]  # autograd.Function's signature is generic
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        targets: torch.Tensor,
        scale: float,
        chunk_tokens: int,
        vocab_chunk: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n, vocab = hidden.shape[0], weight.shape[0]
        logz = hidden.new_empty(n, dtype=torch.float32)
        entropy = hidden.new_empty(n, dtype=torch.float32)
        picked = hidden.new_empty(n, dtype=torch.float32)
        for t0 in range(0, n, chunk_tokens):
            h = _operand(hidden[t0 : t0 + chunk_tokens])
            y = targets[t0 : t0 + chunk_tokens]
            lse, mean_z = [], []  # ℓ_c and S_c of each vocabulary chunk, [n_c] each
            for v0 in range(0, vocab, vocab_chunk):
                z = _product(h, weight[v0 : v0 + vocab_chunk].T)  # [n_c, v_c] fp32
                if scale != 1.0:
                    z.mul_(scale)
                lse.append(torch.logsumexp(z, dim=-1))
                mean_z.append(torch.linalg.vecdot(torch.sub(z, lse[-1][:, None]).exp_(), z))
                rows = ((y >= v0) & (y < v0 + z.shape[1])).nonzero().squeeze(-1)
                picked[t0 + rows] = z[rows, y[rows] - v0]
            parts = torch.stack(lse)  # [C, n_c]
            lz = torch.logsumexp(parts, dim=0)
            logz[t0 : t0 + chunk_tokens] = lz
            entropy[t0 : t0 + chunk_tokens] = lz - (torch.exp(parts - lz) * torch.stack(mean_z)).sum(0)
        ctx.set_materialize_grads(False)  # an output the loss does not use gets None, not zeros
        ctx.save_for_backward(hidden, weight, targets, logz, entropy)
        ctx.settings = (scale, chunk_tokens, vocab_chunk)
        return picked - logz, entropy

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, grad_logp: torch.Tensor | None, grad_entropy: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        hidden, weight, targets, logz, entropy = ctx.saved_tensors
        scale, chunk_tokens, vocab_chunk = ctx.settings
        if grad_logp is None and grad_entropy is None:
            return None, None, None, None, None, None
        n, vocab = hidden.shape[0], weight.shape[0]
        g_l = grad_logp.float() if grad_logp is not None else None
        g_h = grad_entropy.float() if grad_entropy is not None else None
        want_h, want_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_hidden = hidden.new_zeros(n, hidden.shape[1], dtype=torch.float32) if want_h else None
        grad_weight = torch.zeros_like(weight) if want_w else None
        for v0 in range(0, vocab, vocab_chunk):
            w = _operand(weight[v0 : v0 + vocab_chunk])  # [v_c, H]
            gw = torch.zeros_like(w, dtype=torch.float32) if want_w else None
            for t0 in range(0, n, chunk_tokens):
                sl = slice(t0, t0 + chunk_tokens)
                h = _operand(hidden[sl])
                logp = _product(h, w.T)  # then log p_k for k in this chunk, [n_c, v_c]
                if scale != 1.0:
                    logp.mul_(scale)
                logp.sub_(logz[sl, None])
                # ∂z = τ⁻¹ (g_ℓ δ_{k,y} − p_k c_k), c_k = g_ℓ + g_H (log p_k + H), in place on logp
                gz = torch.exp(logp)
                if g_h is not None:
                    coef = logp.add_(entropy[sl, None]).mul_(g_h[sl, None])
                    if g_l is not None:
                        coef.add_(g_l[sl, None])
                    gz.mul_(coef)
                else:
                    gz.mul_(g_l[sl, None])
                gz.mul_(-scale)
                if g_l is not None:
                    y = targets[sl]
                    rows = ((y >= v0) & (y < v0 + w.shape[0])).nonzero().squeeze(-1)
                    gz[rows, y[rows] - v0] += scale * g_l[sl][rows]
                if grad_hidden is not None:
                    grad_hidden[sl] += _product(gz, w)
                if gw is not None:
                    gw += _product(gz.T, h)
            if grad_weight is not None and gw is not None:
                grad_weight[v0 : v0 + vocab_chunk] = gw.to(weight.dtype)
        if grad_hidden is not None:
            grad_hidden = grad_hidden.to(hidden.dtype)
        return grad_hidden, grad_weight, None, None, None, None


def head_logprobs(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    temperature: float = 1.0,
    chunk_tokens: int = 1024,
    vocab_chunk: int = 16384,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log p(targets), entropy)``, both fp32 [N], of ``softmax(hidden · weightᵀ / temperature)``.

    ``hidden`` [N, H], ``weight`` [V, H] (the output embedding), ``targets`` [N] long in [0, V);
    ``temperature`` ≤ 0 means 1 (the untempered distribution, as the samplers report for greedy
    decoding). Differentiable in ``hidden`` and ``weight``; peak extra memory is one
    [chunk_tokens, vocab_chunk] fp32 block (plus the [N, H] gradient and the weight's gradient).
    Example: hidden [[1, 0]], weight [[1, 0], [0, 0]], target 0 → z = [1, 0],
    log p_0 = 1 − log(e + 1) = −0.3133, H = 0.5822 (see tests).
    """
    if chunk_tokens < 1 or vocab_chunk < 1:
        raise TrainerError(
            f"chunk sizes must be >= 1, got {chunk_tokens} tokens and {vocab_chunk} vocab rows"
        )
    if hidden.shape[0] == 0:
        empty = hidden.new_zeros(0, dtype=torch.float32)
        return empty, empty
    scale = 1.0 / temperature if temperature > 0 else 1.0
    out: tuple[torch.Tensor, torch.Tensor] = _ChunkedHead.apply(
        hidden, weight, targets, scale, chunk_tokens, vocab_chunk
    )
    return out


def output_layer(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.Tensor]:
    """``(decoder, W)`` of a ``transformers`` causal LM (also one wrapped by ``peft``): the module
    that returns the last hidden states and the output-embedding weight [V, H]."""
    head = model.get_output_embeddings()  # type: ignore[operator]  # transformers' PreTrainedModel
    decoder = model.get_decoder()  # type: ignore[operator]
    if not isinstance(head, torch.nn.Linear) or head.bias is not None:
        raise TrainerError(
            f"chunked log-probs need a bias-free linear output layer, got {type(head).__name__}; set "
            "model.logprob_chunk_tokens=0 for the plain path"
        )
    return decoder, head.weight


def decoder_output(
    model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """The decoder's last hidden states [B, T, H], taken from a forward of the whole model that
    asks for one position's logits (``logits_to_keep=1``).

    Going through the model's own forward, not the decoder's, is what lets an FSDP2-sharded model
    (:func:`~turngym.trainers.distributed.shard`) work: the root module's hooks gather the output
    layer, which the root keeps unsharded after its forward, and reduce its gradient after the
    backward; the [B, 1, V] logits are left unused.
    """
    decoder, _ = output_layer(model)
    inner = base_model(model)
    if "logits_to_keep" not in inspect.signature(inner.forward).parameters:
        raise TrainerError(
            f"{type(inner).__name__}.forward takes no logits_to_keep, which chunked log-probs need; set "
            "model.logprob_chunk_tokens=0 for the plain path"
        )
    seen: list[torch.Tensor] = []
    handle = decoder.register_forward_hook(lambda _m, _a, out: seen.append(out.last_hidden_state))
    try:
        model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, logits_to_keep=1)
    finally:
        handle.remove()
    return seen[-1]


def chunked_sequence_logprobs(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    temperature: float = 1.0,
    with_entropy: bool = False,
    chunk_tokens: int = 1024,
    vocab_chunk: int = 16384,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log π(x_j | x_<j) [B, T] (0 at position 0 and on padding), and the entropies when asked,
    of right-padded rows; only positions whose next token is real reach the head."""
    hidden = decoder_output(model, input_ids, attention_mask)
    _, weight = output_layer(model)  # read after the forward: a sharded root holds it whole now
    valid = attention_mask[:, 1:].bool()  # position j-1 predicts token j
    logp_n, ent_n = head_logprobs(
        hidden[:, :-1][valid],
        weight,
        input_ids[:, 1:][valid],
        temperature=temperature,
        chunk_tokens=chunk_tokens,
        vocab_chunk=vocab_chunk,
    )
    logprobs = logp_n.new_zeros(input_ids.shape)
    logprobs[:, 1:] = logprobs[:, 1:].masked_scatter(valid, logp_n)
    if not with_entropy:
        return logprobs, None
    entropy = ent_n.new_zeros(input_ids.shape)
    entropy[:, 1:] = entropy[:, 1:].masked_scatter(valid, ent_n)
    return logprobs, entropy


def plain_sequence_logprobs(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    temperature: float = 1.0,
    with_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The same numbers through the model's full [B, T, V] logits (fp32 log-softmax of all of them)."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits[:, :-1].float()
    if temperature > 0:
        logits = logits / temperature
    logp_all = torch.log_softmax(logits, dim=-1)
    picked = logp_all.gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    zero = torch.zeros_like(picked[:, :1])
    entropy = None
    if with_entropy:
        entropy = torch.cat([zero, -(logp_all.exp() * logp_all).sum(-1)], dim=1)
    return torch.cat([zero, picked], dim=1), entropy
