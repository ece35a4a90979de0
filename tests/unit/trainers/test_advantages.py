"""Every estimator against the research note's hand-computed fixtures, plus the invariances."""

from __future__ import annotations

import random
from difflib import SequenceMatcher

import numpy as np
import pytest

from turngym.errors import ConfigError, TrainerError
from turngym.trainers.advantages import (
    StepBatch,
    StepRow,
    compute,
    compute_steps,
    estimator_names,
    register_estimator,
    step_group_sizes,
)
from turngym.trainers.advantages.empg import entropy_modulate
from turngym.trajectory import StopReason, Trajectory, Turn


def traj(rewards, anchors=None, actions=None, entropies=None) -> Trajectory:
    n = len(rewards)
    anchors = anchors or [f"s{t}" for t in range(n)]
    actions = actions or ["go"] * n
    turns = tuple(
        Turn(
            observation=str(anchors[t]),
            action=actions[t],
            reward=float(rewards[t]),
            anchor=anchors[t],
            action_ids=(1,) if entropies else (),
            action_logprobs=(-0.1,) if entropies else (),
            action_entropies=(entropies[t],) if entropies else (),
        )
        for t in range(n)
    )
    return Trajectory("toy", 0, 0, turns, StopReason.WON)


def flat(nested):
    return [x for group in nested for tr in group for x in tr]


def outcome_group(rewards):
    return [[traj([r]) for r in rewards]]


# ---- §7 baselines: group [1, 0, 0, 1, 1] -------------------------------------------------------
def test_grpo_with_std_fixture():
    got = flat(compute("grpo", outcome_group([1, 0, 0, 1, 1])))
    assert got == pytest.approx([0.7303, -1.0954, -1.0954, 0.7303, 0.7303], abs=1e-4)


def test_dr_grpo_and_grpo_without_std_fixture():
    expected = [0.4, -0.6, -0.6, 0.4, 0.4]
    assert flat(compute("dr_grpo", outcome_group([1, 0, 0, 1, 1]))) == pytest.approx(expected)
    assert flat(compute("grpo", outcome_group([1, 0, 0, 1, 1]), normalize_std=False)) == pytest.approx(
        expected
    )


def test_rloo_fixture():
    assert flat(compute("rloo", outcome_group([1, 0, 0, 1, 1]))) == pytest.approx(
        [0.5, -0.75, -0.75, 0.5, 0.5]
    )


def test_grpo_broadcasts_episode_return_to_every_turn():
    got = compute("grpo", [[traj([0, 1]), traj([0, 0, 0])]], normalize_std=False)
    assert got == [[[0.5, 0.5], [-0.5, -0.5, -0.5]]]


def test_reinforce_pp_whitens_returns_to_go_over_the_batch():
    got = flat(compute("reinforce_pp", [[traj([0, 1]), traj([0, 0])]]))
    # G = [1, 1, 0, 0] (gamma 1): mean 0.5, unbiased std 0.57735
    assert got == pytest.approx([0.8660, 0.8660, -0.8660, -0.8660], abs=1e-4)
    discounted = flat(compute("reinforce_pp", [[traj([0, 1]), traj([0, 0])]], gamma=0.5))
    g = np.array([0.5, 1.0, 0.0, 0.0])
    assert discounted == pytest.approx(list((g - g.mean()) / (g.std(ddof=1) + 1e-6)))


def test_reinforce_pp_baseline_centres_per_group_then_whitens_the_batch():
    groups = [[traj([1]), traj([0])], [traj([1]), traj([1])]]
    got = flat(compute("reinforce_pp_baseline", groups))
    a = np.array([0.5, -0.5, 0.0, 0.0])
    assert got == pytest.approx(list((a - a.mean()) / (a.std(ddof=1) + 1e-6)))


# ---- §1.5 GiGPO ----------------------------------------------------------------------------------
def gigpo_group():
    return [
        traj([0, 1], ["s0", "s1"], ["go a", "go b"]),
        traj([0, 0, 1], ["s0", "s0", "s1"], ["noop", "go a", "go b"]),
        traj([0, 0], ["s0", "s2"], ["go c", "go d"]),
    ]


