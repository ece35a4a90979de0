"""The token-exact, lock-step batched agent loop.

A batch of episodes advances one turn at a time: the prompts of every episode still running go to
one ``policy.generate`` call, each completion's text (reasoning removed) is the env's action, and
the next observation is appended as tokens. Token bookkeeping (see :mod:`turngym.agents.chat`):

* ``full`` context: one growing sequence per episode. Turn ``t`` records as ``prompt_ids`` the
  tokens appended since turn ``t-1``'s action (the whole first prompt for turn 0) and as
  ``action_ids`` exactly the sampled ids, so ``Trajectory.token_ids`` *is* the sequence the policy
  saw and ``loss_mask`` is 1 on precisely the sampled tokens. History is never re-tokenized.
* ``window:k`` context (verl-agent's memory mode): each turn's prompt is rendered afresh from the
  task (first observation) and the last ``k`` (action, observation) pairs; ``prompt_ids`` is that
  whole prompt, ``action_ids`` the sampled ids.

An episode ends when the env terminates (``won``/``lost``) or truncates, when its next prompt would
leave fewer than ``max_new_tokens`` positions of ``max_context_tokens`` (``truncated``), when its
wall-clock budget ``episode_timeout_s`` runs out (``timeout``), or when something fails for it:
``env_error`` (reset or step raised), ``policy_error`` (the backend raised or returned an ``error``
sample for its prompt) or ``timeout`` (a ``TimeoutError`` or ``*Timeout*`` exception from either);
the message is in ``metadata['error']``. Failures are per episode: when a batched ``generate``
raises, each of its prompts is retried alone, so only the prompts that fail alone fail. A policy
failure records no turn (the policy produced no action); a turn the env failed on keeps its tokens.

Sampling seeds: every episode draws its own stream. Turn ``t`` of the episode at position ``k`` of
``jobs`` is seeded with ``SeedSequence([seed, k, t])`` (``seed`` = ``config.sampling.seed``), passed
to the policy as that prompt's seed: the G episodes of a group sample independently, a run repeats
exactly under a seed, and an episode's tokens do not depend on the batch it shares (for backends
that sample per request).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from turngym.agents.chat import ChatFormat, action_text, env_tools
from turngym.agents.policy import (
    Completion,
    EnvAwarePolicy,
    LoopConfig,
    Policy,
    SamplingParams,
    derive_seed,
)
from turngym.envs.core import TextEnv
from turngym.errors import PolicyError
from turngym.trajectory import StopReason, Trajectory, Turn

EnvFactory = Callable[[], TextEnv]
Job = tuple[Any, int]
"""``(task_id, seed)`` of one episode."""


@dataclass
class _Episode:
    env: TextEnv
    job: Job
    fmt: ChatFormat
    observation: str = ""
    first_observation: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    context: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)
    history: list[tuple[str, str]] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    stop: StopReason | None = None
    error: str = ""
    index: int = 0
    """Position of the episode's job in ``jobs`` (its sampling stream)."""
    started: float = 0.0
    """``time.monotonic()`` when the episode started."""

    def prompt(self, window: int | None) -> list[int]:
        if window is None:
            return self.context
        return self.fmt.window_prompt(self.first_observation, self.history[-window:] if self.history else [])


def run_group(
    env_factory: EnvFactory,
    policy: Policy,
    tokenizer: Any,
    task_id: Any,
    seed: int,
    group_size: int,
    config: LoopConfig,
) -> list[Trajectory]:
    """``group_size`` episodes of one task (same task id and env seed) in one lock-step batch."""
    config = replace(config, batch_size=max(group_size, 1))
    trajectories = run_batch(env_factory, policy, tokenizer, [(task_id, seed)] * group_size, config)
    return [replace(t, metadata={**t.metadata, "group": f"{task_id}:{seed}"}) for t in trajectories]


def run_batch(
    env_factory: EnvFactory, policy: Policy, tokenizer: Any, jobs: Sequence[Job], config: LoopConfig
) -> list[Trajectory]:
    """Episodes of ``jobs`` in lock-step batches of ``config.batch_size``, in job order."""
    out: list[Trajectory] = []
    for start in range(0, len(jobs), config.batch_size):
        chunk = jobs[start : start + config.batch_size]
        out += _run_lockstep(env_factory, policy, tokenizer, chunk, config, start)
    return out


