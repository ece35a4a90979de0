"""Every registered env keeps the turngym contract and passes Gymnasium's own env checker.

One parametrized test per id of ``turngym.list_envs()`` (the test id is the env id). An env that
needs a module this Python cannot import (a module in its class's ``requires``, read from the
registry's entry point without building the env) is skipped with that reason. An env whose class
declares ``requires`` (an external package or engine, e.g. TextWorld) is checked under the
``integration`` marker, so the default run stays fast and the full run (``-m ""``) checks it.

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

import warnings

import pytest
from gymnasium.utils.env_checker import check_env as gymnasium_check_env

import turngym
from turngym.envs.checker import check_env
from turngym.envs.registration import env_class, missing_requirements

ENV_IDS = [info.id for info in turngym.list_envs()]


def needs_external_packages(env_id: str) -> bool:
    try:
        return bool(getattr(env_class(env_id), "requires", ()))
    except ImportError:  # its module cannot even be imported here; the fixture skips it
        return True


PARAMS = [
    pytest.param(e, id=e, marks=[pytest.mark.integration] if needs_external_packages(e) else [])
    for e in ENV_IDS
]


@pytest.fixture(params=PARAMS)
def env_id(request: pytest.FixtureRequest) -> str:
    missing = missing_requirements(request.param)
    if missing:
        pytest.skip(f"{request.param} needs {', '.join(missing)}, which this Python cannot import")
    return str(request.param)


def test_keeps_the_turngym_contract(env_id: str) -> None:
    check_env(turngym.make(env_id), make_fresh=lambda: turngym.make(env_id))


def test_passes_gymnasiums_env_checker(env_id: str) -> None:
    env = turngym.make(env_id)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*No render fps was declared", category=UserWarning)
        gymnasium_check_env(env)
    env.close()
