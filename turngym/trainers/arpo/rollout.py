"""ARPO's entropy-based branching rollout: M trajectories per task, N of them started from the
task, the rest branched off where the policy is uncertain after a tool result.

All tasks of a batch advance in lock-step rounds, one ``policy.generate`` call per round for every
running trajectory of every task (as :mod:`turngym.agents.loop` does; the turn and context
bookkeeping is the same, token-exact, through :class:`~turngym.agents.chat.ChatFormat`).

Entropy. Every turn's action is a segment; its entropy H (:func:`~.entropy.segment_entropy`) comes
from the first ``k`` positions' top log-probs. A trajectory's H_initial is the entropy of its first
segment; a branched copy inherits its parent's (the reference code re-measures it on the copy's
first segment after the branch, which compares the wrong things). All entropy state lives in the
trajectories of one call, so nothing carries over from one batch to the next (the reference code
keeps a table keyed by rollout index across batches).

Branching. A *tool result* is the observation after a valid action that did not end the episode
(a calculator result, search hits; in an env without tools every move's observation). When a
trajectory has just sampled the action of turn t and turn t − 1 produced a tool result, ΔH = H_t −
H_initial, and while its task has fewer than M trajectories each of Z − 1 candidate copies is made
with probability P = clip(α + β·ΔH, 0, 1) (times AEPO's penalty (1 − p)^l when on), drawn as
``rng.random() < P`` in the order the trajectories were created. A copy shares everything up
to and including the tool result (the context the action of turn t was sampled from) and samples
its own action for turn t in the next round (it does not branch again at that node); the
trajectory that measured the entropy keeps its action. The copy's env is a fresh env reset with
the task and seed and replayed with the shared actions (the env contract: same seed and actions
give the same observations); a replay that does not reproduce the observation is an
``env_error``.

Filling the budget (the note's rules, minus the reference's last resort). A task with no running
trajectory and fewer than M starts one fresh rollout from the task per round, so every task ends
with exactly M trajectories, all real samples; the reference code's padding by duplicating the last
rollout (whose copies then enter the GRPO statistics) never happens.

AEPO pre-monitoring (``dynamic_budget``): each task first samples one trajectory without branching;
when it ends, m = :func:`~.entropy.global_samples` of its H_root (first segment) and the mean H of
its post-tool segments; m − 1 more full rollouts start and branching fills the rest.

Every trajectory's ``metadata["arpo"]`` records ``id`` (its position in the group), ``parent`` (the
id it was branched from, or None), ``branch_turn`` (the turn whose action it sampled first: turns
``0..branch_turn-1`` and the prompt of ``branch_turn`` are its parent's, token for token), ``entropy``
(H of every turn), ``h_initial`` and ``kind`` (``initial``, ``branch`` or ``fill``).

Prefix sharing: a copy's turns are its parent's ``Turn`` objects (the same token ids). With the
``hf`` backend the call runs with ``prefix_match = "longest"``: each prompt reuses the KV cache of
the previous round's sequence it shares the longest prefix with (a parent: its whole history; a
copy: the parent's last prompt but one token; a fresh rollout: the header it shares), so only the
other tokens are run.

Sampling streams: the trajectory created ``j``-th in the batch samples turn ``t`` with
``derive_seed(seed, j, t)``, so a copy and its parent draw different tokens after the branch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from turngym.agents.chat import ChatFormat, action_text, env_tools
from turngym.agents.loop import episode_trajectory, failure_stop, record_step, step_env
from turngym.agents.policy import Completion, EnvAwarePolicy, LoopConfig, Policy, derive_seed
from turngym.envs.core import TextEnv
from turngym.errors import PolicyError, TrainerError
from turngym.trainers.arpo.config import ArpoConfig
from turngym.trainers.arpo.entropy import branch_probability, global_samples, segment_entropy
from turngym.trajectory import StopReason, Trajectory, Turn

EnvFactory = Callable[[], TextEnv]
Job = tuple[Any, int]


class Uniform(Protocol):
    """Where branch draws come from (``numpy.random.Generator`` fits; tests inject their own)."""

    def random(self) -> float: ...


@dataclass
class _Path:
    """One trajectory being rolled out."""

    id: int
    index: int
    job: Job
    env: TextEnv | None
    fmt: ChatFormat | None
    kind: str
    parent: int | None = None
    branch_turn: int | None = None
    observation: str = ""
    first_observation: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    context: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)
    history: list[tuple[str, str]] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    entropy: list[float] = field(default_factory=list)
    streak: int = 0
    can_branch: bool = True
    stop: StopReason | None = None
    error: str = ""
    started: float = 0.0


@dataclass
class _Task:
    job: Job
    budget: int
    paths: list[_Path] = field(default_factory=list)
    global_left: int = 0
    """Full rollouts still to start once pre-monitoring has decided (AEPO)."""
    monitoring: bool = False

    @property
    def running(self) -> bool:
        return any(p.stop is None for p in self.paths)


def run_branching(
    env_factory: EnvFactory,
    policy: Policy,
    tokenizer: Any,
    jobs: Sequence[Job],
    config: LoopConfig,
    arpo: ArpoConfig,
    *,
    budget: int,
    rng: Uniform,
) -> list[list[Trajectory]]:
    """M = ``budget`` trajectories for each ``(task_id, seed)`` of ``jobs``, branched as the module
    docstring says; one group per job, trajectories in creation order."""
    if config.sampling.top_logprobs < 1:
        raise TrainerError("ARPO measures entropy from top log-probs; set sampling.top_logprobs >= 1")
    vocab = len(tokenizer)
    run = _Run(env_factory, policy, tokenizer, config, arpo, rng, vocab)
    tasks = [_Task(job, budget) for job in jobs]
    match = getattr(policy, "prefix_match", None)  # the hf backend: reuse any shared prefix
    if match is not None:
        policy.prefix_match = "longest"  # type: ignore[attr-defined]
    try:
        return _rollout(run, tasks, arpo, budget)
    finally:
        if match is not None:
            policy.prefix_match = match  # type: ignore[attr-defined]


def _rollout(run: _Run, tasks: list[_Task], arpo: ArpoConfig, budget: int) -> list[list[Trajectory]]:
    for task in tasks:
        if arpo.dynamic_budget:
            task.monitoring = True
            run.start(task, "initial", can_branch=False)
        else:
            for _ in range(arpo.initial_of(budget)):
                run.start(task, "initial")
    while True:
        for task in tasks:
            run.refill(task)
        active = [(task, path) for task in tasks for path in task.paths if run.ready(path)]
        if not active:
            break
        run.round(active)
    return [[run.finish(path) for path in task.paths] for task in tasks]


class _Run:
    """The state of one :func:`run_branching` call (nothing of it outlives the call)."""

    def __init__(
        self,
        env_factory: EnvFactory,
        policy: Policy,
        tokenizer: Any,
        config: LoopConfig,
        arpo: ArpoConfig,
        rng: Uniform,
        vocab: int,
    ) -> None:
        self.env_factory, self.policy, self.tokenizer = env_factory, policy, tokenizer
        self.config, self.arpo, self.rng, self.vocab = config, arpo, rng, vocab
        self.created = 0

    # ---- starting trajectories --------------------------------------------------------------
    def start(self, task: _Task, kind: str, *, can_branch: bool = True) -> None:
        """A fresh rollout of ``task`` (reset from its task id and seed)."""
        path = self._new_path(task, kind)
        path.can_branch = can_branch
        try:
            path.env = self.env_factory()
            path.fmt = ChatFormat.probe(self.tokenizer, path.env.system_prompt, env_tools(path.env))
            path.observation, path.info = path.env.reset(seed=task.job[1], options={"task_id": task.job[0]})
        except Exception as exc:  # a task that cannot start is recorded, not raised
            path.stop, path.error = failure_stop("reset", exc, StopReason.ENV_ERROR)
            return
        path.first_observation = path.observation
        path.pending = path.fmt.first_prompt(path.observation)
        path.context = list(path.pending)

    def _new_path(self, task: _Task, kind: str) -> _Path:
        path = _Path(id=len(task.paths), index=self.created, job=task.job, env=None, fmt=None, kind=kind)
        path.started = time.monotonic()
        self.created += 1
        task.paths.append(path)
        return path

    def refill(self, task: _Task) -> None:
        """AEPO's deferred global samples, then the budget rule: one fresh rollout per round while
        the task has none running and fewer than M."""
        if task.monitoring and not task.running:
            task.monitoring = False
            task.global_left = self._global_samples(task) - 1
        if task.monitoring:
            return
        while task.global_left > 0 and len(task.paths) < task.budget:
            task.global_left -= 1
            self.start(task, "initial")
        if not task.running and len(task.paths) < task.budget:
            self.start(task, "fill")

    def _global_samples(self, task: _Task) -> int:
        probe = task.paths[0]
        if not probe.entropy:
            return self.arpo.initial_of(task.budget)
        after = [h for t, h in enumerate(probe.entropy) if t and _gave_tool_result(probe.turns[t - 1])]
        h_tool = sum(after) / len(after) if after else probe.entropy[0]
        return global_samples(task.budget, probe.entropy[0], h_tool, self.arpo.budget_beta)

    def branch(self, task: _Task, parent: _Path, prompt: list[int]) -> _Path:
        """A copy of ``parent`` as it was when it sampled its latest action from ``prompt``."""
        path = self._new_path(task, "branch")
        t = len(parent.turns)
        path.parent, path.branch_turn, path.streak = parent.id, t, parent.streak
        path.fmt, path.first_observation = parent.fmt, parent.first_observation
        path.observation, path.info = parent.observation, dict(parent.info)
        path.context, path.pending = list(prompt), list(parent.pending)
        path.history, path.turns = list(parent.history), list(parent.turns)
        path.entropy = list(parent.entropy)
        try:
            path.env = self.env_factory()
            observation, _ = path.env.reset(seed=task.job[1], options={"task_id": task.job[0]})
            for turn in parent.turns:
                observation = path.env.step(turn.action)[0]
            if observation != parent.observation:
                raise TrainerError(
                    f"replaying {t} actions gave another observation than the parent's; ARPO copies "
                    "need an env that is deterministic under a seed"
                )
        except Exception as exc:  # a copy whose env cannot be rebuilt fails alone (its group re-rolls)
            path.stop, path.error = failure_stop("branch replay", exc, StopReason.ENV_ERROR)
        return path

    # ---- one round ----------------------------------------------------------------------------
    def ready(self, path: _Path) -> bool:
        """Whether ``path`` samples this round (ends it as truncated / timeout when it cannot)."""
        if path.stop is not None:
            return False
        prompt = self._prompt(path)
        if len(prompt) + self.config.sampling.max_new_tokens > self.config.max_context_tokens:
            path.stop = StopReason.TRUNCATED
            return False
        limit = self.config.episode_timeout_s
        if limit and time.monotonic() - path.started > limit:
            path.stop, path.error = StopReason.TIMEOUT, f"episode ran past {limit} s"
            return False
        return True

    def _prompt(self, path: _Path) -> list[int]:
        window = self.config.window
        if window is None:
            return path.context
        assert path.fmt is not None
        return path.fmt.window_prompt(path.first_observation, path.history[-window:] if path.history else [])

    def round(self, active: list[tuple[_Task, _Path]]) -> None:
        params = self.config.sampling
        prompts = [list(self._prompt(path)) for _, path in active]
        seeds = (
            None
            if params.seed is None
            else [derive_seed(params.seed, path.index, len(path.turns)) for _, path in active]
        )
        outcomes = self._generate([path for _, path in active], prompts, seeds)
        for (task, path), prompt, outcome in zip(active, prompts, outcomes, strict=True):
            if isinstance(outcome, Exception):
                path.stop, path.error = failure_stop("policy", outcome, StopReason.POLICY_ERROR)
                continue
            if outcome.finish_reason == "error":
                path.stop, path.error = StopReason.POLICY_ERROR, f"policy: {outcome.error}"
                continue
            if not outcome.top_logprobs and outcome.token_ids:
                raise TrainerError(
                    f"policy {self.policy.name} returned no top log-probs; ARPO's branching needs them "
                    "(SamplingParams.top_logprobs)"
                )
            path.entropy.append(segment_entropy(outcome.top_logprobs, self.arpo.k, self.vocab))
            self._maybe_branch(task, path, prompt)
            self._advance(path, prompt, outcome)

    def _maybe_branch(self, task: _Task, path: _Path, prompt: list[int]) -> None:
        t = len(path.turns)
        if not path.can_branch or t in (0, path.branch_turn) or not _gave_tool_result(path.turns[t - 1]):
            return  # a copy does not branch again at the node it was made at
        a = self.arpo
        delta = path.entropy[t] - path.entropy[0]
        p = branch_probability(delta, a.alpha, a.beta, streak=path.streak, penalty=a.branch_penalty)
        copies = []
        for _ in range(a.beam - 1):
            if len(task.paths) >= task.budget:
                break
            if self.rng.random() < p:
                copies.append(self.branch(task, path, prompt))
        path.streak = path.streak + 1 if copies else 0
        for copy in copies:
            copy.streak = path.streak
            copy.entropy = copy.entropy[:t]  # the copy measures its own turn t

    def _generate(
        self, paths: Sequence[_Path], prompts: list[list[int]], seeds: list[int] | None
    ) -> list[Completion | Exception]:
        """One completion per prompt; when the batched call raises, each prompt is retried alone."""
        try:
            return self._generate_call(paths, prompts, seeds)
        except Exception as exc:  # any backend failure: retried per prompt below
            if len(prompts) == 1:
                return [exc]
        out: list[Completion | Exception] = []
        for k in range(len(prompts)):
            try:
                one_seed = None if seeds is None else [seeds[k]]
                out += self._generate_call([paths[k]], [prompts[k]], one_seed)
            except Exception as exc:  # recorded as this trajectory's policy failure
                out.append(exc)
        return out

    def _generate_call(
        self, paths: Sequence[_Path], prompts: list[list[int]], seeds: list[int] | None
    ) -> list[Completion]:
        if isinstance(self.policy, EnvAwarePolicy):
            self.policy.attach([path.env for path in paths])
        completions = self.policy.generate(prompts, self.config.sampling, seeds)
        if len(completions) != len(prompts):
            raise PolicyError(f"policy returned {len(completions)} completions for {len(prompts)} prompts")
        return completions

    def _advance(self, path: _Path, prompt: list[int], completion: Completion) -> None:
        assert path.env is not None and path.fmt is not None
        action = action_text(completion.text)
        # the agent loop's own turn recording: a _Path has every field of an episode it uses
        outcome = step_env(path.env, action)
        record_step(path, prompt, completion, action, outcome, self.config.window)  # type: ignore[arg-type]

    def finish(self, path: _Path) -> Trajectory:
        metadata: dict[str, Any] = {
            "agent": self.policy.name,
            "policy_version": getattr(self.policy, "version", None),
            "metrics": dict(path.info.get("metrics", {})),
            "arpo": {
                "id": path.id,
                "parent": path.parent,
                "branch_turn": path.branch_turn,
                "kind": path.kind,
                "entropy": list(path.entropy),
                "h_initial": path.entropy[0] if path.entropy else None,
            },
        }
        if path.error:
            metadata["error"] = path.error
        if path.env is not None:
            path.env.close()
        return episode_trajectory(self.config, path.job, path.turns, path.stop, metadata)


def _gave_tool_result(turn: Turn) -> bool:
    """A valid action whose episode went on: the next observation is a tool result."""
    return not turn.info.get("invalid_action", False)
