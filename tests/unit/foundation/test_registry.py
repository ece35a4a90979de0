"""The registry: register/make/list, versioned ids, did-you-mean errors, Gymnasium interop."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import gymnasium
import pytest

import turngym
from turngym.envs import registration
from turngym.envs.core import TextEnv
from turngym.envs.toy.maze import MazeEnv
from turngym.errors import ConfigError, RegistryError, UnknownEnvError

COUNTER = "tests.unit.foundation.envs_for_tests:CounterEnv"


@pytest.fixture
def registered() -> Iterator[list[str]]:
    """Ids registered by a test; removed from both registries afterwards."""
    ids: list[str] = []
    yield ids
    for env_id in ids:
        registration._REGISTERED.pop(env_id, None)
        gymnasium.registry.pop(env_id, None)


def test_builtin_envs_are_listed_sorted_with_descriptions() -> None:
    infos = turngym.list_envs()
    ids = [i.id for i in infos]
    assert ids == sorted(ids)
    assert {"turngym/Maze-v0", "turngym/Calculator-v0"} <= set(ids)
    maze = turngym.envs.spec("turngym/Maze-v0")
    assert maze.entry_point == "turngym.envs.toy.maze:MazeEnv"
    assert maze.description.startswith("Find the treasure")


def test_register_make_and_override_defaults(registered: list[str]) -> None:
    turngym.register("testns/Counter-v0", COUNTER, description="count", target=5, max_turns=7)
    registered.append("testns/Counter-v0")
    assert turngym.envs.spec("testns/Counter-v0").description == "count"
    env = turngym.make("testns/Counter-v0")
    assert (env.target, env.max_turns) == (5, 7)
    env = turngym.make("testns/Counter-v0", target=2)
    assert (env.target, env.max_turns) == (2, 7)
    assert "testns/Counter-v0" in [i.id for i in turngym.list_envs()]


def test_make_returns_the_bare_env_and_gymnasium_make_works() -> None:
    env = turngym.make("turngym/Maze-v0", size=4)
    assert type(env) is MazeEnv and env.size == 4
    assert env.spec is not None and env.spec.id == "turngym/Maze-v0"
    gym_env = gymnasium.make("turngym/Maze-v0", size=2)
    assert type(gym_env) is MazeEnv and gym_env.size == 2
    obs, info = gym_env.reset(seed=0, options={"task_id": 1})
    assert obs == env.__class__(size=2).reset(seed=0, options={"task_id": 1})[0]
    assert info["task_id"] == 1


def test_versions_are_separate_envs(registered: list[str]) -> None:
    turngym.register("testns/Counter-v0", COUNTER, target=1)
    turngym.register("testns/Counter-v1", COUNTER, target=2)
    registered += ["testns/Counter-v0", "testns/Counter-v1"]
    assert turngym.make("testns/Counter-v0").target == 1
    assert turngym.make("testns/Counter-v1").target == 2


@pytest.mark.parametrize("bad_id", ["turngym/Maze", "Maze", "turngym/Maze-v", "turngym/-v0", "a/b/Maze-v0"])
def test_unversioned_or_malformed_ids_are_refused(bad_id: str) -> None:
    with pytest.raises(RegistryError, match=r"is not versioned; expected 'namespace/Name-vN'"):
        turngym.register(bad_id, COUNTER)
    assert bad_id not in gymnasium.registry


def test_entry_point_must_name_a_class() -> None:
    with pytest.raises(RegistryError, match=r"must look like 'package.module:ClassName', got 'tests.unit'"):
        turngym.register("testns/Bad-v0", "tests.unit")
    assert "testns/Bad-v0" not in gymnasium.registry


@pytest.mark.parametrize("typo", ["turngym/Maze-v1", "turngym/maze-v0", "turngym/Maez-v0", "Maze-v0"])
def test_unknown_id_suggests_the_closest_match_first(typo: str) -> None:
    with pytest.raises(UnknownEnvError) as caught:
        turngym.make(typo)
    message = str(caught.value)
    assert f"no environment registered as {typo!r}." in message
    assert "Did you mean 'turngym/Maze-v0'" in message
    assert message.endswith("Run `turngym envs` to list them.")


def test_unknown_id_far_from_everything_has_no_suggestion() -> None:
    with pytest.raises(UnknownEnvError) as caught:
        turngym.make("zzz/Qqqqqqqqq-v9")
    assert "Did you mean" not in str(caught.value)


def test_unknown_id_error_is_also_gymnasiums() -> None:
    with pytest.raises(gymnasium.error.NameNotFound):
        turngym.make("turngym/Mase-v0")


def test_make_refuses_an_env_that_is_not_a_text_env(registered: list[str]) -> None:
    turngym.register("testns/Plain-v0", "tests.unit.foundation.envs_for_tests:NotATextEnv")
    registered.append("testns/Plain-v0")
    with pytest.raises(RegistryError, match="built a NotATextEnv, not a turngym TextEnv"):
        turngym.make("testns/Plain-v0")


def test_an_argument_the_env_does_not_take_is_named_with_the_ones_it_takes() -> None:
    with pytest.raises(ConfigError) as err:
        turngym.make("turngym/Maze-v0", colour="red", size=3)
    assert str(err.value) == (
        "turngym/Maze-v0 takes no argument 'colour'; "
        "it takes: max_obs_chars, max_turns, render_mode, size, split, tasks"
    )


class _Passes(MazeEnv):
    def __init__(self, delay: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)


class _Open(TextEnv):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()


def test_accepted_kwargs_follow_the_init_chain_while_it_passes_kwargs_on() -> None:
    assert registration.accepted_kwargs(_Passes) == registration.accepted_kwargs(MazeEnv) | {"delay"}
    assert registration.accepted_kwargs(_Open) == {"max_turns", "max_obs_chars", "render_mode"}
    assert registration.accepted_kwargs(type("Loose", (), {"__init__": lambda self, **kw: None})) is None


def test_env_class_is_loaded_without_building_an_env() -> None:
    assert registration.env_class("turngym/Maze-v0") is MazeEnv


def test_missing_requirements_come_from_the_class(registered: list[str]) -> None:
    turngym.register("testns/NeedsMissing-v0", "tests.unit.foundation.envs_for_tests:NeedsMissingModuleEnv")
    registered.append("testns/NeedsMissing-v0")
    assert registration.missing_requirements("testns/NeedsMissing-v0") == [
        "turngym_absent_dependency",
        "turngym_absent_package.sub",
    ]
    assert registration.missing_requirements("turngym/Maze-v0") == []


def test_a_module_missing_at_import_is_a_missing_requirement(registered: list[str]) -> None:
    turngym.register("testns/ImportsMissing-v0", "tests.unit.foundation.imports_missing:Env")
    registered.append("testns/ImportsMissing-v0")
    assert registration.missing_requirements("testns/ImportsMissing-v0") == ["turngym_absent_dependency"]


def test_a_broken_turngym_entry_point_is_an_error_not_a_missing_extra(registered: list[str]) -> None:
    turngym.register("testns/Broken-v0", "turngym.envs.no_such_family:Env")
    registered.append("testns/Broken-v0")
    with pytest.raises(ModuleNotFoundError, match=r"turngym\.envs\.no_such_family"):
        registration.missing_requirements("testns/Broken-v0")


def test_registering_the_same_env_again_is_a_silent_no_op(registered: list[str]) -> None:
    turngym.register("testns/Counter-v3", COUNTER, description="count", target=4)
    registered.append("testns/Counter-v3")
    turngym.register("testns/Counter-v3", COUNTER, description="count", target=4)  # no warning, no error
    assert turngym.make("testns/Counter-v3").target == 4


@pytest.mark.parametrize(
    ("entry_point", "description", "defaults"),
    [
        ("tests.unit.foundation.envs_for_tests:NondeterministicEnv", "count", {"target": 4}),
        (COUNTER, "another description", {"target": 4}),
        (COUNTER, "count", {"target": 5}),
    ],
)
def test_replacing_a_registered_env_is_refused(
    registered: list[str], entry_point: str, description: str, defaults: dict[str, int]
) -> None:
    turngym.register("testns/Counter-v9", COUNTER, description="count", target=4)
    registered.append("testns/Counter-v9")
    with pytest.raises(RegistryError, match=r"register a new version \(e.g. 'testns/Counter-v10'\)"):
        turngym.register("testns/Counter-v9", entry_point, description=description, **defaults)
    assert turngym.make("testns/Counter-v9").target == 4
    assert type(turngym.make("testns/Counter-v9")).__name__ == "CounterEnv"


def test_a_plugin_cannot_replace_a_builtin_env() -> None:
    with pytest.raises(RegistryError, match="'turngym/Maze-v0' is already registered"):
        turngym.register("turngym/Maze-v0", COUNTER)
    assert type(turngym.make("turngym/Maze-v0")) is MazeEnv


def test_gymnasium_make_imports_turngym_through_the_module_prefix() -> None:
    script = (
        "import sys, gymnasium\n"
        "assert 'turngym' not in sys.modules\n"
        "env = gymnasium.make('turngym:turngym/Maze-v0', size=2)\n"
        "print(type(env).__name__, env.size)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "MazeEnv 2"
