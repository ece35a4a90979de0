"""SALT: step-level advantage assignment via a trajectory graph (Li et al., arXiv 2510.20022).

1. A host estimator gives each trajectory an advantage A_i (``host="grpo"``, with or without std,
   or ``host="rloo"``).
2. Inside a group, the steps become edges of a graph whose nodes are states: a step is the edge
   (node_t, action_t, node_{t+1}). Steps of different trajectories that make the same transition
   are merged into one edge. ``node_key="state"`` uses the anchor as node (transitions merge
   wherever the state repeats); ``node_key="history"`` uses the whole path so far (a prefix tree:
   only identical histories merge). The edge after a trajectory's last step ends in a shared
   terminal node, so equal final (state, action) pairs merge too.
3. A step's advantage is the mean of A_j over the trajectories that traverse its edge
   (``multiplicity="trajectory"``: one vote per trajectory; ``"occurrence"``: one per traversal).
   An edge used by one trajectory keeps A_i. No second normalization.

The action is the env action text (never the model's full output). SALT's paper has no public code;
this follows the research note's reading (§2), defaulting to state nodes and one vote per trajectory.

Worked example (research note §2.4), host GRPO without std, R = [1, 1, 0, 0] → A = ±0.5:
step 1 all take (s0, a) → 0; step 2 τ1–τ3 take (s1, b) → 1/6, τ4 takes (s1, c) → −0.5;
step 3 τ1, τ2 take (s2, d) → 0.5, τ3 takes (s2, e) → −0.5.
"""

from __future__ import annotations

import numpy as np

from turngym.errors import ConfigError
from turngym.trainers.advantages.grpo import episode_advantage
from turngym.trainers.advantages.rloo import rloo_episode
from turngym.trainers.advantages.steps import StepBatch, dense_keys

HOSTS = ("grpo", "rloo")
NODE_KEYS = ("state", "history")
MULTIPLICITIES = ("trajectory", "occurrence")


def _nodes(batch: StepBatch, node_key: str) -> np.ndarray:
    """int64 [S]: the node each step starts from."""
    if node_key == "state":
        return batch.anchor_id
    index: dict[tuple[int, int, int], int] = {}
    nodes = np.empty(batch.num_steps, dtype=np.int64)
    for s in range(batch.num_steps):
        prev = (int(nodes[s - 1]), int(batch.action_id[s - 1])) if batch.turn[s] > 0 else (-1, -1)
        key = (*prev, int(batch.anchor_id[s]))
        nodes[s] = index.setdefault(key, len(index))
    return nodes


def transition_edges(batch: StepBatch, node_key: str = "state") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """int64 [S] each: the node a step starts from, the node it leads to (0: the shared terminal
    node, else node + 1) and its edge id (equal ids ⇔ the same (node, action, next node) transition
    inside one group)."""
    if node_key not in NODE_KEYS:
        raise ConfigError(f"salt node_key must be one of {NODE_KEYS}, got {node_key!r}")
    if batch.num_steps == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    nodes = _nodes(batch, node_key)
    nxt = np.where(batch.is_last, -1, np.roll(nodes, -1)) + 1  # 0: the shared terminal node
    n = batch.num_steps
    n_actions = int(batch.action_id.max()) + 1
    state_action = dense_keys(nodes * n_actions + batch.action_id)  # anchors are per group
    return nodes, nxt, dense_keys(state_action * (n + 1) + nxt)


def salt(
    batch: StepBatch,
    *,
    host: str = "grpo",
    normalize_std: bool = True,
    node_key: str = "state",
    multiplicity: str = "trajectory",
) -> np.ndarray:
    """SALT: the mean host advantage of the trajectories that make the same transition."""
    if host not in HOSTS:
        raise ConfigError(f"salt host must be one of {HOSTS}, got {host!r}")
    if node_key not in NODE_KEYS:
        raise ConfigError(f"salt node_key must be one of {NODE_KEYS}, got {node_key!r}")
    if multiplicity not in MULTIPLICITIES:
        raise ConfigError(f"salt multiplicity must be one of {MULTIPLICITIES}, got {multiplicity!r}")
    if host == "grpo":
        traj_adv = episode_advantage(batch, normalize_std=normalize_std)
    else:
        traj_adv = rloo_episode(batch)
    if batch.num_steps == 0:
        return np.zeros(0)
    _, _, edge = transition_edges(batch, node_key)
    if multiplicity == "trajectory":
        pairs = np.sort(edge * batch.num_trajectories + batch.traj)
        pairs = pairs[np.concatenate(([True], pairs[1:] != pairs[:-1]))]  # distinct (edge, trajectory)
        votes_edge, votes_traj = pairs // batch.num_trajectories, pairs % batch.num_trajectories
    else:
        votes_edge, votes_traj = edge, batch.traj
    size = int(edge.max()) + 1
    total = np.bincount(votes_edge, weights=traj_adv[votes_traj], minlength=size)
    count = np.bincount(votes_edge, minlength=size)
    return total[edge] / count[edge]