def test_gigpo_mean_norm_fixture():
    got = compute("gigpo", [gigpo_group()], gamma=0.5, omega=1.0, mode="mean_norm")
    assert got[0][0] == pytest.approx([0.5208, 0.3333], abs=1e-4)
    assert got[0][1] == pytest.approx([0.2708, 0.5208, 0.3333], abs=1e-4)
    assert got[0][2] == pytest.approx([-0.9792, -0.6667], abs=1e-4)


def test_gigpo_mean_std_norm_fixture():
    got = compute("gigpo", [gigpo_group()], gamma=0.5, mode="mean_std_norm")
    assert got[0][0] == pytest.approx([1.3607, 0.5773], abs=1e-4)
    assert got[0][1] == pytest.approx([0.3162, 1.3607, 0.5773], abs=1e-4)
    assert got[0][2] == pytest.approx([-2.4603, -1.1547], abs=1e-4)


def test_gigpo_step_weighted_episode_statistics_pin_the_variant():
    step_only = compute("gigpo", [gigpo_group()], gamma=0.5, omega=0.0, episode_stats="step_weighted")
    assert [tr[0] for tr in step_only[0]] == pytest.approx([2 / 7, 2 / 7, -5 / 7])
    paper = compute("gigpo", [gigpo_group()], gamma=0.5, omega=0.0)
    assert [tr[0] for tr in paper[0]] == pytest.approx([1 / 3, 1 / 3, -2 / 3])


def test_gigpo_defaults_are_the_recommended_ones():
    default = compute("gigpo", [gigpo_group()])
    explicit = compute("gigpo", [gigpo_group()], gamma=0.95, omega=1.0, mode="mean_norm")
    assert default == explicit


def test_gigpo_singleton_episode_group_gives_raw_return_and_zero_step_advantage():
    assert compute("gigpo", [[traj([0, 1], ["a", "b"])]], gamma=0.5) == [[[1.0, 1.0]]]


def test_gigpo_zero_variance_step_group_gives_zero_step_advantage():
    same = [traj([0, 1], ["a", "b"]), traj([0, 1], ["a", "b"])]
    for mode in ("mean_norm", "mean_std_norm"):
        assert flat(compute("gigpo", [same], mode=mode)) == pytest.approx([0.0] * 4)


def test_gigpo_step_groups_never_cross_groups():
    one = compute("gigpo", [gigpo_group()], gamma=0.5)
    two = compute(
        "gigpo", [gigpo_group(), [traj([5, 5], ["s0", "s1"]), traj([0, 0], ["s0", "s1"])]], gamma=0.5
    )
    assert two[0] == one[0]


def test_gigpo_similarity_grouping_merges_near_identical_text_and_is_order_dependent():
    a = "You are in the hall. Exits: north."
    b = "You are in the hall. Exits: north!"  # ratio 0.97
    group = [traj([0, 1], [a, "x"]), traj([0, 0], [b, "y"])]
    exact = compute("gigpo", [group], gamma=1.0, omega=1.0)
    similar = compute("gigpo", [group], gamma=1.0, omega=1.0, similarity=0.9)
    assert exact == [[[0.5, 0.5], [-0.5, -0.5]]]  # step groups are singletons: A^S = 0
    assert similar == [[[1.0, 0.5], [-1.0, -0.5]]]  # first steps share a group: A^S = ±0.5
    # order dependence: c is similar to b but not to a; whichever of a/b comes first is the head
    c = "You are in the hall! Exits: north!!"
    batch_ab = StepBatch.from_groups([[traj([0], [a]), traj([0], [b]), traj([0], [c])]])
    batch_ba = StepBatch.from_groups([[traj([0], [b]), traj([0], [a]), traj([0], [c])]])
    assert step_group_sizes(batch_ab, 0.95).tolist() == [2, 1]
    assert step_group_sizes(batch_ba, 0.95).tolist() == [3]


