"""Training configuration: dataclasses with a docstring per field, validated for impossible
combinations (:meth:`TrainConfig.validate`); :mod:`turngym.trainers.config_load` loads them from
YAML and command-line overrides.

The defaults are the embedded main job: the tiny model, a weak SFT warm start on expert demos of
``turngym/Maze-v0`` (2×2 rooms, 4 turns), then GiGPO on CPU, evaluated on the env's held-out ``test`` split.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from turngym.errors import ConfigError
from turngym.trainers.april.config import AprilConfig
from turngym.trainers.arpo.config import ArpoConfig


@dataclass
class LoRAConfig:
    rank: int = 0
    """LoRA rank r (0: train every weight). With r > 0 only the adapter trains (needs peft, extra
    ``lora``); the KL reference is the base model (the adapter switched off)."""
    alpha: float = 16.0
    """LoRA α: the adapter's update is scaled by α / r."""
    dropout: float = 0.0
    """Dropout on the adapter's input."""
    target_modules: str = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
    """Comma-separated names of the linear layers that get an adapter, or ``all-linear``."""


@dataclass
class ModelConfig:
    model: str = "hf:tiny"
    """The policy: ``hf:tiny`` (built locally) or ``hf:PATH`` of a saved causal LM directory; with
    ``vllm:tiny`` / ``vllm:PATH`` rollouts sample through a vLLM engine that is synced with the
    learner after every update (needs vllm installed; see docs/agents.md)."""
    device: str = "cpu"
    """Torch device of the learner and the rollout policy."""
    threads: int = 1
    """torch intra-op threads. 1 is fastest on a shared 2-core machine: with other processes busy,
    two threads stall on each other (a forward/backward of the tiny model measured 5x slower)."""
    dtype: str = "float32"
    """Weights and activations: float32 | bfloat16 | float16 (log-probs and losses stay fp32)."""
    gradient_checkpointing: bool = False
    """Recompute each decoder layer's activations in the backward pass instead of storing them."""
    logprob_chunk_tokens: int = 1024
    """Positions per chunk of the memory-bounded log-prob head; 0 computes the full [B, T, V]
    logits at once (the plain path)."""
    logprob_vocab_chunk: int = 16384
    """Vocabulary rows per chunk of the log-prob head."""
    lora: LoRAConfig = field(default_factory=LoRAConfig)


@dataclass
class EnvConfig:
    env_id: str = "turngym/Maze-v0"
    """A registered environment id."""
    kwargs: dict[str, Any] = field(default_factory=lambda: {"size": 2, "max_turns": 4})
    """Keyword arguments of ``make`` (the train/eval split is set by the trainer)."""
    train_tasks: int = 500
    """Training tasks are drawn from task ids ``0..train_tasks-1`` of the ``train`` split."""


