"""Training at real scale on CPU: ``hf:random:qwen2.5-0.5b`` in bf16 with LoRA and gradient
checkpointing completes an iteration; a LoRA run checkpoints only its adapter, resumes to the same
adapter as an uninterrupted run, and its ``final/`` adapter directory evaluates as ``hf:DIR``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from turngym.cli import app

pytestmark = pytest.mark.slow
pytest.importorskip("peft")

SHORT = [
    "sft.enabled=false",
    "eval.episodes=2",
    "eval.batch_size=2",
    "rollout.groups_per_iteration=2",
    "rollout.group_size=2",
    "rollout.max_new_tokens=4",
    "optim.mini_batch_rows=4",
    "optim.micro_batch_rows=4",
    "optim.max_tokens_per_micro_batch=256",
    "tensorboard=false",
    "progress=false",
    "env.kwargs={size: 2, max_turns: 2}",
]


def train(run: Path, settings: list[str], *, resume: bool = False) -> str:
    args = ["train", "--resume", str(run)] if resume else ["train", "-o", str(run)]
    args += [arg for s in settings for arg in ("--set", s)]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


@pytest.mark.timeout(3600)  # minutes on 2 CPU cores, far longer when other jobs share them
def test_qwen25_05b_bf16_lora_checkpointing_trains_an_iteration_on_cpu(tmp_path):
    run = tmp_path / "run"
    train(
        run,
        [
            *SHORT,
            "model.model=hf:random:qwen2.5-0.5b",
            "model.dtype=bfloat16",
            "model.lora.rank=8",
            "model.gradient_checkpointing=true",
            "model.threads=2",
            "iterations=1",
        ],
    )
    final = run / "final"
    assert (final / "adapter_config.json").is_file() and not (final / "model.safetensors").exists()
    adapter = load_file(final / "adapter_model.safetensors")
    assert adapter and all("lora_" in k for k in adapter)
    assert all(v.dtype == torch.bfloat16 for v in adapter.values())
    state = torch.load(run / "checkpoints" / "iter-000001" / "state.pt", weights_only=False)
    assert all("lora_" in k for k in state["model"])


LORA_TINY = [*SHORT, "model.lora.rank=4", "model.lora.target_modules=q_proj,v_proj", "sft.enabled=true",
             "sft.demos=4", "sft.steps=2", "checkpoint_every=1", "loss.kl_coef=0.01"]  # fmt: skip


@pytest.mark.timeout(1200)
def test_lora_run_resumes_to_the_adapter_of_an_uninterrupted_run_and_evaluates(tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(straight, [*LORA_TINY, "iterations=2"])
    train(split, [*LORA_TINY, "iterations=1"])
    train(split, ["iterations=2"], resume=True)
    a = load_file(straight / "final" / "adapter_model.safetensors")
    b = load_file(split / "final" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    result = CliRunner().invoke(app, ["eval", "--agent", f"hf:{straight}/final", "--episodes", "2"])
    assert result.exit_code == 0, (result.output, result.exception)
