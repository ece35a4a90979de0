"""ARPO with vLLM rollouts: top-k log-probs from the engine drive the branching, the learner stays
in sync. Runs in the separate vLLM environment and skips with the reason when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.trainers.test_train_vllm import SETTINGS, _train_with_vllm

pytestmark = pytest.mark.integration


def test_arpo_branches_with_vllm_rollouts(tmp_path: Path) -> None:
    settings = [*SETTINGS, "rollout.strategy=arpo", "rollout.group_size=4", "rollout.arpo.alpha=1.0"]
    settings += ["sft.steps=30", "sft.demos=16"]  # a warm start that moves validly, so branches happen
    rows = _train_with_vllm(tmp_path / "run", settings, timeout=600)
    iterations = [r for r in rows if r["iteration"] >= 1]
    assert len(iterations) == 3
    assert all(r["arpo/trajectories_max"] == 4 and r["rollout/episodes"] == 8 for r in iterations)
    assert any(r["arpo/branches"] > 0 for r in iterations)  # maze moves are tool results, P = 1
    assert all(r["arpo/entropy_initial"] > 0 for r in iterations)  # from vLLM's top-10 log-probs
    assert max(r["loss/approx_kl"] for r in iterations) < 1e-8