def _run_lockstep(
    env_factory: EnvFactory,
    policy: Policy,
    tokenizer: Any,
    jobs: Sequence[Job],
    config: LoopConfig,
    first_index: int,
) -> list[Trajectory]:
    episodes = [_start(env_factory, tokenizer, job, first_index + k, config) for k, job in enumerate(jobs)]
    window = config.window
    params = config.sampling
    while True:
        active, prompts = [], []
        for ep in (e for e in episodes if e.stop is None):
            prompt = next_prompt(ep, config)
            if prompt is not None:
                active.append(ep)
                prompts.append(prompt)
        if not active:
            break
        seeds = (
            None
            if params.seed is None
            else [derive_seed(params.seed, ep.index, len(ep.turns)) for ep in active]
        )
        for ep, prompt, outcome in zip(
            active, prompts, _generate(policy, active, prompts, params, seeds), strict=True
        ):
            if isinstance(outcome, Exception):
                ep.stop, ep.error = failure_stop("policy", outcome, StopReason.POLICY_ERROR)
            else:
                _advance(ep, prompt, outcome, window)
    return [_finish(ep, policy, config) for ep in episodes]


def next_prompt(ep: _Episode, config: LoopConfig) -> list[int] | None:
    """The prompt of ``ep``'s next turn, or None after ending it as ``truncated`` (the prompt leaves
    no room for ``max_new_tokens``) or ``timeout`` (past ``episode_timeout_s``)."""
    prompt = list(ep.prompt(config.window))
    if len(prompt) + config.sampling.max_new_tokens > config.max_context_tokens:
        ep.stop = StopReason.TRUNCATED
    elif config.episode_timeout_s and time.monotonic() - ep.started > config.episode_timeout_s:
        ep.stop, ep.error = StopReason.TIMEOUT, f"episode ran past {config.episode_timeout_s} s"
    else:
        return prompt
    return None


def _generate(
    policy: Policy,
    episodes: Sequence[_Episode],
    prompts: Sequence[list[int]],
    params: SamplingParams,
    seeds: Sequence[int] | None,
) -> list[Completion | Exception]:
    """One completion per prompt; when the batched call raises, each prompt is retried alone."""
    try:
        return _generate_call(policy, episodes, prompts, params, seeds)
    except Exception as exc:  # any backend failure: retried per prompt below
        if len(prompts) == 1:
            return [exc]
    out: list[Completion | Exception] = []
    for k in range(len(prompts)):
        one_seed = None if seeds is None else [seeds[k]]
        try:
            out += _generate_call(policy, [episodes[k]], [prompts[k]], params, one_seed)
        except Exception as exc:  # recorded as this episode's policy failure
            out.append(exc)
    return out


def _generate_call(
    policy: Policy,
    episodes: Sequence[_Episode],
    prompts: Sequence[list[int]],
    params: SamplingParams,
    seeds: Sequence[int] | None,
) -> list[Completion]:
    if isinstance(policy, EnvAwarePolicy):
        policy.attach([ep.env for ep in episodes])
    completions = policy.generate(prompts, params, seeds)
    if len(completions) != len(prompts):
        raise PolicyError(f"policy returned {len(completions)} completions for {len(prompts)} prompts")
    return completions


def failure_stop(where: str, exc: BaseException, default: StopReason) -> tuple[StopReason, str]:
    """The stop reason and message of an exception raised by the env or the policy: ``timeout`` for
    a ``TimeoutError`` or an exception class named ``*Timeout*`` (httpx, requests), else ``default``."""
    timeout = isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__
    return (StopReason.TIMEOUT if timeout else default), f"{where}: {type(exc).__name__}: {exc}"


def _start(env_factory: EnvFactory, tokenizer: Any, job: Job, index: int, config: LoopConfig) -> _Episode:
    task_id, seed = job
    env = env_factory()
    fmt = ChatFormat.probe(tokenizer, env.system_prompt, env_tools(env), config.chat_template_kwargs)
    ep = _Episode(env=env, job=job, fmt=fmt, index=index, started=time.monotonic())
    try:
        ep.observation, ep.info = env.reset(seed=seed, options={"task_id": task_id})
    except Exception as exc:  # a task that cannot even start is recorded, not raised
        ep.stop, ep.error = failure_stop("reset", exc, StopReason.ENV_ERROR)
        return ep
    ep.first_observation = ep.observation
    ep.pending = fmt.first_prompt(ep.observation)
    ep.context = list(ep.pending)
    return ep


