"""logging.wandb: an offline W&B run written into the run directory (WANDB_MODE=offline)."""

from __future__ import annotations

import pytest

from turngym.trainers.metrics import MetricsLog
from turngym.trainers.wandb_sink import WandbSink, wandb_mode

pytestmark = pytest.mark.integration


def test_mode_resolution(monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert wandb_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_mode("auto") == "online"
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert wandb_mode("auto") == "offline"
    assert wandb_mode("online") == "online"


def test_offline_run_is_written_locally_beside_jsonl(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    sink = WandbSink(tmp_path, project="turngym-test", mode="auto", config={"seed": 0})
    assert sink.mode == "offline"
    log = MetricsLog(tmp_path, resume_after=None, tensorboard=False, sinks=[sink])
    log.write(1, {"rollout/success_rate": 0.5, "loss/total": float("nan")})
    log.write(2, {"rollout/success_rate": 0.75})
    log.close()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("run-*.wandb"))  # the run's event log, ready for `wandb sync`
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2
