"""``turngym train --nproc 2``: two gloo processes (torchrun on 127.0.0.1) train with an FSDP2
learner, split rollouts and sharded checkpoints; a run stopped after one iteration and resumed from
its sharded checkpoint ends with the same weights and metrics as one that ran straight through."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SETTINGS = [
    "checkpoint_every=1",
    "tensorboard=false",
    "progress=false",
    "env.kwargs={size: 2, max_turns: 3}",
    "rollout.group_size=2",
    "rollout.groups_per_iteration=3",
    "rollout.max_new_tokens=4",
    "optim.mini_batch_rows=2",
    "optim.micro_batch_rows=1",
    "loss.kl_coef=0.05",
    "sft.demos=4",
    "sft.steps=2",
    "eval.episodes=4",
    "eval.every=2",
]


def train(*args: str) -> subprocess.CompletedProcess[str]:
    sets = [arg for s in SETTINGS for arg in ("--set", s)]
    command = [
        sys.executable,
        "-c",
        "from turngym.cli import main; main()",
        "train",
        "--nproc",
        "2",
        *args,
        *sets,
    ]
    cache = os.environ.get("TURNGYM_CACHE") or str(Path.home() / ".cache" / "turngym")
    env = {**os.environ, "TURNGYM_CACHE": cache, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=420)


def rows(out: Path) -> list[dict]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [
        {k: v for k, v in json.loads(line).items() if not k.startswith(("perf/", "sft/seconds"))}
        for line in lines
    ]


def without_eval_at(iteration: int, row: dict) -> dict:
    return {k: v for k, v in row.items() if not (row["iteration"] == iteration and k.startswith("eval/"))}


def test_two_processes_train_and_resume_from_sharded_checkpoints(tmp_path: Path) -> None:
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    done = train("-o", str(straight), "--set", "iterations=2")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("report: ") == 1  # rank 0 prints the result
    learner = straight / "checkpoints" / "iter-000002" / "learner"
    assert sorted(p.name for p in learner.glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
    metrics = rows(straight)
    assert [r["rollout/episodes"] for r in metrics[1:]] == [6.0, 6.0]  # 3 groups x 2, split over ranks
    first = train("-o", str(resumed), "--set", "iterations=1")
    assert first.returncode == 0, first.stderr[-3000:]
    again = train("--resume", str(resumed), "--set", "iterations=2")
    assert again.returncode == 0, again.stderr[-3000:]
    # the resumed run evaluated at iteration 1, its last iteration then; the rest is the same
    assert [without_eval_at(1, r) for r in rows(resumed)] == [without_eval_at(1, r) for r in metrics]
    a, b = (
        load_file(straight / "final" / "model.safetensors"),
        load_file(resumed / "final" / "model.safetensors"),
    )
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
