"""Peak memory and seconds of one PPO step of ``hf:random:qwen2.5-0.5b`` on CPU.

One step = the π_old pass over the batch (no grad) + one optimizer step (forward, backward, AdamW)
on B rows of L tokens (the first quarter of each row is prompt, the rest action tokens with
advantage ±1). Each cell runs in a fresh subprocess, so nothing one cell allocated stays in the
next one's numbers. What is measured:

* ``weights_gb``: resident set size (RSS) after the model is built, before any pass;
* ``old_peak_gb`` / ``step_peak_gb``: the process's peak RSS (``VmHWM`` in ``/proc/self/status``)
  during the π_old pass / the optimizer step, each reset just before its stage by writing ``5`` to
  ``/proc/self/clear_refs``: real resident memory of everything (weights, activations, logits,
  gradients, optimizer state, allocator slack), not an estimate;
* ``old_s`` / ``step_s``: wall-clock seconds of the two stages.

A cell runs under an address-space limit (``--mem-cap-gb``, RLIMIT_AS) so the old path's logits fail
with an allocation error (reported as ``oom``) instead of taking the shared machine's memory.

Cells: ``old`` is the trainer before this change (full [B, L, V] fp32 logits and log-softmax,
the whole batch in one pass); ``chunked`` is the memory-bounded head with micro-batches of at most
``--token-budget`` tokens. The ``vocab`` cells run only the log-prob pass at the real vocabulary
(151,936) and at 32,768 to show that the chunked pass's extra memory does not grow with V.
``--layers N`` keeps the first N of the 24 decoder layers (widths, heads and vocabulary stay the
model's own) when the full depth does not fit the time at hand; the table says which was used.

    python benchmarks/train_memory.py --quick          # smoke test: 2 layers, L=128, few cells
    python benchmarks/train_memory.py --layers 2       # the grid with 2 of 24 layers
    python benchmarks/train_memory.py                  # the full-depth grid (hours on 2 CPU cores)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ARCH = "random:qwen2.5-0.5b"
RESULTS = Path(__file__).parent / "results" / "train_memory.json"


MINIMAL = (
    "vocab 151k chunked", "vocab 32k chunked", "vocab 151k old", "vocab 32k old",
    "L=1024 old fp32", "L=1024 chunked fp32", "L=1024 chunked bf16", "L=1024 chunked bf16+LoRA+GC",
    "L=4096 old fp32", "L=4096 chunked bf16+LoRA+GC",
)  # fmt: skip
"""``--minimal``: what a contended 2-core machine measures in about an hour."""


def cells(quick: bool) -> list[dict]:
    """The grid: one factor at a time around ``chunked`` bf16 + LoRA + checkpointing."""
    base = {"batch": 8, "dtype": "bfloat16", "lora": 8, "gc": True, "path": "chunked", "master": False}
    if quick:
        return [
            {
                **base,
                "name": "old fp32",
                "length": 128,
                "dtype": "float32",
                "lora": 0,
                "gc": False,
                "path": "old",
            },
            {**base, "name": "chunked fp32", "length": 128, "dtype": "float32", "lora": 0, "gc": False},
            {**base, "name": "chunked bf16+LoRA+GC", "length": 128},
            {**base, "name": "vocab 152k chunked", "length": 128, "vocab": 151936, "only_old": True},
            {**base, "name": "vocab 32k chunked", "length": 128, "vocab": 32768, "only_old": True},
        ]
    grid = []
    for length in (1024, 4096):
        grid += [
            {**base, "name": "old fp32", "dtype": "float32", "lora": 0, "gc": False, "path": "old"},
            {**base, "name": "chunked fp32", "dtype": "float32", "lora": 0, "gc": False},
            {**base, "name": "chunked bf16", "lora": 0, "gc": False},
            {**base, "name": "chunked bf16 + fp32 master", "lora": 0, "gc": False, "master": True},
            {**base, "name": "chunked bf16+GC", "lora": 0},
            {**base, "name": "chunked bf16+LoRA", "gc": False},
            {**base, "name": "chunked bf16+LoRA+GC"},
        ]
        for cell in grid[-7:]:
            cell["length"] = length
            cell["name"] = f"L={length} {cell['name']}"
    grid += [
        {
            **base,
            "name": "old fp32 (fits)",
            "length": 256,
            "dtype": "float32",
            "lora": 0,
            "gc": False,
            "path": "old",
        },
        {**base, "name": "chunked fp32 (same)", "length": 256, "dtype": "float32", "lora": 0, "gc": False},
    ]
    for path in ("chunked", "old"):
        for vocab in (151936, 32768):
            grid.append(
                {**base, "name": f"vocab {vocab // 1000}k {path}", "length": 1024, "dtype": "float32",
                 "vocab": vocab, "path": path, "only_old": True}
            )  # fmt: skip
    return grid


def rss_gb(field: str) -> float:
    """``field`` (``VmRSS``, or ``VmHWM``: the peak since :func:`reset_peak`) of this process, in GB."""
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+)", text).group(1)) / 2**20  # type: ignore[union-attr]


def reset_peak() -> None:
    """Restart this process's ``VmHWM`` from its current resident size."""
    Path("/proc/self/clear_refs").write_text("5")


