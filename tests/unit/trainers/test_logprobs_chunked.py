"""The memory-bounded log-prob head: hand-computed values, equality with the full log-softmax
(values and gradients), the sequence wrapper, token-budget micro-batches and exact accumulation."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from turngym.errors import TrainerError
from turngym.trainers.batching import TokenRow, collate, token_budget_chunks
from turngym.trainers.learner import enable_checkpointing
from turngym.trainers.logprobs import (
    chunked_sequence_logprobs,
    decoder_output,
    head_logprobs,
    plain_sequence_logprobs,
)
from turngym.trainers.update import UpdateSettings, batch_logprobs, minibatch_loss, token_logprobs


def full_reference(hidden, weight, targets, temperature):
    logits = (hidden.double() @ weight.double().T) / temperature
    logp_all = torch.log_softmax(logits, dim=-1)
    picked = logp_all.gather(-1, targets[:, None]).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return picked, entropy


def test_hand_computed_two_token_vocabulary():
    # z = [1, 0]: log p_0 = 1 - log(e + 1) = -0.31326; H = -(p log p + q log q) with p = e/(e+1)
    logp, ent = head_logprobs(
        torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.tensor([0])
    )
    p = math.e / (math.e + 1)
    assert logp.item() == pytest.approx(1 - math.log(math.e + 1), abs=1e-6)
    assert logp.item() == pytest.approx(-0.31326, abs=1e-5)
    assert ent.item() == pytest.approx(-(p * math.log(p) + (1 - p) * math.log(1 - p)), abs=1e-6)
    assert ent.item() == pytest.approx(0.58220, abs=1e-5)


@pytest.mark.parametrize(
    ("chunk_tokens", "vocab_chunk", "temperature"), [(3, 7, 1.0), (64, 64, 0.7), (1, 1, 2.0)]
)
def test_chunked_head_equals_full_log_softmax_in_values_and_gradients(chunk_tokens, vocab_chunk, temperature):
    torch.manual_seed(0)
    n, h, v = 10, 6, 23  # chunks that do not divide N or V
    hidden = torch.randn(n, h, requires_grad=True)
    weight = torch.randn(v, h, requires_grad=True)
    targets = torch.randint(v, (n,))
    g_l, g_e = torch.randn(n), torch.randn(n)

    logp, ent = head_logprobs(
        hidden, weight, targets, temperature=temperature, chunk_tokens=chunk_tokens, vocab_chunk=vocab_chunk
    )
    ((logp * g_l).sum() + (ent * g_e).sum()).backward()
    got = (hidden.grad.clone(), weight.grad.clone())
    hidden.grad = weight.grad = None

    ref_logp, ref_ent = full_reference(hidden, weight, targets, temperature)
    ((ref_logp * g_l.double()).sum() + (ref_ent * g_e.double()).sum()).backward()
    torch.testing.assert_close(logp.double(), ref_logp.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ent.double(), ref_ent.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got[0], hidden.grad.float(), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got[1], weight.grad.float(), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("used", [0, 1], ids=["logp only", "entropy only"])
def test_chunked_head_gradients_when_the_loss_uses_one_output(used):
    torch.manual_seed(2)
    hidden = torch.randn(7, 5, requires_grad=True)
    weight = torch.randn(13, 5, requires_grad=True)
    targets = torch.randint(13, (7,))
    head_logprobs(hidden, weight, targets, vocab_chunk=4, temperature=0.5)[used].sum().backward()
    got = (hidden.grad.clone(), weight.grad.clone())
    hidden.grad = weight.grad = None
    full_reference(hidden, weight, targets, 0.5)[used].sum().backward()
    torch.testing.assert_close(got[0], hidden.grad.float(), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got[1], weight.grad.float(), atol=1e-5, rtol=1e-4)


def test_chunked_head_on_bf16_weights_computes_in_fp32_and_returns_grads_in_bf16():
    torch.manual_seed(1)
    hidden = torch.randn(5, 8).bfloat16().requires_grad_()
    weight = torch.randn(11, 8).bfloat16().requires_grad_()
    targets = torch.randint(11, (5,))
    logp, _ = head_logprobs(hidden, weight, targets, vocab_chunk=4)
    assert logp.dtype == torch.float32
    ref, _ = full_reference(hidden.float(), weight.float(), targets, 1.0)
    torch.testing.assert_close(logp.double(), ref, atol=1e-5, rtol=1e-5)
    logp.sum().backward()
    assert hidden.grad.dtype == torch.bfloat16 and weight.grad.dtype == torch.bfloat16


def test_bad_chunk_sizes_are_refused():
    with pytest.raises(TrainerError, match="chunk sizes must be >= 1"):
        head_logprobs(torch.zeros(1, 2), torch.zeros(3, 2), torch.tensor([0]), chunk_tokens=0)


def padded_batch():
    rows = [
        TokenRow((1, 2, 3, 4, 5), (0, 0, 1, 1, 1), (0.0, 0.0, 1.0, 1.0, 1.0), (0.0,) * 5),
        TokenRow((6, 7), (0, 1), (0.0, -1.0), (0.0, 0.0)),
        TokenRow((8, 9, 10), (0, 1, 1), (0.0, 0.5, 0.5), (0.0,) * 3),
    ]
    return collate(rows, pad_id=0)


def test_sequence_logprobs_match_the_plain_path_on_real_tokens_and_are_zero_on_padding(micro_model):
    batch = padded_batch()
    ids, attn = batch.input_ids, batch.attention_mask
    with torch.no_grad():
        got, got_ent = chunked_sequence_logprobs(
            micro_model, ids, attn, temperature=0.8, with_entropy=True, chunk_tokens=3, vocab_chunk=16
        )
        ref, ref_ent = plain_sequence_logprobs(micro_model, ids, attn, temperature=0.8, with_entropy=True)
    real = torch.zeros_like(attn, dtype=torch.bool)
    real[:, 1:] = attn[:, 1:].bool()
    torch.testing.assert_close(got[real], ref[real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_ent[real], ref_ent[real], atol=1e-5, rtol=1e-5)
    assert (got[~real] == 0).all() and (got_ent[~real] == 0).all()


def test_decoder_output_is_the_decoders_last_hidden_state_and_no_full_logits(micro_model):
    batch = padded_batch()
    ids, attn = batch.input_ids, batch.attention_mask
    heads: list[torch.Tensor] = []
    handle = micro_model.lm_head.register_forward_hook(lambda _m, _a, out: heads.append(out))
    with torch.no_grad():
        got = decoder_output(micro_model, ids, attn)
        want = micro_model.model(input_ids=ids, attention_mask=attn, use_cache=False).last_hidden_state
    handle.remove()
    torch.testing.assert_close(got, want, atol=0, rtol=0)
    assert [h.shape for h in heads] == [(ids.shape[0], 1, 40)]  # one position's logits, not [B, T, V]


def test_a_model_without_logits_to_keep_is_told_to_use_the_plain_path(micro_model):
    class Older(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = micro_model

        def get_decoder(self) -> torch.nn.Module:
            return self.inner.model

        def get_output_embeddings(self) -> torch.nn.Module:
            return self.inner.lm_head

        def forward(self, input_ids, attention_mask, use_cache=False):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask)

    batch = padded_batch()
    with pytest.raises(TrainerError, match=r"takes no logits_to_keep.*model\.logprob_chunk_tokens=0"):
        decoder_output(Older(), batch.input_ids, batch.attention_mask)


def test_token_budget_chunks_hand_example():
    ids = torch.arange(4)
    assert token_budget_chunks(ids, torch.tensor([3, 9, 4, 8]), 18) == [[1, 3], [2, 0]]
    assert token_budget_chunks(ids, torch.tensor([3, 9, 4, 8]), 16) == [[1], [3, 2], [0]]


def test_token_budget_chunks_keep_trajectories_whole_and_give_an_oversized_one_its_own_chunk():
    seq = torch.tensor([0, 0, 1, 2, 2])
    lengths = torch.tensor([4, 6, 5, 2, 3])
    chunks = token_budget_chunks(seq, lengths, 10)
    # trajectory 0 (rows 0, 1; longest 6) alone costs 2 × 6 = 12 > 10: a chunk of its own
    assert chunks == [[0, 1], [2], [3, 4]]
    with pytest.raises(TrainerError, match="max_tokens=0"):
        token_budget_chunks(seq, lengths, 0)


def test_batch_logprobs_in_token_budget_chunks_equal_one_pass(micro_model):
    batch = padded_batch()
    settings = UpdateSettings(max_tokens_per_micro_batch=6, logprob_chunk_tokens=2, vocab_chunk=8)
    got = batch_logprobs(micro_model, batch, settings)
    with torch.no_grad():
        ref = token_logprobs(micro_model, batch).logprobs
    mask = batch.loss_mask.bool()
    torch.testing.assert_close(got[mask], ref[mask], atol=1e-5, rtol=1e-5)


def grads(model):
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


@pytest.mark.parametrize("aggregation", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
def test_token_budget_accumulation_equals_one_big_micro_batch(micro_model, aggregation):
    batch = padded_batch()
    batch = type(batch)(
        batch.input_ids, batch.attention_mask, batch.loss_mask, batch.advantages,
        old_logprobs=batch_logprobs(micro_model, batch, UpdateSettings()) - 0.05 * batch.loss_mask,
    )  # fmt: skip
    results = []
    for budget, chunk in ((None, 0), (5, 2), (1, 1024)):
        model = copy.deepcopy(micro_model)
        settings = UpdateSettings(
            aggregation=aggregation, max_len=8, micro_batch_rows=3, mini_batch_rows=3,
            max_tokens_per_micro_batch=budget, logprob_chunk_tokens=chunk, entropy_coef=0.01,
        )  # fmt: skip
        stats = minibatch_loss(model, batch, settings)
        results.append((stats["loss/total"], grads(model)))
    for loss, grad in results[1:]:
        assert loss == pytest.approx(results[0][0], abs=1e-6)
        torch.testing.assert_close(grad, results[0][1], atol=1e-6, rtol=1e-4)


def saved_elements(model, batch):
    """Elements of the tensors autograd keeps for backward during one decoder forward pass."""
    count = [0]

    def pack(t):
        count[0] += t.numel()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False)
    return count[0]


def test_gradient_checkpointing_keeps_fewer_activations_and_gives_the_same_gradients(micro_model):
    batch = padded_batch()
    settings = UpdateSettings(micro_batch_rows=3, mini_batch_rows=3)
    plain = copy.deepcopy(micro_model).train()
    ckpt = copy.deepcopy(micro_model).train()
    enable_checkpointing(ckpt)
    assert saved_elements(ckpt, batch) * 5 < saved_elements(plain, batch)
    minibatch_loss(plain, batch, settings)
    minibatch_loss(ckpt, batch, settings)
    torch.testing.assert_close(grads(ckpt), grads(plain), atol=1e-6, rtol=1e-5)
