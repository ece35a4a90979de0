"""The data model handed from the agent loop to the trainer: :class:`Turn` and :class:`Trajectory`.

Both are frozen. A turn is one (observation, action) pair: the observation the policy acted on, the
action text, the immediate reward of that action and the anchor of the state it acted from. When a
policy produced the action, the turn also carries tokens:

* ``prompt_ids`` — the tokens placed in the context before this action that the policy did *not*
  sample (system prompt, observation, chat-template glue). In ``full`` context mode these are only
  the tokens appended since the previous turn; in ``window:k`` mode each turn is its own prompt
  and they are the whole prompt. Loss mask 0.
* ``action_ids`` / ``action_logprobs`` — exactly the sampled tokens and their log-probabilities
  under the sampling policy. Loss mask 1.
* ``action_entropies`` — per-token entropies of the sampling distribution, when measured.

JSONL round trip: ``Trajectory.to_dict`` / ``from_dict`` are lossless, including tuple anchors
(stored as ``{"__tuple__": [...]}``) and non-finite floats.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any


class StopReason(str, Enum):
    """Why an episode ended."""

    WON = "won"
    """The task's goal was reached."""
    LOST = "lost"
    """The env terminated the episode without success."""
    TRUNCATED = "truncated"
    """A turn, token or context budget ran out."""
    ENV_ERROR = "env_error"
    """The environment (or a tool or sandbox behind it) raised."""
    POLICY_ERROR = "policy_error"
    """The policy backend failed to produce a completion (an exception or an ``error`` sample)."""
    PARSE_ERROR = "parse_error"
    """The policy's output could not be turned into an action."""
    TIMEOUT = "timeout"
    """A wall-clock limit ran out (the episode's, or a timeout raised by the env or the policy)."""

    @property
    def is_failure(self) -> bool:
        """An infrastructure failure: the outcome says nothing about the policy, so it is never
        trained on (the trainer re-rolls or drops the group; see docs/training.md)."""
        return self in _FAILURES


_FAILURES = frozenset({StopReason.ENV_ERROR, StopReason.POLICY_ERROR, StopReason.TIMEOUT})


@dataclass(frozen=True)
class Turn:
    """One step of an episode."""

    observation: str
    """The observation the action responded to."""
    action: str
    """The action text sent to the env."""
    reward: float
    """The immediate reward of the action."""
    anchor: Hashable = None
    """Canonical key of the state the action was taken from."""
    info: Mapping[str, Any] = field(default_factory=dict)
    """JSON-able extras (e.g. ``invalid_action``, env metrics)."""
    prompt_ids: tuple[int, ...] = ()
    """Context tokens before the action that the policy did not sample (loss mask 0)."""
    action_ids: tuple[int, ...] = ()
    """The sampled tokens of the action (loss mask 1)."""
    action_logprobs: tuple[float, ...] = ()
    """Log-probabilities of ``action_ids`` under the sampling policy."""
    action_entropies: tuple[float, ...] = ()
    """Per-token entropies of the sampling distribution (may be empty)."""

    def __post_init__(self) -> None:
        if self.action_logprobs and len(self.action_logprobs) != len(self.action_ids):
            raise ValueError(
                f"action_logprobs has {len(self.action_logprobs)} entries for "
                f"{len(self.action_ids)} action tokens; they must match one to one"
            )

    @property
    def loss_mask(self) -> tuple[int, ...]:
        """0 for every prompt token, 1 for every sampled token (``prompt_ids + action_ids``)."""
        return (0,) * len(self.prompt_ids) + (1,) * len(self.action_ids)


@dataclass(frozen=True)
class Trajectory:
    """One episode: its task, its turns and how it ended."""

    env_id: str
    task_id: Any
    seed: int | None
    turns: tuple[Turn, ...]
    stop_reason: StopReason
    won: bool = False
    """The task's goal held at the end."""
    context_mode: str = "full"
    """``full`` (one growing sequence) or ``window:k`` (one prompt per turn)."""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """JSON-able extras (group id, policy version, env metrics...)."""

    @property
    def total_reward(self) -> float:
        """Sum of the turns' immediate rewards."""
        return float(sum(t.reward for t in self.turns))

    @property
    def token_ids(self) -> tuple[int, ...]:
        """All tokens in order (the training sequence in ``full`` mode)."""
        return tuple(i for t in self.turns for i in (*t.prompt_ids, *t.action_ids))

    @property
    def loss_mask(self) -> tuple[int, ...]:
        """The loss mask aligned with :attr:`token_ids`."""
        return tuple(m for t in self.turns for m in t.loss_mask)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict from which :meth:`from_dict` rebuilds an equal trajectory."""
        out = {f.name: to_jsonable(getattr(self, f.name)) for f in fields(self) if f.name != "turns"}
        out["stop_reason"] = self.stop_reason.value
        out["turns"] = [
            {f.name: _turn_field_to_json(f.name, getattr(t, f.name)) for f in fields(Turn)}
            for t in self.turns
        ]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Trajectory:
        """Rebuild a trajectory from :meth:`to_dict`'s output."""
        turns = tuple(
            Turn(**{k: tuple(v) if k in _TOKEN_FIELDS else from_jsonable(v) for k, v in t.items()})
            for t in data["turns"]
        )
        rest = {k: from_jsonable(v) for k, v in data.items() if k not in ("turns", "stop_reason")}
        return cls(turns=turns, stop_reason=StopReason(data["stop_reason"]), **rest)


_TOKEN_FIELDS = frozenset({"prompt_ids", "action_ids", "action_logprobs", "action_entropies"})


def _turn_field_to_json(name: str, value: Any) -> Any:
    """Token fields as plain JSON arrays (compact); every other field through :func:`to_jsonable`."""
    return list(value) if name in _TOKEN_FIELDS else to_jsonable(value)


def to_jsonable(value: Any) -> Any:
    """Make ``value`` JSON-able losslessly: tuples become ``{"__tuple__": [...]}``, keys strings."""
    if isinstance(value, tuple):
        return {"__tuple__": [to_jsonable(v) for v in value]}
    if isinstance(value, list):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    return value


def from_jsonable(value: Any) -> Any:
    """Invert :func:`to_jsonable`."""
    if isinstance(value, dict):
        if set(value) == {"__tuple__"}:
            return tuple(from_jsonable(v) for v in value["__tuple__"])
        return {k: from_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_jsonable(v) for v in value]
    return value


def jsonl_line(data: Mapping[str, Any]) -> str:
    """Readable UTF-8 JSON; ASCII escapes when the text holds lone surrogates UTF-8 cannot encode."""
    line = json.dumps(data, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:  # e.g. half of a surrogate pair from a badly cut string
        line = json.dumps(data)
    return line + "\n"


def write_jsonl(path: str | Path, trajectories: Iterable[Trajectory]) -> int:
    """Write one trajectory per line; returns how many were written."""
    n = 0
    with Path(path).open("w", encoding="utf-8") as f:
        for traj in trajectories:
            f.write(jsonl_line(traj.to_dict()))
            n += 1
    return n


def read_jsonl(path: str | Path) -> list[Trajectory]:
    """Read trajectories written by :func:`write_jsonl`."""
    with Path(path).open(encoding="utf-8") as f:
        return [Trajectory.from_dict(json.loads(line)) for line in f if line.strip()]