def run_cell(cell: dict, layers: int | None, token_budget: int, cap_gb: float) -> dict:
    """One cell, in this (fresh) process."""
    resource.setrlimit(resource.RLIMIT_AS, (int(cap_gb * 2**30), int(cap_gb * 2**30)))
    import torch

    from turngym.agents.random_models import build_random
    from turngym.trainers.batching import TrainBatch
    from turngym.trainers.learner import enable_checkpointing
    from turngym.trainers.lora import apply_lora
    from turngym.trainers.precision import build_optimizer
    from turngym.trainers.update import UpdateSettings, batch_logprobs, ppo_update

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    overrides = {"num_hidden_layers": layers} if layers else {}
    if cell.get("vocab"):
        overrides["vocab_size"] = cell["vocab"]
    _, model = build_random(ARCH, dtype=getattr(torch, cell["dtype"]), **overrides)
    if cell["gc"]:
        enable_checkpointing(model)
    if cell["lora"]:
        model = apply_lora(
            model, rank=cell["lora"], alpha=16.0, dropout=0.0, target_modules="all-linear", base=ARCH
        )
    b, n = cell["batch"], cell["length"]
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(model.config.vocab_size, (b, n), generator=g)
    loss_mask = torch.zeros(b, n, dtype=torch.long)
    loss_mask[:, n // 4 :] = 1
    adv = loss_mask * torch.tensor([1.0, -1.0] * (b // 2) + [1.0] * (b % 2))[:, None]
    batch = TrainBatch(ids, torch.ones(b, n, dtype=torch.long), loss_mask, adv, torch.zeros(b, n))
    old = cell["path"] == "old"
    settings = UpdateSettings(
        mini_batch_rows=b, micro_batch_rows=b, max_tokens_per_micro_batch=None if old else token_budget,
        logprob_chunk_tokens=0 if old else 1024, vocab_chunk=16384,
    )  # fmt: skip
    out = {"weights_gb": rss_gb("VmRSS"), "oom": False}
    try:
        reset_peak()
        t0 = time.perf_counter()
        old_logp = batch_logprobs(model, batch, settings)
        out["old_s"] = time.perf_counter() - t0
        out["old_peak_gb"] = rss_gb("VmHWM")
        if cell.get("only_old"):
            return out
        batch = TrainBatch(ids, batch.attention_mask, loss_mask, adv, old_logp)
        optimizer, _ = build_optimizer(model, lr=1e-5, weight_decay=0.0, fp32_master=cell["master"])
        reset_peak()
        t0 = time.perf_counter()
        stats = ppo_update(model, optimizer, None, batch, settings, generator=torch.Generator())
        out["step_s"] = time.perf_counter() - t0
        out["step_peak_gb"] = rss_gb("VmHWM")
        out["loss"] = stats["loss/total"]
    except (RuntimeError, MemoryError) as exc:  # the address-space cap: the cell did not fit
        out["oom"] = True
        out["error"] = str(exc).splitlines()[0][:200]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: 2 layers, L=128")
    parser.add_argument("--layers", type=int, default=None, help="keep the first N decoder layers")
    parser.add_argument("--token-budget", type=int, default=4096, help="tokens per micro-batch (chunked)")
    parser.add_argument("--mem-cap-gb", type=float, default=14.0, help="address-space limit per cell")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per cell")
    parser.add_argument(
        "--only", default="", help="run only the cell of this name, or else the cells whose name contains it"
    )
    parser.add_argument("--minimal", action="store_true", help="only the cells of MINIMAL, in that order")
    parser.add_argument("--cell", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    layers = 2 if args.quick and args.layers is None else args.layers
    if args.cell is not None:
        print(json.dumps(run_cell(json.loads(args.cell), layers, args.token_budget, args.mem_cap_gb)))
        return
    rows = []
    grid = cells(args.quick)
    exact = [c for c in grid if c["name"] == args.only]
    todo = exact or [c for c in grid if args.only in c["name"]]
    if args.minimal:
        todo = sorted((c for c in todo if c["name"] in MINIMAL), key=lambda c: MINIMAL.index(c["name"]))
    report = {
        "arch": ARCH,
        "layers": layers or 24,
        "batch": 8,
        "token_budget": args.token_budget,
        "mem_cap_gb": args.mem_cap_gb,
        "threads": int(os.environ.get("BENCH_THREADS", "2")),
        "measures": "peak RSS (VmHWM, reset per stage) of a fresh process per cell; wall-clock seconds",
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for cell in todo:
        command = [sys.executable, __file__, "--cell", json.dumps(cell)]
        command += ["--token-budget", str(args.token_budget), "--mem-cap-gb", str(args.mem_cap_gb)]
        command += ["--layers", str(layers)] if layers else []
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout, check=False)
            lines = done.stdout.strip().splitlines()
            result = (
                json.loads(lines[-1]) if done.returncode == 0 and lines else {"error": done.stderr[-300:]}
            )
        except subprocess.TimeoutExpired:
            result = {"error": f"timeout after {args.timeout:.0f} s"}
        rows.append({**cell, **result})
        print(_row(rows[-1]), flush=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")  # after every cell: a partial run counts
    print(f"\nlayers {layers or 24} of 24; wrote {args.out}")


def _row(r: dict) -> str:
    def gb(key: str) -> str:
        return f"{r[key]:.2f}" if key in r else "-"

    def sec(key: str) -> str:
        return f"{r[key]:.1f}" if key in r else "-"

    status = "oom" if r.get("oom") else ("error: " + r["error"][-80:] if "error" in r else "ok")
    return (
        f"| {r['name']} | L={r['length']} | weights {gb('weights_gb')} GB "
        f"| π_old peak {gb('old_peak_gb')} GB, {sec('old_s')} s "
        f"| step peak {gb('step_peak_gb')} GB, {sec('step_s')} s | {status} |"
    )


if __name__ == "__main__":
    main()