ROOM = (
    "-= Welcome to TextWorld, ALFRED! =-\n\nYou are in the middle of a room. Looking quickly around you, "
    "you see a bed 1, a desk 1, a drawer 4, a drawer 3, a drawer 2, a drawer 1, a dresser 1, a garbagecan 1, "
    "a shelf 2, a shelf 1, and a sidetable 1.\n\nYour task is to: put a candle in desk."
)


def test_gigpo_similarity_compares_the_new_text_against_the_cluster_head_as_verl_agent_does():
    # 282 characters: difflib's autojunk drops characters frequent in its *second* argument only
    other = ROOM.replace("bed 1", "bed 2")
    assert SequenceMatcher(None, ROOM, other).ratio() == pytest.approx(0.9965, abs=1e-4)
    assert SequenceMatcher(None, other, ROOM).ratio() == pytest.approx(0.6028, abs=1e-4)
    # verl-agent: are_similar(obs, cluster["rep"]) = SequenceMatcher(None, obs, rep).ratio() >= thresh
    head_room = [traj([0, 1], [ROOM, "x"]), traj([0, 0], [other, "y"])]
    head_other = [traj([0, 0], [other, "y"]), traj([0, 1], [ROOM, "x"])]
    assert step_group_sizes(StepBatch.from_groups([head_room]), 0.9).tolist() == [1, 1, 1, 1]
    assert step_group_sizes(StepBatch.from_groups([head_other]), 0.9).tolist() == [2, 1, 1]
    assert compute("gigpo", [head_room], gamma=1.0, similarity=0.9) == [[[0.5, 0.5], [-0.5, -0.5]]]
    assert compute("gigpo", [head_other], gamma=1.0, similarity=0.9) == [[[-1.0, -0.5], [1.0, 0.5]]]


def test_gigpo_rejects_bad_mode_and_threshold():
    with pytest.raises(ConfigError, match="mean_norm"):
        compute("gigpo", [gigpo_group()], mode="leave_one_out")
    with pytest.raises(ConfigError, match=r"\(0, 1\)"):
        compute("gigpo", [gigpo_group()], similarity=1.5)


# ---- §2.4 SALT ------------------------------------------------------------------------------------
def salt_group():
    return [
        traj([0, 0, 1], ["s0", "s1", "s2"], ["a", "b", "d"]),
        traj([0, 0, 1], ["s0", "s1", "s2"], ["a", "b", "d"]),
        traj([0, 0, 0], ["s0", "s1", "s2"], ["a", "b", "e"]),
        traj([0, 0], ["s0", "s1"], ["a", "c"]),
    ]


def test_salt_fixture_with_grpo_host_without_std():
    got = compute("salt", [salt_group()], host="grpo", normalize_std=False)
    assert got[0][0] == pytest.approx([0.0, 1 / 6, 0.5])
    assert got[0][1] == pytest.approx([0.0, 1 / 6, 0.5])
    assert got[0][2] == pytest.approx([0.0, 1 / 6, -0.5])
    assert got[0][3] == pytest.approx([0.0, -0.5])


def test_salt_rloo_host_and_history_nodes():
    rloo = compute("salt", [salt_group()], host="rloo")
    # RLOO A = 4/3 * (R - 0.5) = ±2/3; merged edge of tau1-3 -> (2/3 + 2/3 - 2/3)/3
    assert rloo[0][0] == pytest.approx([0.0, 2 / 9, 2 / 3])
    history = compute(
        "salt",
        [[traj([0, 1], ["s0", "s1"], ["a", "b"]), traj([0, 0, 0], ["s0", "s0", "s1"], ["x", "a", "b"])]],
        normalize_std=False,
        node_key="history",
    )
    # under history nodes tau2's (s0, a) follows a different path and is not merged with tau1's
    assert history == [[[0.5, 0.5], [-0.5, -0.5, -0.5]]]


