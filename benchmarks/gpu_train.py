"""Learner throughput, peak GPU memory and MFU of PPO steps at real scale, on one CUDA GPU.

Two jobs, both on randomly initialised models with the true shapes (``hf:random:<arch>``):

* ``hf:random:qwen2.5-1.5b``, every weight trained, bf16 weights and activations, fp32 master
  weights and AdamW state;
* ``hf:random:qwen2.5-7b`` with a rank-16 LoRA adapter on every linear layer (bf16 base).

Each step is the trainer's own code: the π_old pass (:func:`~turngym.trainers.update.batch_logprobs`)
and one optimizer step (:func:`~turngym.trainers.update.ppo_update`) over ``--batch`` rows of
``--length`` tokens, with gradient checkpointing, the chunked log-prob head and micro-batches of
``--token-budget`` tokens. After ``--warmup`` steps, ``--steps`` steps are timed (CUDA-synchronised):

* ``tokens/s``: rows × length of one optimizer step divided by its seconds (the π_old pass apart);
* ``peak GB``: ``torch.cuda.max_memory_allocated`` over the timed steps;
* ``MFU``: :func:`~turngym.trainers.flops.learner_flops` of the step's tokens (6·N·T with every
  weight trained; 4·N·T + 2·N_lora·T with LoRA) over its seconds and the device's bf16 peak
  (989 TFLOP/s on H100/H200; ``--peak-tflops`` for others).

    python benchmarks/gpu_train.py                      # both jobs, batch 8 × 4096 tokens
    python benchmarks/gpu_train.py --jobs qwen2.5-1.5b --steps 5

Writes ``benchmarks/results/gpu_train.json`` and prints a markdown table. Needs a CUDA GPU with
about 80 GB for the 7B job. ``--device cpu --layers 1 --vocab 4096 --peak-tflops 1`` runs the same code on a
CPU at toy sizes (peak memory is then the process's peak RSS): the smoke test that keeps the script
working between GPU sessions.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from train_memory import reset_peak, rss_gb  # this folder: the CPU smoke test reads peak RSS the same way

from turngym.agents.random_models import build_random
from turngym.trainers.batching import TrainBatch
from turngym.trainers.flops import learner_flops, mfu, peak_for
from turngym.trainers.learner import enable_checkpointing
from turngym.trainers.lora import apply_lora
from turngym.trainers.precision import build_optimizer
from turngym.trainers.update import UpdateSettings, batch_logprobs, ppo_update

RESULTS = Path(__file__).parent / "results" / "gpu_train.json"
SMOKE = "a smoke test on the CPU: --device cpu --layers 1 --vocab 4096 --peak-tflops 1"
JOBS = {
    "qwen2.5-1.5b": {"lora": 0, "fp32_master": True, "lr": 1e-6},
    "qwen2.5-7b": {"lora": 16, "fp32_master": False, "lr": 1e-5},
}


def synthetic_batch(vocab: int, rows: int, length: int) -> TrainBatch:
    """``rows`` × ``length`` random tokens; the last three quarters of each row are action tokens
    with advantage +1 (even rows) or −1 (odd rows)."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(vocab, (rows, length), generator=g)
    loss_mask = torch.zeros(rows, length, dtype=torch.long)
    loss_mask[:, length // 4 :] = 1
    sign = torch.tensor([1.0 if r % 2 == 0 else -1.0 for r in range(rows)])
    return TrainBatch(
        ids, torch.ones_like(ids), loss_mask, loss_mask * sign[:, None], torch.zeros(rows, length)
    )


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _reset_peak(device: str) -> None:
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    else:
        reset_peak()


def _peak_gb(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return rss_gb("VmHWM")


def run_job(arch: str, args: argparse.Namespace, peak: float) -> dict:
    job = JOBS[arch]
    device = args.device
    if device == "cuda":
        torch.cuda.empty_cache()
    overrides = {"num_hidden_layers": args.layers} if args.layers else {}
    if args.vocab:
        overrides["vocab_size"] = args.vocab
    _, model = build_random(f"random:{arch}", dtype=torch.bfloat16, device=device, **overrides)
    params = sum(p.numel() for p in model.parameters())
    enable_checkpointing(model)
    if job["lora"]:
        model = apply_lora(
            model,
            rank=job["lora"],
            alpha=2.0 * job["lora"],
            dropout=0.0,
            target_modules="all-linear",
            base=arch,
        )
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    optimizer, _ = build_optimizer(model, lr=job["lr"], weight_decay=0.0, fp32_master=job["fp32_master"])
    settings = UpdateSettings(
        mini_batch_rows=args.batch, micro_batch_rows=args.batch, max_tokens_per_micro_batch=args.token_budget
    )
    batch = synthetic_batch(model.config.vocab_size, args.batch, args.length)
    tokens = args.batch * args.length
    step_s, old_s = [], []
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            _reset_peak(device)
        _sync(device)
        t0 = time.perf_counter()
        old = batch_logprobs(model, batch, settings)
        _sync(device)
        t1 = time.perf_counter()
        step_batch = TrainBatch(batch.input_ids, batch.attention_mask, batch.loss_mask, batch.advantages, old)
        ppo_update(model, optimizer, None, step_batch, settings, generator=torch.Generator())
        _sync(device)
        t2 = time.perf_counter()
        if step >= args.warmup:
            old_s.append(t1 - t0)
            step_s.append(t2 - t1)
    seconds = sorted(step_s)[len(step_s) // 2]
    result = {
        "arch": arch,
        "lora_rank": job["lora"],
        "params": params,
        "trainable": trainable,
        "tokens_per_step": tokens,
        "step_s": seconds,
        "old_pass_s": sorted(old_s)[len(old_s) // 2],
        "tokens_per_s": tokens / seconds,
        "peak_gb": _peak_gb(device),
        "mfu": mfu(learner_flops(params, tokens, trainable), seconds, peak),
    }
    del model, optimizer
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", nargs="+", default=list(JOBS), choices=list(JOBS))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=4096)
    parser.add_argument("--token-budget", type=int, default=16384)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--peak-tflops", type=float, default=None, help="bf16 peak of a GPU not in the table")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cpu: the smoke test")
    parser.add_argument("--layers", type=int, default=None, help="keep the first N decoder layers")
    parser.add_argument("--vocab", type=int, default=None, help="a smaller vocabulary (smoke test)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit(f"gpu_train.py needs a CUDA GPU (torch.cuda.is_available() is False); {SMOKE}")
    name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    peak = args.peak_tflops * 1e12 if args.peak_tflops else peak_for(name)
    if peak is None:
        sys.exit(f"no bf16 peak known for {name}; pass --peak-tflops")
    rows = [run_job(arch, args, peak) for arch in args.jobs]
    print(f"{name}, batch {args.batch} × {args.length} tokens, median of {args.steps} steps\n")
    print("| model | trained | tokens/s | step s | π_old s | peak GB | MFU |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        trained = f"LoRA r={r['lora_rank']}" if r["lora_rank"] else "all weights"
        cells = [
            r["arch"],
            trained,
            f"{r['tokens_per_s']:.0f}",
            f"{r['step_s']:.2f}",
            f"{r['old_pass_s']:.2f}",
        ]
        cells += [f"{r['peak_gb']:.1f}", f"{r['mfu']:.1%}"]
        print("| " + " | ".join(cells) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "device": name,
        "peak_flops": peak,
        "batch": args.batch,
        "length": args.length,
        "layers": args.layers,
        "vocab": args.vocab,
        "rows": rows,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
