"""``check_env`` passes a correct env and names the broken promise of each deliberately broken one."""

from __future__ import annotations

import pytest

from tests.unit.foundation import envs_for_tests as envs
from turngym.envs.checker import check_env
from turngym.envs.core import TextEnv
from turngym.errors import ContractViolation


def test_correct_env_passes_and_is_closed_after() -> None:
    env = envs.CounterEnv()
    check_env(env, make_fresh=envs.CounterEnv)
    assert env._closed


def test_correct_env_passes_without_a_fresh_instance() -> None:
    check_env(envs.CounterEnv(), task_id=3, seed=5)


@pytest.mark.parametrize(
    ("env_class", "message"),
    [
        (envs.NondeterministicEnv, r"must give the same results \(the same instance, after 0 steps\)"),
        (envs.NondeterministicAnchorEnv, r"same seed, task and actions must give the same results"),
        (envs.MissingInfoKeyEnv, r"reset\(\) info must hold .* missing \['anchor'\]"),
        (envs.RaisesOnBadActionEnv, r"never an exception; step\('#@!~.* raised ValueError"),
        (envs.SilentInvalidEnv, r"must set info\['invalid_action'\] = True"),
        (envs.IntRewardEnv, r"reward must be a float; got int"),
        (envs.StringWonEnv, r"info\['won'\] must be a bool; got str"),
        (envs.UnhashableAnchorEnv, r"info\['anchor'\] must be hashable; got list"),
        (envs.IntMetricsEnv, r"info\['metrics'\] must map str to float"),
        (envs.StepBeforeResetEnv, r"step\(\) before reset\(\) must raise ResetNeeded; it returned normally"),
        (envs.StepAfterEndEnv, r"step\(\) after the episode ended must raise ResetNeeded"),
    ],
)
def test_broken_env_is_caught(env_class: type[TextEnv], message: str) -> None:
    with pytest.raises(ContractViolation, match=message):
        check_env(env_class(), make_fresh=env_class)


def test_nondeterminism_across_instances_only_is_caught() -> None:
    """An env whose instances differ (state kept at class level) is caught through ``make_fresh``."""
    created: list[int] = []

    class PerInstanceEnv(envs.CounterEnv):
        def __init__(self) -> None:
            super().__init__()
            created.append(1)
            self.offset = len(created)

        def _reset(self, task_id: object) -> str:
            return super()._reset(task_id) + f" (instance {self.offset})"

    check_env(PerInstanceEnv())  # one instance alone is consistent with itself
    with pytest.raises(ContractViolation, match=r"\(a fresh instance, after 0 steps\)"):
        check_env(PerInstanceEnv(), make_fresh=PerInstanceEnv)


def test_step_before_reset_is_checked_on_the_fresh_instance_too() -> None:
    env = envs.CounterEnv()
    env.reset(seed=0)
    with pytest.raises(ContractViolation, match=r"step\(\) before reset\(\) must raise ResetNeeded"):
        check_env(env, make_fresh=envs.StepBeforeResetEnv)


def test_not_a_text_env_is_refused() -> None:
    with pytest.raises(ContractViolation, match="must be a turngym TextEnv; got NotATextEnv"):
        check_env(envs.NotATextEnv())  # type: ignore[arg-type]  # deliberately the wrong type


def test_close_twice_failure_is_a_contract_violation() -> None:
    with pytest.raises(ContractViolation, match=r"close\(\) must be safe to call twice; .*already closed"):
        check_env(envs.CloseTwiceFailsEnv())
