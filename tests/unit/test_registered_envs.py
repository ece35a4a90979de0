"""Every registered env keeps the turngym contract and passes Gymnasium's own env checker.

One parametrized test per id of ``turngym.list_envs()`` (the test id is the env id). An env whose
class lists a module in ``requires`` that is not importable here is skipped with that reason; the
class is loaded from the registry's entry point without being instantiated.

Gymnasium's ``check_env`` runs in full (spaces, reset/step return types, seed determinism of reset
and step, ``reset(options=...)``, returned data not reused, every declared render mode, close
twice). Two notes on text spaces:

* ``TextEnv`` declares ``FreeText`` spaces, a ``spaces.Text`` subclass whose ``contains`` accepts
  any string of bounded length. Gymnasium's stock ``Text`` only contains strings over a fixed
  charset (alphanumerics by default), so observations with punctuation, newlines or unicode would
  fail its "observation is in the observation space" checks; with ``FreeText`` those checks apply
  and pass. ``action_space.sample()`` draws printable ASCII, which the checker uses as actions:
  for text envs such samples are almost always invalid actions, so its step-determinism check
  exercises the invalid-action path (still a real determinism check).
* The one warning filtered is "No render fps was declared": the ``ansi``/``human`` render modes of
  a text env print the current observation and have no frame rate to declare.
"""

from __future__ import annotations

import importlib.util
import warnings

import gymnasium
import pytest
from gymnasium.envs.registration import load_env_creator
from gymnasium.utils.env_checker import check_env as gymnasium_check_env

import turngym
from turngym.envs.checker import check_env

ENV_IDS = [info.id for info in turngym.list_envs()]


def missing_requirement(env_id: str) -> str | None:
    """Why ``env_id`` cannot run here (a missing optional module), or None when it can."""
    entry_point = gymnasium.spec(env_id).entry_point
    assert isinstance(entry_point, str), f"{env_id} must be registered with a 'module:Class' string"
    try:
        env_class = load_env_creator(entry_point)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] == "turngym":
            raise  # a broken entry point inside turngym is a bug, not a missing extra
        return f"{env_id}'s module imports {exc.name!r}, which is not installed"
    for module in getattr(env_class, "requires", ()):
        if importlib.util.find_spec(module) is None:
            return f"{env_id} requires {module!r} ({env_class.__name__}.requires), which is not installed"
    return None


@pytest.fixture(params=ENV_IDS, ids=ENV_IDS)
def env_id(request: pytest.FixtureRequest) -> str:
    reason = missing_requirement(request.param)
    if reason is not None:
        pytest.skip(reason)
    return str(request.param)


def test_keeps_the_turngym_contract(env_id: str) -> None:
    check_env(turngym.make(env_id), make_fresh=lambda: turngym.make(env_id))


def test_passes_gymnasiums_env_checker(env_id: str) -> None:
    env = turngym.make(env_id)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*No render fps was declared", category=UserWarning)
        gymnasium_check_env(env)
    env.close()


def test_missing_requirement_is_read_from_the_class_without_building_it() -> None:
    env_id = "testns/NeedsMissing-v0"
    turngym.register(env_id, "tests.unit.foundation.envs_for_tests:NeedsMissingModuleEnv")
    try:
        assert missing_requirement(env_id) == (
            "testns/NeedsMissing-v0 requires 'turngym_absent_dependency' "
            "(NeedsMissingModuleEnv.requires), which is not installed"
        )
        assert missing_requirement("turngym/Maze-v0") is None
    finally:
        turngym.envs.registration._REGISTERED.pop(env_id)
        gymnasium.registry.pop(env_id)


def test_a_broken_turngym_entry_point_is_an_error_not_a_skip() -> None:
    env_id = "testns/Broken-v0"
    turngym.register(env_id, "turngym.envs.no_such_family:Env")
    try:
        with pytest.raises(ModuleNotFoundError, match=r"turngym\.envs\.no_such_family"):
            missing_requirement(env_id)
    finally:
        turngym.envs.registration._REGISTERED.pop(env_id)
        gymnasium.registry.pop(env_id)
