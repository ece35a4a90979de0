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
leave fewer than ``max_new_tokens`` positions of ``max_context_tokens`` (``truncated``), or when
the env or the policy raises for it (``env_error``; the message is in ``metadata['error']``) — the
rest of the batch goes on. Sampling seeds: turn ``t`` of a batch uses ``hash(seed, batch, t)`` so
runs repeat exactly under a seed while different turns draw different randomness.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from turngym.agents.chat import ChatFormat, action_text, env_tools
from turngym.agents.policy import Completion, EnvAwarePolicy, LoopConfig, Policy
from turngym.envs.core import TextEnv
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
        out += _run_lockstep(env_factory, policy, tokenizer, chunk, config, start // config.batch_size)
    return out


def _run_lockstep(
    env_factory: EnvFactory,
    policy: Policy,
    tokenizer: Any,
    jobs: Sequence[Job],
    config: LoopConfig,
    batch_index: int,
) -> list[Trajectory]:
    episodes = [_start(env_factory, tokenizer, job) for job in jobs]
    window = config.window
    params = config.sampling
    turn = 0
    while True:
        active, prompts = [], []
        for ep in (e for e in episodes if e.stop is None):
            prompt = list(ep.prompt(window))
            if len(prompt) + params.max_new_tokens > config.max_context_tokens:
                ep.stop = StopReason.TRUNCATED
            else:
                active.append(ep)
                prompts.append(prompt)
        if not active:
            break
        seed = None if params.seed is None else _mix(params.seed, batch_index, turn)
        try:
            if isinstance(policy, EnvAwarePolicy):
                policy.attach([ep.env for ep in active])
            completions = policy.generate(prompts, replace(params, seed=seed))
            if len(completions) != len(active):
                raise RuntimeError(
                    f"policy returned {len(completions)} completions for {len(active)} prompts"
                )
        except Exception as exc:  # one failed generate ends this batch's episodes, not the caller
            for ep in active:
                ep.stop, ep.error = StopReason.ENV_ERROR, f"policy: {type(exc).__name__}: {exc}"
            break
        for ep, prompt, completion in zip(active, prompts, completions, strict=True):
            _advance(ep, prompt, completion, window)
        turn += 1
    return [_finish(ep, policy, config) for ep in episodes]


def _start(env_factory: EnvFactory, tokenizer: Any, job: Job) -> _Episode:
    task_id, seed = job
    env = env_factory()
    fmt = ChatFormat.probe(tokenizer, env.system_prompt, env_tools(env))
    ep = _Episode(env=env, job=job, fmt=fmt)
    try:
        ep.observation, ep.info = env.reset(seed=seed, options={"task_id": task_id})
    except Exception as exc:  # a task that cannot even start is recorded, not raised
        ep.stop, ep.error = StopReason.ENV_ERROR, f"reset: {type(exc).__name__}: {exc}"
        return ep
    ep.first_observation = ep.observation
    ep.pending = fmt.first_prompt(ep.observation)
    ep.context = list(ep.pending)
    return ep


def _advance(ep: _Episode, prompt: list[int], completion: Completion, window: int | None) -> None:
    prompt_ids = ep.pending if window is None else prompt
    anchor, observation = ep.info.get("anchor"), ep.observation
    tokens = {
        "prompt_ids": tuple(prompt_ids),
        "action_ids": completion.token_ids,
        "action_logprobs": completion.logprobs,
        "action_entropies": completion.entropies,
    }
    if completion.finish_reason == "error":
        ep.turns.append(Turn(observation, "", 0.0, anchor, {"finish_reason": "error"}, **tokens))
        ep.stop, ep.error = StopReason.ENV_ERROR, f"policy: {completion.error}"
        return
    action = action_text(completion.text)
    try:
        obs, reward, terminated, truncated, info = ep.env.step(action)
    except Exception as exc:  # the env failed on this action: record it, keep the batch going
        ep.turns.append(
            Turn(observation, action, 0.0, anchor, {"finish_reason": completion.finish_reason}, **tokens)
        )
        ep.stop, ep.error = StopReason.ENV_ERROR, f"env: {type(exc).__name__}: {exc}"
        return
    turn_info = {"invalid_action": bool(info["invalid_action"]), "finish_reason": completion.finish_reason}
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


def _mix(seed: int, batch: int, turn: int) -> int:
    return int(np.random.SeedSequence([seed, batch, turn]).generate_state(1, dtype=np.uint64)[0] >> 1)
