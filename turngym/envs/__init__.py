"""Environments: the TextEnv contract, the registry, the checker and the env families."""

from turngym.envs.builtin import register_builtin_envs
from turngym.envs.core import StepOutcome, TextEnv
from turngym.envs.registration import EnvInfo, list_envs, load_plugins, make, register, spec

register_builtin_envs()

__all__ = [
    "EnvInfo",
    "StepOutcome",
    "TextEnv",
    "list_envs",
    "load_plugins",
    "make",
    "register",
    "spec",
]
