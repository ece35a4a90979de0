"""The one exception tree of turngym.

Every error the library raises on purpose is a :class:`TurngymError`, so callers can catch at the
level they mean::

    TurngymError
    ├── RegistryError            an id that cannot be registered or found
    │   └── UnknownEnvError      unknown id; the message suggests close matches
    ├── EnvError                 an environment used against its contract
    │   ├── ResetNeeded          step() before reset(), or after the episode ended
    │   └── ContractViolation    check_env found a broken contract
    ├── ToolError                the tool layer
    │   ├── ToolNotFound         no tool of that name (HTTP 404)
    │   ├── ToolArgumentError    arguments fail the tool's schema (HTTP 422)
    │   └── ToolServerError      the tool server failed or could not be reached
    ├── SandboxError             a sandbox backend could not run the code at all
    │   ├── SandboxRequestError  a run request with a bad field (HTTP 422)
    │   └── SandboxBusy          every sandbox slot is taken (HTTP 429)
    ├── PolicyError              a policy backend failed to generate
    ├── TrainerError             the trainer got data it cannot train on
    │   └── CheckpointError      a checkpoint is missing, corrupt or does not match the run
    ├── ViewerError              turngym view was given a path with nothing to show
    └── ConfigError              an impossible or malformed configuration
        └── CatalogError         a WebShop product or goal file is malformed

Messages say what was expected, what was given, and how to fix it.
"""

from __future__ import annotations

import gymnasium


class TurngymError(Exception):
    """Base class of every error turngym raises on purpose."""


class RegistryError(TurngymError):
    """An environment id cannot be registered or resolved."""


class UnknownEnvError(RegistryError, gymnasium.error.NameNotFound):
    """No environment is registered under the requested id."""


class EnvError(TurngymError):
    """An environment was used against its contract."""


class ResetNeeded(EnvError, gymnasium.error.ResetNeeded):
    """``step`` was called before ``reset`` or after the episode ended."""


class ContractViolation(EnvError):
    """``check_env`` found that an environment breaks the contract of DESIGN.md."""


class ToolError(TurngymError):
    """The tool layer failed."""


class ToolNotFound(ToolError):
    """No tool is registered under the requested name."""


class ToolArgumentError(ToolError):
    """The arguments of a tool call do not match the tool's schema."""


class ToolServerError(ToolError):
    """A tool server answered with an error or could not be reached."""


class SandboxError(TurngymError):
    """A sandbox backend could not run the code at all (not: the code itself failed)."""


class SandboxRequestError(SandboxError):
    """A run request has a malformed or out-of-range field (unknown language, bad path, ...)."""


class SandboxBusy(SandboxError):
    """Every sandbox slot is taken and the request may not wait."""


class PolicyError(TurngymError):
    """A policy backend failed to generate."""


class TrainerError(TurngymError):
    """The trainer got data it cannot train on (malformed groups, missing tokens)."""


class CheckpointError(TrainerError):
    """A checkpoint is missing, corrupt or was written by a run with another configuration."""


class ConfigError(TurngymError):
    """A configuration is malformed or asks for an impossible combination."""


class CatalogError(ConfigError):
    """A WebShop data file (products, instructions) is missing or malformed."""


class ViewerError(TurngymError):
    """``turngym view`` was pointed at a path that holds no trajectories or metrics to show."""