def _advance(ep: _Episode, prompt: list[int], completion: Completion, window: int | None) -> None:
    if policy_failed(ep, completion):
        return
    action = action_text(completion.text)
    record_step(ep, prompt, completion, action, step_env(ep.env, action), window)


StepResult = tuple[str, float, bool, bool, dict[str, Any]]


def policy_failed(ep: _Episode, completion: Completion) -> bool:
    """Ends ``ep`` as a policy error when ``completion`` is an ``error`` sample (no turn: the policy
    produced no action)."""
    if completion.finish_reason != "error":
        return False
    ep.stop, ep.error = StopReason.POLICY_ERROR, f"policy: {completion.error}"
    return True


def step_env(env: TextEnv, action: str) -> StepResult | Exception:
    """``env.step(action)``, or the exception it raised (recorded by :func:`record_step`)."""
    try:
        return env.step(action)
    except Exception as exc:  # the env failed on this action: recorded, the batch goes on
        return exc


def record_step(
    ep: _Episode,
    prompt: list[int],
    completion: Completion,
    action: str,
    outcome: StepResult | Exception,
    window: int | None,
) -> None:
    """Append the turn ``completion`` played (``outcome`` of the env step) and extend the context."""
    prompt_ids = ep.pending if window is None else prompt
    anchor, observation = ep.info.get("anchor"), ep.observation
    tokens = {
        "prompt_ids": tuple(prompt_ids),
        "action_ids": completion.token_ids,
        "action_logprobs": completion.logprobs,
        "action_entropies": completion.entropies,
    }
    if isinstance(outcome, Exception):  # the turn the env failed on keeps its tokens
        ep.turns.append(
            Turn(observation, action, 0.0, anchor, {"finish_reason": completion.finish_reason}, **tokens)
        )
        ep.stop, ep.error = failure_stop("env", outcome, StopReason.ENV_ERROR)
        return
    obs, reward, terminated, truncated, info = outcome
    turn_info = {
        "invalid_action": bool(info["invalid_action"]),
        "parse_error": _parse_failures(info) > _parse_failures(ep.info),
        "finish_reason": completion.finish_reason,
    }
    ep.turns.append(Turn(observation, action, float(reward), anchor, turn_info, **tokens))
    ep.observation, ep.info = obs, info
    ep.history.append((action, obs))
    if terminated:
        ep.stop = StopReason.WON if info["won"] else StopReason.LOST
    elif truncated:
        ep.stop = StopReason.TRUNCATED
    else:
        ep.pending = ep.fmt.continuation(obs, completion.token_ids)
        ep.context += list(completion.token_ids) + ep.pending


def _parse_failures(info: dict[str, Any]) -> float:
    """The env's count of actions it could not parse so far (``info['metrics']``)."""
    return float(info.get("metrics", {}).get("parse_failures", 0.0))


def _finish(ep: _Episode, policy: Policy, config: LoopConfig) -> Trajectory:
    metadata: dict[str, Any] = {
        "agent": policy.name,
        "policy_version": getattr(policy, "version", None),
        "metrics": dict(ep.info.get("metrics", {})),
    }
    if ep.error:
        metadata["error"] = ep.error
    ep.env.close()
    return episode_trajectory(config, ep.job, ep.turns, ep.stop, metadata)


def episode_trajectory(
    config: LoopConfig,
    job: Job,
    turns: list[Turn],
    stop: StopReason | None,
    metadata: dict[str, Any],
) -> Trajectory:
    """The trajectory of one finished episode of job ``(task_id, seed)``; no stop reason = truncated."""
    return Trajectory(
        env_id=config.env_id,
        task_id=job[0],
        seed=job[1],
        turns=tuple(turns),
        stop_reason=stop or StopReason.TRUNCATED,
        won=stop is StopReason.WON,
        context_mode=config.context,
        metadata=metadata,
    )
