"""``benchmarks/gpu_train.py`` runs its two jobs end to end on the CPU at toy sizes (one decoder
layer, a 4,096-token vocabulary) and reports numbers that agree with each other."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from turngym.trainers.flops import learner_flops

SCRIPT = Path(__file__).parents[3] / "benchmarks" / "gpu_train.py"


@pytest.mark.slow
def test_gpu_train_smoke_on_cpu(tmp_path: Path) -> None:
    out = tmp_path / "gpu_train.json"
    args = ["--device", "cpu", "--layers", "1", "--vocab", "4096", "--batch", "2", "--length", "16"]
    args += ["--token-budget", "32", "--warmup", "0", "--steps", "1", "--peak-tflops", "1", "--out", str(out)]
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=900, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| model | trained | tokens/s | step s | π_old s | peak GB | MFU |" in result.stdout
    report = json.loads(out.read_text(encoding="utf-8"))
    assert (report["device"], report["peak_flops"], report["layers"], report["vocab"]) == (
        "cpu",
        1e12,
        1,
        4096,
    )
    full, lora = report["rows"]
    assert (full["arch"], full["lora_rank"], lora["arch"], lora["lora_rank"]) == (
        "qwen2.5-1.5b",
        0,
        "qwen2.5-7b",
        16,
    )
    assert full["trainable"] == full["params"]
    # rank 16 × (in + out) of each linear layer of one Qwen2.5-7B decoder layer: q_proj and o_proj
    # 3584 → 3584, k_proj and v_proj 3584 → 512 (4 KV heads × 128), gate/up/down 3584 ↔ 18944:
    # 16 × (2 × 7168 + 2 × 4096 + 3 × 22528) = 1,441,792
    assert lora["trainable"] == 1_441_792
    for row in (full, lora):
        assert row["tokens_per_step"] == 32
        assert row["tokens_per_s"] == pytest.approx(32 / row["step_s"])
        flops = learner_flops(row["params"], 32, row["trainable"])
        assert row["mfu"] == pytest.approx(flops / (row["step_s"] * 1e12))
        assert row["peak_gb"] > 0 and row["old_pass_s"] > 0


def test_gpu_train_without_a_gpu_says_how_to_smoke_test(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path / "x.json")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if result.returncode == 0:
        pytest.skip("a CUDA GPU is present: the script ran for real")
    assert result.stderr.strip().splitlines() == [
        "gpu_train.py needs a CUDA GPU (torch.cuda.is_available() is False); "
        "a smoke test on the CPU: --device cpu --layers 1 --vocab 4096 --peak-tflops 1"
    ]
    assert not (tmp_path / "x.json").exists()