def test_salt_multiplicity_one_vote_per_trajectory_or_per_occurrence():
    loop = [
        traj([0, 0, 0], ["s0", "s0", "s0"], ["stay", "stay", "stay"]),
        traj([0, 0, 1], ["s0", "s0", "s1"], ["stay", "go", "x"]),
    ]
    # edge (s0, stay, s0) is used 2x by tau1 (A = -0.5) and 1x by tau2 (A = +0.5)
    per_traj = compute("salt", [loop], normalize_std=False)
    per_occ = compute("salt", [loop], normalize_std=False, multiplicity="occurrence")
    assert per_traj[0][0][0] == pytest.approx(0.0)
    assert per_occ[0][0][0] == pytest.approx((-0.5 - 0.5 + 0.5) / 3)
    assert per_traj[0][1][1] == pytest.approx(0.5)  # (s0, go, s1) is tau2's alone


# ---- §4.5 TRLOO -----------------------------------------------------------------------------------
def trloo_group():
    return [traj([0, 0.5, 1.0]), traj([0.5, 1.0]), traj([0, 0, 0.5])]


def test_trloo_fixture():
    got = compute("trloo", [trloo_group()])
    assert got[0][0] == pytest.approx([0.5, 0.75, 0.5])
    assert got[0][1] == pytest.approx([0.5, 0.0])
    assert got[0][2] == pytest.approx([-1.0, -0.75, -0.5])


def test_trloo_relates_to_turn_level_grpo_by_shrinkage():
    t = compute("trloo", [trloo_group()])
    g = np.array([[1.5, 1.5, 1.0], [1.5, 1.0, np.nan], [0.5, 0.5, 0.5]])
    for turn, n_t in enumerate([3, 3, 2]):
        col = g[:, turn][~np.isnan(g[:, turn])]
        grpo_turn = col - col.mean()
        trloo_turn = [tr[turn] for tr in t[0] if len(tr) > turn]
        assert list(grpo_turn) == pytest.approx([(n_t - 1) / n_t * x for x in trloo_turn])


def test_trloo_singleton_turn_returns_g():
    got = compute("trloo", [[traj([0, 0, 2]), traj([1])]])
    assert got[0][0][1:] == [2.0, 2.0]


# ---- §5 EMPG --------------------------------------------------------------------------------------
def test_empg_fixture_and_batch_mean_of_g_is_one():
    group = [traj([0, 1], entropies=[0.2, 0.8]), traj([0, 0], entropies=[0.5, 1.0])]
    got = flat(compute("empg", [group], host="rloo", k=1.0, k_next=1.0, zeta=0.05))
    assert got == pytest.approx([1.4306, 0.5720, -1.2449, -0.7578], abs=1e-4)
    # with a unit base advantage and no bonus the output is g - mean(g) = g - 1
    g_minus_one = entropy_modulate(StepBatch.from_groups([group]), np.ones(4), zeta=0.0)
    assert list(g_minus_one + 1) == pytest.approx([1.5826, 0.7476, 1.0877, 0.5822], abs=1e-4)


def test_empg_needs_entropies():
    with pytest.raises(TrainerError, match="entropies=True"):
        compute("empg", [[traj([1]), traj([0])]])


def test_empg_passes_host_params_and_rejects_unknown_ones():
    group = [traj([0, 1], entropies=[0.2, 0.8]), traj([0, 0], entropies=[0.5, 1.0])]
    compute("empg", [group], host="gigpo", gamma=0.9)
    with pytest.raises(ConfigError, match="gamma"):
        compute("empg", [group], host="grpo", gamma=0.9)


# ---- invariances ----------------------------------------------------------------------------------
PARAMS = {
    "grpo": {},
    "dr_grpo": {},
    "rloo": {},
    "reinforce_pp": {"gamma": 0.9},
    "reinforce_pp_baseline": {},
    "gigpo": {"gamma": 0.9, "mode": "mean_std_norm"},
    "salt": {"node_key": "history"},
    "trloo": {},
    "empg": {"host": "gigpo"},
}


