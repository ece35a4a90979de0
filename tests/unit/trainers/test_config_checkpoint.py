"""Config loading/overrides/validation, checkpoint round trip and the metrics log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from turngym.errors import CheckpointError, ConfigError
from turngym.trainers.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from turngym.trainers.config import TrainConfig
from turngym.trainers.config_load import apply_overrides, load_config
from turngym.trainers.metrics import MetricsLog, plot_run, read_metrics


def test_defaults_are_the_main_job():
    cfg = load_config()
    assert cfg.model.model == "hf:tiny"
    assert cfg.env.env_id == "turngym/Maze-v0"
    assert cfg.credit.estimator == "gigpo"
    assert cfg.sft.enabled


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "iterations: 7\nrollout:\n  group_size: 4\ncredit:\n  params: {gamma: 0.9}\noptim:\n  lr: 1e-5\n"
    )
    cfg = load_config(path, ["rollout.group_size=6", "credit.estimator=gigpo", "loss.dual_clip=null"])
    assert cfg.iterations == 7
    assert cfg.rollout.group_size == 6
    assert cfg.rollout.groups_per_iteration == TrainConfig().rollout.groups_per_iteration
    assert cfg.credit.params == {"gamma": 0.9}
    assert cfg.optim.lr == pytest.approx(1e-5)
    assert cfg.loss.dual_clip is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["rollout.grup_size=4"], "did you mean 'group_size'"),
        (["rollout.group_size=1"], "group_size >= 2"),
        (["rollout.temperature=0"], "eval.temperature"),
        (["optim.mini_batch_rows=10", "optim.micro_batch_rows=4"], "not a multiple"),
        (["credit.estimator=ppo"], "choose one of"),
        (["credit.params={omega: 1}", "credit.estimator=trloo"], "takes parameters"),
        (["loss.policy_loss=gspo"], "dual_clip"),
        (["loss.aggregation=sum"], "token-mean"),
        (["loss.dual_clip=0.5"], "must be > 1"),
        (["rollout.group_size=four"], "must be an int"),
        (["model.model=openai:gpt"], "hf:tiny"),
        (["model.model=vllm:tiny", "credit.estimator=empg", "credit.params={}"], "entropies"),
        (["nonsense"], "section.field=value"),
        (["env.train_tasks=4"], "raise env.train_tasks"),
        (["model.model=vllm:tiny", "optim.recompute_logprobs=false"], "leave optim.recompute_logprobs"),
        (["optim.recompute_logprobs=maybe"], "must be a bool"),
        (["rollout.max_retries=-1"], "0: drop failed groups"),
        (["rollout.episode_timeout_s=0"], "or null for no limit"),
    ],
)
def test_impossible_or_malformed_configs_are_rejected_with_the_fix(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_bad_yaml_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_apply_overrides_does_not_mutate_input():
    data = {"rollout": {"group_size": 8}}
    out = apply_overrides(data, ["rollout.group_size=2"])
    assert data["rollout"]["group_size"] == 8 and out["rollout"]["group_size"] == 2


def test_digest_ignores_iterations_but_not_hyperparameters():
    a, b = TrainConfig(), TrainConfig(iterations=99)
    assert a.digest() == b.digest()
    c = TrainConfig()
    c.optim.lr = 1.0
    assert a.digest() != c.digest()


def test_checkpoint_round_trip_prunes_and_refuses_another_config(tmp_path, micro_model):
    opt = torch.optim.AdamW(micro_model.parameters(), lr=1e-3)
    micro_model(input_ids=torch.tensor([[1, 2, 3]])).logits.sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    for it in (1, 2, 3):
        state = {"model": micro_model, "optimizer": opt, "scheduler": sched}
        save_checkpoint(tmp_path, it, **state, history={"evals": [it]}, config_digest="abc", keep=2)
    assert sorted(p.name for p in tmp_path.glob("iter-*")) == ["iter-000002", "iter-000003"]
    path = latest_checkpoint(tmp_path)
    assert path is not None and path.name == "iter-000003"
    ckpt = load_checkpoint(path, config_digest="abc")
    assert ckpt.iteration == 3 and ckpt.history == {"evals": [3]}
    for name, value in micro_model.state_dict().items():
        assert torch.equal(ckpt.model[name], value)
    assert ckpt.optimizer["state"][0]["step"] == opt.state_dict()["state"][0]["step"]
    with pytest.raises(CheckpointError, match="same config"):
        load_checkpoint(path, config_digest="other")


def test_no_checkpoint_and_dangling_pointer(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    (tmp_path / "latest").write_text("iter-000009")
    with pytest.raises(CheckpointError, match="delete"):
        latest_checkpoint(tmp_path)


def test_metrics_log_truncates_after_the_resume_point_and_plots(tmp_path):
    log = MetricsLog(tmp_path, resume_after=None, tensorboard=True)
    for it in range(4):
        log.write(it, {"rollout/success_rate": it / 4, "reward/mean_return": 0.1, "reward/shaped_mean": 0.0})
    log.write(4, {"eval/success_rate": 0.5, "eval/ci_low": 0.4, "eval/ci_high": 0.6, "x": float("nan")})
    log.close()
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"iteration": 5, "torn')
    resumed = MetricsLog(tmp_path, resume_after=2, tensorboard=False)
    resumed.close()
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    assert any((tmp_path / "tensorboard").iterdir())
    evaluation = {"iteration": 4, "eval/success_rate": 0.5, "eval/ci_low": 0.4, "eval/ci_high": 0.6}
    png = plot_run([*rows, evaluation], tmp_path / "plot.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])["iteration"] == 0


@pytest.mark.parametrize("path", sorted(Path(__file__).parents[3].joinpath("examples").glob("train_*.yaml")))
def test_every_example_config_loads_and_validates(path):
    cfg = load_config(path)
    assert cfg.output_dir.startswith("runs/")


def test_logprob_recomputation_is_automatic_for_samplers_apart_from_the_learner():
    assert not load_config(None, []).recomputes_logprobs  # hf: the learner samples itself
    assert load_config(None, ["model.model=vllm:tiny"]).recomputes_logprobs
    assert load_config(None, ["optim.recompute_logprobs=true"]).recomputes_logprobs
    assert load_config(None, ["rollout.episode_timeout_s=null"]).rollout.episode_timeout_s is None


def test_dr_grpo_constant_is_one_trajectorys_generation_budget():
    from turngym.trainers.update import update_settings

    assert update_settings(load_config(None, []), max_turns=4).max_len == 6 * 4
    assert update_settings(load_config(None, ["loss.norm_tokens=10"]), max_turns=4).max_len == 10
    with pytest.raises(ConfigError, match="norm_tokens"):
        load_config(None, ["loss.norm_tokens=0"])
