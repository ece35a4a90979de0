"""What was trained on, turn by turn, for ``turngym view``: ``rollouts/iter_NNNN.jsonl.gz``.

Every ``rollouts_every`` iterations the trainer writes the groups it computed advantages for (after
retries, drops and dynamic-sampling filtering), group by group, one trajectory per line. A line is
:meth:`Trajectory.to_dict <turngym.trajectory.Trajectory.to_dict>` of the trajectory as the env
scored it, so ``Trajectory.from_dict`` reads it back, with two changes: the turns' ``prompt_ids``
are left out (they are the bulk of a line and say nothing a reader of the episode needs), and the
credit the trainer gave is added:

* ``metadata``: ``iteration``, ``group`` (``task:seed``, from the rollout stage), ``group_index``
  and ``member`` (position of the group in the iteration and of the trajectory in its group),
  ``line`` (0-based line of this record in the file), ``estimator``, and ``branch``
  (``{"parent": ..., "point": ...}``) when the trajectory is an ARPO copy (``metadata["arpo"]``'s
  ``parent`` id and ``branch_turn``, :mod:`turngym.trainers.arpo.rollout`), else ``None``.
* each turn's ``info["credit"]``: ``reward`` (the shaped reward the estimator saw), ``advantage``,
  ``step_group`` — the anchor-state group of GiGPO (the configured ``similarity``), logged for
  every estimator: ``{"id", "size", "members": [[line, turn], ...]}`` (the other steps of this
  iteration from the same anchor, at most :data:`MAX_MEMBERS`) — and, with ``salt``, ``salt_edge``:
  ``{"id", "node", "next", "size", "members"}`` (``next`` 0 is the terminal node).
* each turn's ``info["token_text"]``: the text of each sampled token (aligned with
  ``action_ids``, ``action_logprobs`` and ``action_entropies``), for a per-token heat map.

The file is written to a temporary name and renamed, so a reader never sees half of one.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from turngym.trainers.advantages import StepBatch
from turngym.trainers.advantages.gigpo import step_groups
from turngym.trainers.advantages.salt import transition_edges
from turngym.trajectory import Trajectory, jsonl_line

ROLLOUTS_DIR = "rollouts"
"""The folder of a run directory that holds the per-iteration files."""
MAX_MEMBERS = 64
"""At most this many ``[line, turn]`` references per step group or edge (``size`` is the full count)."""


def rollouts_path(run_dir: str | Path, iteration: int) -> Path:
    """``run_dir/rollouts/iter_NNNN.jsonl.gz``."""
    return Path(run_dir) / ROLLOUTS_DIR / f"iter_{iteration:04d}.jsonl.gz"


def rollouts_due(every: int, iteration: int) -> bool:
    """Whether iteration ``iteration`` (1-based) writes its rollouts when ``rollouts_every=every``."""
    return every > 0 and iteration % every == 0


def branch_point(metadata: Mapping[str, Any]) -> dict[str, Any] | None:
    """``{"parent", "point"}`` of a branched (ARPO) trajectory, from its metadata; None otherwise."""
    tree = metadata.get("arpo")
    if not isinstance(tree, Mapping) or tree.get("parent") is None:
        return None
    return {"parent": tree["parent"], "point": tree.get("branch_turn")}


class TokenText:
    """Decodes token ids one at a time, remembering each id's text (ids repeat a lot)."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._known: dict[int, str] = {}

    def __call__(self, ids: Sequence[int]) -> list[str]:
        missing = sorted({i for i in ids if i not in self._known})
        if missing:
            texts = self._tokenizer.batch_decode([[i] for i in missing])
            self._known.update(zip(missing, texts, strict=True))
        return [self._known[i] for i in ids]


def _members(ids: np.ndarray, where: list[tuple[int, int]]) -> dict[int, dict[str, Any]]:
    """``{id: {"size", "members"}}`` for the per-step ids ``ids`` (aligned with ``where``)."""
    out: dict[int, dict[str, Any]] = {}
    for s, key in enumerate(ids.tolist()):
        entry = out.setdefault(key, {"size": 0, "members": []})
        entry["size"] += 1
        if len(entry["members"]) < MAX_MEMBERS:
            entry["members"].append(list(where[s]))
    return out