def random_groups(rng: random.Random, n_groups=3, n=5):
    groups = []
    for _ in range(n_groups):
        group = []
        for _ in range(n):
            length = rng.randint(1, 5)
            states = [f"s{rng.randint(0, 3)}" for _ in range(length)]
            group.append(
                traj(
                    [rng.choice([0.0, 0.0, 1.0]) for _ in range(length)],
                    states,
                    [rng.choice(["a", "b"]) for _ in range(length)],
                    [rng.random() for _ in range(length)],
                )
            )
        groups.append(group)
    return groups


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_layout_invariance_step_rows_equal_trajectory_rows(name):
    groups = random_groups(random.Random(1))
    by_traj = compute(name, groups, **PARAMS[name])
    rows = [
        StepRow(f"g{g}", f"g{g}-t{i}", t, turn.reward, turn.anchor, turn.action, turn.action_entropies[0])
        for g, group in enumerate(groups)
        for i, tr in enumerate(group)
        for t, turn in enumerate(tr.turns)
    ]
    random.Random(7).shuffle(rows)
    batch = StepBatch.from_rows(rows)
    adv = compute_steps(name, batch, **PARAMS[name])
    key = {(batch.traj_keys[batch.traj[s]], int(batch.turn[s])): adv[s] for s in range(batch.num_steps)}
    for g, group in enumerate(groups):
        for i, tr in enumerate(group):
            assert [key[(f"g{g}-t{i}", t)] for t in range(len(tr.turns))] == pytest.approx(by_traj[g][i])


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_permutation_invariance_within_a_group(name):
    groups = random_groups(random.Random(2))
    base = compute(name, groups, **PARAMS[name])
    perm = list(range(len(groups[0])))
    random.Random(3).shuffle(perm)
    shuffled = [[groups[0][p] for p in perm], *groups[1:]]
    got = compute(name, shuffled, **PARAMS[name])
    for new_i, old_i in enumerate(perm):
        assert got[0][new_i] == pytest.approx(base[0][old_i])
    assert got[1:] == [[pytest.approx(tr) for tr in g] for g in base[1:]]


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "rloo", "gigpo", "salt", "trloo"])
def test_zero_variance_group_gives_zero_advantage(name):
    same = [[traj([0, 1], ["a", "b"], ["x", "y"]) for _ in range(4)]]
    assert flat(compute(name, same)) == pytest.approx([0.0] * 8)


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "rloo", "trloo"])
def test_singleton_group_has_zero_baseline(name):
    assert flat(compute(name, [[traj([0, 1])]])) == pytest.approx([1.0, 1.0])


def test_unknown_estimator_and_parameter_are_config_errors():
    with pytest.raises(ConfigError, match="choose one of"):
        compute("ppo", [[traj([1])]])
    with pytest.raises(ConfigError, match="not \\['omega'\\]"):
        compute("grpo", [[traj([1])]], omega=1.0)


def test_register_a_user_estimator(monkeypatch):
    from turngym.trainers import advantages

    monkeypatch.setattr(
        advantages, "_REGISTRY", dict(advantages._REGISTRY)
    )  # the user's name goes away after
    register_estimator("test_const", lambda batch, value=2.0: np.full(batch.num_steps, value), replace=True)
    assert "test_const" in estimator_names()
    assert compute("test_const", [[traj([0, 1])]], value=3.0) == [[[3.0, 3.0]]]
    with pytest.raises(ConfigError, match="already registered"):
        register_estimator("grpo", lambda b: b.reward)


def test_malformed_step_rows_are_rejected():
    with pytest.raises(TrainerError, match=r"turns 0\.\.T-1"):
        StepBatch.from_rows([StepRow("g", "t", 0, 1.0), StepRow("g", "t", 2, 1.0)])
    with pytest.raises(TrainerError, match="exactly one group"):
        StepBatch.from_rows([StepRow("g", "t", 0, 1.0), StepRow("h", "t", 1, 1.0)])


def test_empty_groups_give_empty_output():
    assert compute("gigpo", []) == []
