"""``check_env``: verify that an environment keeps the contract of DESIGN.md.

Each ``_check_*`` function tests one promise and raises
:class:`~turngym.errors.ContractViolation` whose message names the promise and what was seen:

1. ``step`` before ``reset`` raises :class:`~turngym.errors.ResetNeeded` (checked on ``env`` if it
   was never reset, and on the fresh instance).
2. ``reset``/``step`` return the right types, and ``info`` holds ``task_id``, ``won`` (bool),
   ``anchor`` (hashable), ``admissible_actions`` (list of str or None), ``invalid_action`` (bool) and
   ``metrics`` (dict of str → float).
3. Determinism: the same seed, task and actions give the same observations, rewards, flags and
   anchors (checked on the same instance and on a fresh one when a factory is given), so replays
   that reach equal states report equal anchors.
4. Invalid actions (garbage text, a non-string, an oversized string) are answered with an
   observation and ``invalid_action=True``, never an exception.
5. ``step`` after the episode ended raises ``ResetNeeded``; ``close()`` twice is safe.

The actions played come from the expert when the env has one, else from ``random_action``, else
(an env whose actions are free-form and unknown to the checker) a fixed invalid action.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

from turngym.envs.core import MAX_ACTION_CHARS, TextEnv
from turngym.errors import ContractViolation, ResetNeeded

INFO_KEYS = ("task_id", "won", "anchor", "admissible_actions", "invalid_action", "metrics")
GARBAGE_ACTION = "#@!~ xyzzy-not-an-action ]]{{"


def _fail(promise: str, seen: str) -> None:
    raise ContractViolation(f"{promise}; {seen}")


def _check_info(info: Any, where: str) -> None:
    if not isinstance(info, dict):
        _fail(f"{where} must return an info dict", f"got {type(info).__name__}")
    missing = [k for k in INFO_KEYS if k not in info]
    if missing:
        _fail(f"{where} info must hold {list(INFO_KEYS)}", f"missing {missing}")
    if not isinstance(info["won"], bool):
        _fail(f"{where} info['won'] must be a bool", f"got {type(info['won']).__name__}")
    if not isinstance(info["invalid_action"], bool):
        _fail(f"{where} info['invalid_action'] must be a bool", f"got {info['invalid_action']!r}")
    try:
        hash(info["anchor"])
    except TypeError:
        _fail(f"{where} info['anchor'] must be hashable", f"got {type(info['anchor']).__name__}")
    actions = info["admissible_actions"]
    if actions is not None and not (isinstance(actions, list) and all(isinstance(a, str) for a in actions)):
        _fail(f"{where} info['admissible_actions'] must be a list of str or None", f"got {actions!r:.80}")
    metrics = info["metrics"]
    if not isinstance(metrics, dict) or not all(
        isinstance(k, str) and isinstance(v, float) for k, v in metrics.items()
    ):
        _fail(f"{where} info['metrics'] must map str to float", f"got {metrics!r:.120}")


def _check_step_result(result: Any, where: str) -> None:
    if not (isinstance(result, tuple) and len(result) == 5):
        _fail(f"{where} must return (obs, reward, terminated, truncated, info)", f"got {result!r:.80}")
    obs, reward, terminated, truncated, info = result
    if not isinstance(obs, str):
        _fail(f"{where} observation must be a str", f"got {type(obs).__name__}")
    if not isinstance(reward, float):
        _fail(f"{where} reward must be a float", f"got {type(reward).__name__}")
    if not (isinstance(terminated, bool) and isinstance(truncated, bool)):
        _fail(f"{where} terminated/truncated must be bools", f"got {terminated!r}, {truncated!r}")
    _check_info(info, where)


def _choose_action(env: TextEnv, rng: np.random.Generator) -> str:
    try:
        return env.expert_action()
    except NotImplementedError:
        pass
    try:
        return env.random_action(rng)
    except NotImplementedError:
        return GARBAGE_ACTION


Record = tuple[str, float, bool, bool, Hashable, bool]


def _rollout(
    env: TextEnv, seed: int, task_id: Any, steps: int, actions: list[str] | None
) -> tuple[list[Record], list[str]]:
    obs, info = env.reset(seed=seed, options={"task_id": task_id})
    if not isinstance(obs, str):
        _fail("reset() must return a str observation", f"got {type(obs).__name__}")
    _check_info(info, "reset()")
    records: list[Record] = [(obs, 0.0, False, False, info["anchor"], info["won"])]
    played: list[str] = []
    rng = np.random.default_rng(seed)
    for i in range(steps if actions is None else len(actions)):
        action = _choose_action(env, rng) if actions is None else actions[i]
        result = env.step(action)
        _check_step_result(result, f"step({action!r:.40})")
        obs, reward, terminated, truncated, info = result
        records.append((obs, reward, terminated, truncated, info["anchor"], info["won"]))
        played.append(action)
        if terminated or truncated:
            break
    return records, played


def _check_determinism(env: TextEnv, fresh: TextEnv | None, seed: int, task_id: Any, steps: int) -> None:
    first, actions = _rollout(env, seed, task_id, steps, None)
    for name, other in (("the same instance", env), ("a fresh instance", fresh)):
        if other is None:
            continue
        again, _ = _rollout(other, seed, task_id, steps, actions)
        for i, (a, b) in enumerate(zip(first, again, strict=True)):
            if a != b:
                _fail(
                    f"same seed, task and actions must give the same results ({name}, after {i} steps)",
                    f"first run {a!r:.150}, replay {b!r:.150}",
                )


def _check_invalid_actions(env: TextEnv, seed: int, task_id: Any) -> None:
    for bad in (GARBAGE_ACTION, 12345, "x" * (MAX_ACTION_CHARS + 1)):
        env.reset(seed=seed, options={"task_id": task_id})
        try:
            result = env.step(bad)  # type: ignore[arg-type]  # deliberately not a str
        except Exception as exc:
            _fail(
                "an invalid action must be answered with an observation, never an exception",
                f"step({bad!r:.40}) raised {exc!r:.200}",
            )
        _check_step_result(result, f"step({bad!r:.40})")
        if not result[4]["invalid_action"]:
            _fail("an invalid action must set info['invalid_action'] = True", f"step({bad!r:.40}) did not")


def _check_reset_needed(env: TextEnv, seed: int, task_id: Any, steps: int) -> None:
    records, _ = _rollout(env, seed, task_id, steps, None)
    if not (records[-1][2] or records[-1][3]):
        return
    try:
        env.step(GARBAGE_ACTION)
    except ResetNeeded:
        return
    _fail("step() after the episode ended must raise ResetNeeded", "it returned normally")


def _check_step_before_reset(env: TextEnv) -> None:
    try:
        env.step(GARBAGE_ACTION)
    except ResetNeeded:
        return
    except Exception as exc:
        _fail("step() before reset() must raise ResetNeeded", f"it raised {exc!r:.200}")
    _fail("step() before reset() must raise ResetNeeded", "it returned normally")


def _check_close_twice(env: TextEnv) -> None:
    env.close()
    try:
        env.close()
    except Exception as exc:
        _fail("close() must be safe to call twice", f"the second call raised {exc!r:.200}")


def check_env(
    env: TextEnv,
    *,
    make_fresh: Callable[[], TextEnv] | None = None,
    seed: int = 0,
    task_id: Any = 0,
    steps: int = 50,
) -> None:
    """Raise :class:`ContractViolation` if ``env`` breaks the contract (see the module docstring).

    ``make_fresh`` builds a second instance to check determinism across instances; ``steps`` bounds
    each checked episode.
    """
    if not isinstance(env, TextEnv):
        _fail("the env must be a turngym TextEnv", f"got {type(env).__name__}")
    fresh = make_fresh() if make_fresh is not None else None
    for unused in (e for e in (env, fresh) if e is not None and e.task_id is None):
        _check_step_before_reset(unused)
    try:
        _check_determinism(env, fresh, seed, task_id, steps)
        _check_invalid_actions(env, seed, task_id)
        _check_reset_needed(env, seed, task_id, steps)
    finally:
        if fresh is not None:
            fresh.close()
    _check_close_twice(env)
