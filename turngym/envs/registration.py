"""Environment registry on top of Gymnasium's.

``register("turngym/Maze-v0", "turngym.envs.toy.maze:MazeEnv", description=..., **defaults)``
adds a Gymnasium ``EnvSpec`` (so ``gymnasium.make("turngym/Maze-v0")`` works too) and remembers the
id and its one-line description for ``list_envs``. Registering an id again with the same entry
point, description and defaults does nothing; with anything different it is refused (a plugin
cannot silently replace another package's env: it registers a new version or its own namespace).
``make(id, **kwargs)`` returns the bare :class:`~turngym.envs.core.TextEnv` (no Gymnasium
wrappers: the base class already enforces reset-before-step and the turn limit), with ``kwargs``
overriding the registered defaults.

Third-party packages register through the entry-point group ``turngym.envs``: each entry names a
function that calls ``register`` for the package's envs, e.g. in its ``pyproject.toml``::

    [project.entry-points."turngym.envs"]
    mypkg = "mypkg.envs:register_envs"

The entry points are loaded once, lazily, the first time an id is looked up or listed.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import importlib.util
import inspect
import re
import warnings
from dataclasses import dataclass
from typing import Any

import gymnasium
from gymnasium.envs.registration import load_env_creator

from turngym.envs.core import TextEnv
from turngym.errors import ConfigError, RegistryError, UnknownEnvError

ENTRY_POINT_GROUP = "turngym.envs"
_ID_RE = re.compile(r"^(?:[\w.-]+/)?[A-Za-z][\w.:-]*-v\d+$")


@dataclass(frozen=True)
class EnvInfo:
    """One row of ``list_envs``."""

    id: str
    description: str
    entry_point: str
    extra: str = ""
    """The pip extra of turngym that installs the env's optional modules (``""``: none needed)."""


_REGISTERED: dict[str, EnvInfo] = {}
_plugins_loaded = False


def register(id: str, entry_point: str, *, description: str = "", extra: str = "", **defaults: Any) -> None:
    """Register an environment class under a versioned id (``namespace/Name-vN``).

    ``entry_point`` is ``"package.module:ClassName"``; ``defaults`` become constructor keyword
    arguments that ``make(id, **kwargs)`` can override; ``extra`` names the pip extra that installs
    the modules in the class's ``requires`` (used in the error when they are missing).
    """
    if not _ID_RE.match(id):
        raise RegistryError(
            f"environment id {id!r} is not versioned; expected 'namespace/Name-vN', e.g. 'turngym/Maze-v0'"
        )
    if ":" not in entry_point:
        raise RegistryError(f"entry_point must look like 'package.module:ClassName', got {entry_point!r}")
    if id in _REGISTERED:
        unchanged = _REGISTERED[id] == EnvInfo(id, description, entry_point, extra)
        if unchanged and gymnasium.spec(id).kwargs == defaults:
            return  # registering the same env again (e.g. a plugin loaded twice) is a no-op
        raise RegistryError(
            f"{id!r} is already registered (entry point {_REGISTERED[id].entry_point!r}); "
            f"register a new version (e.g. '{id.rsplit('-v', 1)[0]}-v{int(id.rsplit('-v', 1)[1]) + 1}') "
            "or use your own namespace"
        )
    gymnasium.register(
        id=id,
        entry_point=entry_point,
        kwargs=defaults,
        order_enforce=False,
        disable_env_checker=True,
    )
    _REGISTERED[id] = EnvInfo(id=id, description=description, entry_point=entry_point, extra=extra)


def load_plugins() -> None:
    """Call every ``turngym.envs`` entry point once (idempotent)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry.load()()
        except Exception as exc:  # a broken plugin must not break every other env
            warnings.warn(
                f"turngym plugin {entry.name!r} ({entry.value}) failed to register its envs: {exc!r}",
                RuntimeWarning,
                stacklevel=2,
            )


def list_envs() -> list[EnvInfo]:
    """All environments registered through turngym (built-in and plugins), sorted by id."""
    load_plugins()
    return [_REGISTERED[k] for k in sorted(_REGISTERED)]


def spec(id: str) -> EnvInfo:
    """The registry entry of ``id``; raises :class:`UnknownEnvError` with close matches."""
    load_plugins()
    if id in _REGISTERED:
        return _REGISTERED[id]
    close = difflib.get_close_matches(id, list(_REGISTERED), n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownEnvError(f"no environment registered as {id!r}.{hint} Run `turngym envs` to list them.")


def env_class(id: str) -> type:
    """The class registered as ``id``, imported but not instantiated (e.g. to read ``requires``)."""
    spec(id)
    entry_point = gymnasium.spec(id).entry_point
    if not isinstance(entry_point, str):
        raise RegistryError(f"{id!r} was registered with a callable; register a 'package.module:ClassName'")
    return load_env_creator(entry_point)


def missing_requirements(id: str) -> list[str]:
    """Modules that ``id`` needs and this Python cannot import (empty when it can run here).

    These are the modules in the class's ``requires`` that are not installed, or the missing module
    that the env's own module imports at its top. A missing ``turngym`` module is a broken entry
    point, not a missing extra, and raises.
    """
    try:
        cls = env_class(id)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] == "turngym":
            raise
        return [exc.name]
    return [m for m in getattr(cls, "requires", ()) if not _importable(m)]


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a dotted name whose parent package is missing
        return False


def accepted_kwargs(cls: type) -> set[str] | None:
    """Keyword arguments ``cls(...)`` takes: its ``__init__``'s named parameters and, while an
    ``__init__`` passes ``**kwargs`` on, those of the next one up the MRO. ``None`` when the chain
    ends in a ``**kwargs`` that nothing names (anything may be accepted)."""
    names: set[str] = set()
    passed_on = False
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        if klass is object:  # takes nothing: a **kwargs that got this far was swallowed on the way
            return None if passed_on else names
        params = list(inspect.signature(init).parameters.values())[1:]  # without self
        names |= {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        passed_on = any(p.kind is p.VAR_KEYWORD for p in params)
        if not passed_on:
            return names
    return None


def make(id: str, **kwargs: Any) -> TextEnv:
    """Build the environment registered as ``id``; ``kwargs`` override the registered defaults.

    An env whose optional modules are not installed is refused with the install command; a keyword
    its class does not take is refused (:class:`~turngym.errors.ConfigError`) with the ones it takes.
    """
    spec(id)
    missing = missing_requirements(id)
    if missing:
        extra = _REGISTERED[id].extra
        how = f'pip install -e ".[{extra}]"' if extra else f"pip install {' '.join(missing)}"
        raise RegistryError(f"{id} needs the module(s) {', '.join(missing)}, which are not installed: {how}")
    entry_point = gymnasium.spec(id).entry_point
    accepted = accepted_kwargs(load_env_creator(entry_point)) if isinstance(entry_point, str) else None
    unknown = sorted(set(kwargs) - accepted) if accepted is not None else []
    if unknown:
        raise ConfigError(
            f"{id} takes no argument {', '.join(map(repr, unknown))}; it takes: {', '.join(sorted(accepted))}"
        )
    env = gymnasium.make(id, disable_env_checker=True, **kwargs)
    if not isinstance(env, TextEnv):
        raise RegistryError(
            f"{id!r} built a {type(env).__name__}, not a turngym TextEnv; subclass turngym.envs.TextEnv"
        )
    return env
