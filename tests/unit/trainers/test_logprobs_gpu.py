"""The chunked log-prob head on a CUDA GPU with bf16 weights: tensor-core products with fp32
results give the same log-probs as fp32 math on the CPU (skipped without a GPU)."""

from __future__ import annotations

import pytest
import torch

from turngym.trainers.logprobs import _product, head_logprobs

pytestmark = pytest.mark.gpu


def reference(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, ...]:
    logp_all = torch.log_softmax(hidden.double() @ weight.double().T, dim=-1)
    return logp_all.gather(-1, targets[:, None]).squeeze(-1), -(logp_all.exp() * logp_all).sum(-1)


def test_bf16_product_on_cuda_is_fp32_and_matches_upcast_operands() -> None:
    torch.manual_seed(0)
    a = torch.randn(256, 512, device="cuda").bfloat16()
    b = torch.randn(512, 384, device="cuda").bfloat16()
    got = _product(a, b)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, a.double() @ b.double(), atol=1e-3, rtol=1e-5, check_dtype=False)


def test_bf16_head_on_cuda_matches_fp64_on_the_same_values() -> None:
    torch.manual_seed(1)
    n, h, v = 300, 64, 5000
    hidden = (torch.randn(n, h) / 4).bfloat16()
    weight = torch.randn(v, h).bfloat16()
    targets = torch.randint(v, (n,))
    g_l, g_e = torch.randn(n), torch.randn(n)
    hc, wc = hidden.cuda().requires_grad_(), weight.cuda().requires_grad_()
    logp, ent = head_logprobs(hc, wc, targets.cuda(), chunk_tokens=128, vocab_chunk=1024)
    ((logp * g_l.cuda()).sum() + (ent * g_e.cuda()).sum()).backward()

    hr, wr = hidden.double().requires_grad_(), weight.double().requires_grad_()
    ref_logp, ref_ent = reference(hr, wr, targets)
    ((ref_logp * g_l.double()).sum() + (ref_ent * g_e.double()).sum()).backward()
    torch.testing.assert_close(logp.cpu().double(), ref_logp.detach(), atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(ent.cpu().double(), ref_ent.detach(), atol=1e-4, rtol=1e-5)
    # the gradients pass through bf16 (∂z rounded, bf16 results), as autograd through a bf16 head
    torch.testing.assert_close(hc.grad.cpu().double(), hr.grad, atol=2e-2, rtol=2e-2)
    torch.testing.assert_close(wc.grad.cpu().double(), wr.grad, atol=2e-2, rtol=2e-2)