@dataclass
class RolloutConfig:
    group_size: int = 8
    """G: rollouts per task, all from the same task id and env seed."""
    groups_per_iteration: int = 8
    """Tasks per iteration (after dynamic-sampling filtering, when on)."""
    context: str = "full"
    """``full`` (one growing sequence) or ``window:k`` (task + last k turns per prompt)."""
    temperature: float = 1.0
    """Sampling temperature of training rollouts (> 0)."""
    max_new_tokens: int = 6
    """Token budget of one action."""
    max_context_tokens: int = 1024
    """A prompt longer than this truncates the episode."""
    dynamic_sampling: bool = False
    """Drop groups whose returns are all equal and roll out more groups (DAPO)."""
    max_gen_batches: int = 3
    """Cap on rollout rounds per iteration when dynamic sampling refills the batch."""
    max_retries: int = 2
    """Re-rolls of a group in which an episode ended in an infrastructure failure (``env_error``,
    ``policy_error``, ``timeout``); a group still failing after them is dropped and counted."""
    episode_timeout_s: float | None = None
    """Wall-clock budget of one episode (None: none); an episode past it is a ``timeout`` failure."""
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra chat-template variables of every prompt, e.g. ``{enable_thinking: false}`` (Qwen3)."""
    engine: str = "async"
    """``async``: every episode its own task, env steps in a thread pool, freed slots refilled at
    once (:mod:`turngym.agents.async_loop`); ``lockstep``: one batched turn after another."""
    max_concurrent_episodes: int = 64
    """Episodes in flight at most with the ``async`` engine (also bounds a policy call's batch)."""
    workers: int = 0
    """Rollout workers as Ray actors (the ``ray`` extra), each with an ``hf`` policy replica synced
    after every update and its share of the episodes (0: sample in this process); see
    :mod:`turngym.trainers.ray_workers` and docs/training.md for a multi-node cluster."""
    batch_wait_s: float | None = None
    """``async``: longest a completion request waits for others before the policy's next call.
    None waits until every episode in flight asks, so batches (and results) never depend on
    timing and resumes stay exact; a small number (e.g. 0.005) stops slow env steps holding back
    the others and lets ``hf`` batch continuously (requests join its running decode)."""
    strategy: str = "independent"
    """``independent`` (G rollouts per task) or ``arpo`` (entropy-based branching, see docs/training.md)."""
    arpo: ArpoConfig = field(default_factory=ArpoConfig)
    """ARPO's knobs (read when ``strategy: arpo``)."""
    april: AprilConfig = field(default_factory=AprilConfig)
    """Partial rollouts (APRIL): oversample, stop at enough whole groups, carry the rest (off)."""


@dataclass
class CreditConfig:
    estimator: str = "gigpo"
    """A registered advantage estimator (``turngym.trainers.advantages``)."""
    params: dict[str, Any] = field(default_factory=dict)
    """Estimator parameters, e.g. ``{gamma: 0.95, omega: 1.0, mode: mean_norm}``; empty = defaults."""
    invalid_action_penalty: float = 0.1
    """Subtracted from the immediate reward of a turn whose action the env rejected."""


@dataclass
class LossConfig:
    policy_loss: str = "ppo_clip"
    """``ppo_clip`` or ``gspo``."""
    clip_low: float = 0.2
    """ε_low: the ratio is clipped at 1 − ε_low."""
    clip_high: float = 0.28
    """ε_high: the ratio is clipped at 1 + ε_high (clip-higher when above ε_low)."""
    dual_clip: float | None = 3.0
    """c of dual-clip (caps the loss of negative-advantage tokens at −c·A); null turns it off."""
    aggregation: str = "token-mean"
    """token-mean | seq-mean-token-mean | seq-mean-token-sum | seq-mean-token-sum-norm."""
    norm_tokens: int | None = None
    """L of ``seq-mean-token-sum-norm`` (Dr. GRPO's constant): the action-token budget of one
    trajectory, the same in every context mode; null = ``rollout.max_new_tokens`` × the env's
    ``max_turns``."""
    kl_coef: float = 0.0
    """Weight of the KL to the frozen warm-start policy (0: no reference model is kept)."""
    kl_kind: str = "low_var_kl"
    """KL estimator: k1 | k2 | k3 | low_var_kl."""
    entropy_coef: float = 0.0
    """Weight of the entropy bonus."""


@dataclass
class OptimConfig:
    lr: float = 2e-4
    """AdamW learning rate of the RL phase."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    warmup_steps: int = 0
    """Linear learning-rate warm-up (optimizer steps); constant afterwards."""
    grad_clip: float = 1.0
    """Global gradient-norm clip."""
    epochs: int = 1
    """PPO passes over each iteration's batch."""
    mini_batch_rows: int = 32
    """Rows per optimizer step."""
    micro_batch_rows: int = 32
    """Rows per forward/backward (gradient accumulation inside a mini-batch)."""
    max_tokens_per_micro_batch: int | None = None
    """Token budget of one forward pass (rows × its longest row), replacing ``micro_batch_rows``
    for the learner and the π_old / reference passes; rows are length-sorted so little padding is
    computed. None: ``micro_batch_rows`` rows."""
    fp32_master_weights: bool = False
    """With a bfloat16/float16 model: keep fp32 copies of the trainable weights and AdamW state,
    step those, and round into the model (float16 adds dynamic loss scaling)."""
    recompute_logprobs: bool | None = None
    """Recompute π_old with a forward pass of the learner instead of trusting the sampler's
    log-probs. None (auto) turns it on whenever the sampler is not the learner's own module
    (``vllm:``), where it is required; the in-process ``hf`` sampler reports the learner's own
    numbers. The gap between the two is logged as ``loss/rollout_logprob_gap`` when it is on."""


@dataclass
class SFTConfig:
    enabled: bool = True
    """Warm-start with supervised fine-tuning on expert demos before RL."""
    demos: int = 48
    """Expert episodes (train split) to fine-tune on."""
    steps: int = 30
    """Optimizer steps of fine-tuning (deliberately few: a weak start leaves room for RL)."""
    batch_rows: int = 16
    """Rows per SFT step."""
    lr: float = 1e-3
    """SFT learning rate (AdamW)."""
    task_offset: int = 100_000
    """Demo task ids start here (train split), away from RL's ``0..env.train_tasks-1``; lower it
    for an env whose task ids are bounded."""


@dataclass
class EvalConfig:
    every: int = 10
    """Evaluate on held-out tasks every this many iterations (and at start and end)."""
    episodes: int = 200
    """Held-out episodes per evaluation (task ids 0..episodes-1 of the ``test`` split)."""
    temperature: float = 1.0
    """Evaluation sampling temperature (0: greedy). The default evaluates the stochastic policy
    that RL trains (seeded, so repeatable)."""
    batch_size: int = 100
    """Episodes per lock-step generate batch."""


@dataclass
class LoggingConfig:
    wandb: bool = False
    """Also log metrics to Weights & Biases (needs wandb, extra ``wandb``); the run directory is
    ``output_dir/wandb``."""
    wandb_project: str = "turngym"
    """W&B project name."""
    wandb_mode: str = "auto"
    """online | offline | auto (``WANDB_MODE`` if set, else online when ``WANDB_API_KEY`` is set,
    else offline: the run is written locally and can be uploaded later with ``wandb sync``)."""


@dataclass
class TrainConfig:
    iterations: int = 60
    """RL iterations (sample → credit → update → sync)."""
    seed: int = 0
    """Seeds task sampling, rollout sampling, shuffling and initialisation."""
    output_dir: str = "runs/maze-gigpo"
    """Run directory: metrics.jsonl, tensorboard/, checkpoints/, report.json, plot.png."""
    checkpoint_every: int = 5
    """Write a resumable checkpoint every this many iterations (and at the end)."""
    keep_checkpoints: int = 2
    """How many recent checkpoints to keep."""
    tensorboard: bool = True
    """Also log metrics to TensorBoard under ``output_dir/tensorboard``."""
    progress: bool = True
    """Show a rich progress display."""
    rollouts_every: int = 1
    """Write the trained-on trajectories of every this many iterations, with each turn's reward,
    advantage and step group, to ``output_dir/rollouts/iter_NNNN.jsonl.gz`` for ``turngym view``
    (0: never). May change on resume."""
    model: ModelConfig = field(default_factory=ModelConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    credit: CreditConfig = field(default_factory=CreditConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def validate(self) -> TrainConfig:
        """Raise :class:`ConfigError` naming the cause and the fix for impossible combinations."""
        self._validate_groups()
        self._validate_update()
        self._validate_schedule()
        self._validate_rollout()
        self._validate_scale()
        return self

    def _validate_groups(self) -> None:
        """The estimator's parameters and the groups it compares: their size, count and sampling."""
        from turngym.trainers.advantages import check_params

        r = self.rollout
        check_params(self.credit.estimator, dict(self.credit.params))
        group_based = self.credit.estimator not in ("reinforce_pp",)
        if r.group_size < 2 and group_based:
            raise ConfigError(
                f"rollout.group_size={r.group_size}: estimator {self.credit.estimator!r} compares "
                "rollouts within a group; set rollout.group_size >= 2"
            )
        if r.dynamic_sampling and r.group_size < 2:
            raise ConfigError(
                "rollout.dynamic_sampling needs rollout.group_size >= 2 (a singleton group never has "
                "varying returns)"
            )
        if r.groups_per_iteration > self.env.train_tasks:
            raise ConfigError(
                f"rollout.groups_per_iteration={r.groups_per_iteration} exceeds env.train_tasks="
                f"{self.env.train_tasks}; each group needs its own task, so raise env.train_tasks"
            )
        if r.temperature <= 0:
            raise ConfigError(
                f"rollout.temperature={r.temperature}: training rollouts must sample (> 0); "
                "greedy decoding belongs in eval.temperature"
            )

    def _validate_update(self) -> None:
        """The update stage: mini-batches of whole micro-batches, and the loss's terms."""
        from turngym.trainers.losses import KINDS, MODES, POLICY_LOSSES

        o, loss = self.optim, self.loss
        if o.mini_batch_rows % o.micro_batch_rows:
            raise ConfigError(
                f"optim.mini_batch_rows={o.mini_batch_rows} is not a multiple of "
                f"optim.micro_batch_rows={o.micro_batch_rows}; make it one"
            )
        if loss.policy_loss not in POLICY_LOSSES:
            raise ConfigError(
                f"loss.policy_loss must be one of {sorted(POLICY_LOSSES)}, got {loss.policy_loss!r}"
            )
        if loss.aggregation not in MODES:
            raise ConfigError(f"loss.aggregation must be one of {MODES}, got {loss.aggregation!r}")
        if loss.norm_tokens is not None and loss.norm_tokens < 1:
            raise ConfigError(
                f"loss.norm_tokens={loss.norm_tokens} must be >= 1 (or null: max_new_tokens × the "
                "env's max_turns)"
            )
        if loss.kl_kind not in KINDS:
            raise ConfigError(f"loss.kl_kind must be one of {KINDS}, got {loss.kl_kind!r}")
        if loss.dual_clip is not None and loss.dual_clip <= 1:
            raise ConfigError(f"loss.dual_clip={loss.dual_clip} must be > 1 (or null to turn it off)")
        if loss.dual_clip is not None and loss.policy_loss == "gspo":
            raise ConfigError("loss.dual_clip applies to ppo_clip only; set loss.dual_clip: null with gspo")

    def _validate_schedule(self) -> None:
        """How long a run is and how often it evaluates, checkpoints and writes its rollouts."""
        if self.iterations < 1 or self.checkpoint_every < 1 or self.eval.every < 1:
            raise ConfigError("iterations, checkpoint_every and eval.every must be >= 1")
        if self.rollouts_every < 0:
            raise ConfigError(f"rollouts_every={self.rollouts_every} must be >= 0 (0: write no rollouts)")
        if self.keep_checkpoints < 1:
            raise ConfigError("keep_checkpoints must be >= 1 (the latest checkpoint is what resume reads)")

    def _validate_rollout(self) -> None:
        """What the rollout backend can report, and the engine, workers, retries and strategy."""
        r, vllm = self.rollout, self.model.model.startswith("vllm:")
        if vllm and self.credit.estimator == "empg":
            raise ConfigError(
                "credit.estimator=empg needs per-token entropies, which the vllm backend cannot report; "
                "use model.model=hf:... with empg"
            )
        if vllm and self.optim.recompute_logprobs is False:
            raise ConfigError(
                "optim.recompute_logprobs=false with model.model=vllm:...: vLLM's log-probs come from "
                "another engine than the learner, so the PPO ratio needs the learner's own; leave "
                "optim.recompute_logprobs unset (auto) or true"
            )
        if r.engine not in ("async", "lockstep"):
            raise ConfigError(f"rollout.engine must be 'async' or 'lockstep', got {r.engine!r}")
        if r.max_concurrent_episodes < 1:
            raise ConfigError(f"rollout.max_concurrent_episodes={r.max_concurrent_episodes} must be >= 1")
        if r.workers < 0:
            raise ConfigError(f"rollout.workers={r.workers} must be >= 0 (0: roll out in this process)")
        if r.workers and not self.model.model.startswith("hf:"):
            raise ConfigError(
                f"rollout.workers={r.workers} runs hf policy replicas in Ray actors; model.model="
                f"{self.model.model!r} is not hf:..., so set rollout.workers: 0"
            )
        if r.batch_wait_s is not None and r.batch_wait_s < 0:
            raise ConfigError(f"rollout.batch_wait_s={r.batch_wait_s} must be >= 0 (or null: wait for all)")
        if r.max_retries < 0:
            raise ConfigError(f"rollout.max_retries={r.max_retries} must be >= 0 (0: drop failed groups)")
        if r.episode_timeout_s is not None and r.episode_timeout_s <= 0:
            raise ConfigError(
                f"rollout.episode_timeout_s={r.episode_timeout_s} must be > 0 (or null for no limit)"
            )
        if r.strategy not in ("independent", "arpo"):
            raise ConfigError(f"rollout.strategy must be 'independent' or 'arpo', got {r.strategy!r}")
        if r.strategy == "arpo":
            r.arpo.validate(r.group_size)
            if r.arpo.balanced_clipping and self.loss.policy_loss != "ppo_clip":
                raise ConfigError(
                    "rollout.arpo.balanced_clipping changes ppo_clip's clip; set loss.policy_loss=ppo_clip"
                )
        r.april.check(
            engine=r.engine, workers=r.workers, strategy=r.strategy, policy_loss=self.loss.policy_loss
        )

    def _validate_scale(self) -> None:
        """The model (a trainable policy) and the settings of precision, LoRA, micro-batching and
        logging."""
        m, o = self.model, self.optim
        if not m.model.startswith(("hf:", "vllm:")):
            raise ConfigError(
                "model.model must be 'hf:tiny', 'hf:PATH', 'hf:random:ARCH', 'vllm:tiny' or 'vllm:PATH' "
                "(a trainable policy), "
                f"got {m.model!r}"
            )
        if m.dtype not in ("float32", "bfloat16", "float16"):
            raise ConfigError(f"model.dtype must be float32, bfloat16 or float16, got {m.dtype!r}")
        if m.dtype == "float16" and not o.fp32_master_weights:
            raise ConfigError(
                "model.dtype=float16 needs optim.fp32_master_weights=true (fp16 gradients need loss "
                "scaling and fp32 updates); or use bfloat16"
            )
        if m.logprob_chunk_tokens < 0 or m.logprob_vocab_chunk < 1:
            raise ConfigError(
                f"model.logprob_chunk_tokens must be >= 0 (0: plain path) and model.logprob_vocab_chunk "
                f">= 1, got {m.logprob_chunk_tokens} and {m.logprob_vocab_chunk}"
            )
        if m.lora.rank < 0 or m.lora.alpha <= 0 or not 0 <= m.lora.dropout < 1:
            raise ConfigError(
                f"model.lora needs rank >= 0, alpha > 0 and 0 <= dropout < 1, got rank={m.lora.rank}, "
                f"alpha={m.lora.alpha}, dropout={m.lora.dropout}"
            )
        if m.lora.rank and not m.lora.target_modules.strip():
            raise ConfigError("model.lora.target_modules is empty; name the linear layers, or all-linear")
        if o.max_tokens_per_micro_batch is not None and o.max_tokens_per_micro_batch < 1:
            raise ConfigError(
                f"optim.max_tokens_per_micro_batch={o.max_tokens_per_micro_batch} must be >= 1 (or null)"
            )
        if self.logging.wandb_mode not in ("auto", "online", "offline"):
            raise ConfigError(
                f"logging.wandb_mode must be auto, online or offline, got {self.logging.wandb_mode!r}"
            )

    @property
    def recomputes_logprobs(self) -> bool:
        """Whether π_old is recomputed by the learner (``optim.recompute_logprobs``, auto resolved)."""
        if self.optim.recompute_logprobs is None:
            return self.model.model.startswith("vllm:")
        return self.optim.recompute_logprobs

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def digest(
        self, ignore: tuple[str, ...] = ("iterations", "output_dir", "progress", "rollouts_every")
    ) -> str:
        """Hash of the settings that must match for a checkpoint to be resumed."""
        data = {k: v for k, v in self.to_dict().items() if k not in ignore}
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]