def rollout_records(
    raw: Sequence[Sequence[Trajectory]],
    shaped: Sequence[Sequence[Trajectory]],
    advantages: Sequence[Sequence[Sequence[float]]],
    *,
    iteration: int,
    estimator: str,
    params: Mapping[str, Any],
    token_text: TokenText | None = None,
) -> list[dict[str, Any]]:
    """The JSON records of one iteration (see the module docstring), in group order.

    ``raw[g][i]`` is the trajectory as the env scored it, ``shaped[g][i]`` the same one with the
    rewards the estimator saw, ``advantages[g][i][t]`` the advantage of its turn ``t``.
    """
    batch = StepBatch.from_groups(shaped)
    lines = {key: n for n, key in enumerate(batch.traj_keys)}  # (g, i) -> line: records go in this order
    where = [(lines[batch.traj_keys[n]], int(t)) for n, t in zip(batch.traj, batch.turn, strict=True)]
    group_ids = step_groups(batch, params.get("similarity"))
    groups, step_group_of = _members(group_ids, where), group_ids.tolist()
    edges: dict[int, dict[str, Any]] = {}
    edge_of: list[int] = []
    nodes = nxt = np.zeros(0, dtype=np.int64)
    if estimator == "salt":
        nodes, nxt, edge = transition_edges(batch, params.get("node_key", "state"))
        edges, edge_of = _members(edge, where), edge.tolist()
    records: list[dict[str, Any]] = []
    step = 0
    for g, (raw_group, shaped_group) in enumerate(zip(raw, shaped, strict=True)):
        for i, (traj, scored) in enumerate(zip(raw_group, shaped_group, strict=True)):
            data = traj.to_dict()
            turns = []
            for t, (turn, shaped_turn) in enumerate(zip(data["turns"], scored.turns, strict=True)):
                credit: dict[str, Any] = {
                    "reward": shaped_turn.reward,
                    "advantage": float(advantages[g][i][t]),
                    "step_group": {"id": step_group_of[step], **groups[step_group_of[step]]},
                }
                if edge_of:
                    e = edge_of[step]
                    credit["salt_edge"] = {
                        "id": e,
                        "node": int(nodes[step]),
                        "next": int(nxt[step]),
                        **edges[e],
                    }
                info = {**turn["info"], "credit": credit}
                if token_text is not None and turn["action_ids"]:
                    info["token_text"] = token_text(turn["action_ids"])
                turns.append({k: v for k, v in turn.items() if k != "prompt_ids"} | {"info": info})
                step += 1
            data["turns"] = turns
            data["metadata"] = {
                **data["metadata"],
                "iteration": iteration,
                "group_index": g,
                "member": i,
                "line": len(records),
                "estimator": estimator,
                "branch": branch_point(traj.metadata),
            }
            records.append(data)
    return records


def write_rollouts(
    run_dir: str | Path,
    iteration: int,
    raw: Sequence[Sequence[Trajectory]],
    shaped: Sequence[Sequence[Trajectory]],
    advantages: Sequence[Sequence[Sequence[float]]],
    *,
    estimator: str,
    params: Mapping[str, Any],
    token_text: TokenText | None = None,
) -> float:
    """Write iteration ``iteration``'s records to :func:`rollouts_path`; returns the seconds it took."""
    started = time.perf_counter()
    path = rollouts_path(run_dir, iteration)
    path.parent.mkdir(parents=True, exist_ok=True)
    records = rollout_records(
        raw,
        shaped,
        advantages,
        iteration=iteration,
        estimator=estimator,
        params=params,
        token_text=token_text,
    )
    tmp = path.with_name(f".{path.name}.tmp")
    with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=6) as f:
        for record in records:
            f.write(jsonl_line(record))
    os.replace(tmp, path)
    return time.perf_counter() - started


def read_rollouts(path: str | Path) -> list[dict[str, Any]]:
    """The records of one (small) rollouts file, in order; the viewer pages big ones instead."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
