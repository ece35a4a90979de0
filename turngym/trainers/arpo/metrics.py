"""``arpo/`` metrics of one iteration's branched groups, and the tool-call count of any trajectory.

A tool call is a valid action after which the episode went on (its observation is a tool result:
a calculator result, search hits; a move in an env without tools), the same rule the branching
rollout uses for its branch points, so GRPO and ARPO runs are counted alike.
"""

from __future__ import annotations

from collections.abc import Sequence

from turngym.trajectory import StopReason, Trajectory


def tool_calls(trajectory: Trajectory) -> int:
    """Valid actions of ``trajectory`` that did not end its episode."""
    turns = trajectory.turns
    ended = trajectory.stop_reason in (StopReason.WON, StopReason.LOST)
    return sum(
        not turn.info.get("invalid_action", False) and not (ended and t == len(turns) - 1)
        for t, turn in enumerate(turns)
    )


def tool_call_metrics(groups: Sequence[Sequence[Trajectory]]) -> dict[str, float]:
    """``rollout/tool_calls_per_trajectory`` and ``rollout/tool_calls_per_correct`` (all tool calls
    over the trajectories that won; 0 when none won)."""
    flat = [t for g in groups for t in g]
    calls = sum(tool_calls(t) for t in flat)
    wins = sum(t.won for t in flat)
    return {
        "rollout/tool_calls_per_trajectory": calls / max(len(flat), 1),
        "rollout/tool_calls_per_correct": calls / wins if wins else 0.0,
    }


def arpo_metrics(groups: Sequence[Sequence[Trajectory]]) -> dict[str, float]:
    """Branching statistics from ``metadata["arpo"]`` (trajectories per group: mean and max;
    branches and budget-filling rollouts per group; mean ΔH at branch points; mean H of first
    segments and of segments after a tool result, counting every sampled segment once)."""
    sizes = [len(g) for g in groups]
    branches = fills = 0
    deltas: list[float] = []
    before: list[float] = []
    after: list[float] = []
    for group in groups:
        for traj in group:
            info = traj.metadata.get("arpo") or {}
            branches += info.get("kind") == "branch"
            fills += info.get("kind") == "fill"
            entropy = info.get("entropy") or []
            own_from = info.get("branch_turn") or 0
            for t in range(own_from, len(entropy)):
                if t == 0:
                    before.append(entropy[0])
                elif not traj.turns[t - 1].info.get("invalid_action", False):
                    after.append(entropy[t])
                    deltas.append(entropy[t] - entropy[0])
    n = max(len(groups), 1)
    return {
        "arpo/trajectories": sum(sizes) / n,
        "arpo/trajectories_max": float(max(sizes, default=0)),
        "arpo/branches": branches / n,
        "arpo/fill_rollouts": fills / n,
        "arpo/entropy_delta": _mean(deltas),
        "arpo/entropy_initial": _mean(before),
        "arpo/entropy_after_tool": _mean(after),
    }


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
