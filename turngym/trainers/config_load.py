"""Loading a :class:`~turngym.trainers.config.TrainConfig`: the defaults, then a YAML file, then
command-line overrides (``--set section.field=value``, values parsed as YAML), built into the
dataclasses with type checks (an unknown key is an error with a did-you-mean), then validated.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from turngym.errors import ConfigError
from turngym.trainers.config import TrainConfig


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'the config'} must be a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {names}"
            raise ConfigError(f"unknown config key {where + key!r}{hint}")
        kind = hints[key]
        if dataclasses.is_dataclass(kind):
            kwargs[key] = _build(kind, value, f"{where}{key}.")
        else:
            kwargs[key] = _coerce(value, kind, where + key)
    return cls(**kwargs)


def _coerce(value: Any, kind: Any, name: str) -> Any:
    simple = {int: int, float: float, bool: bool, str: str}
    if kind in simple:
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if kind is float and isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            article = "an" if kind is int else "a"
            raise ConfigError(f"{name} must be {article} {kind.__name__}, got {value!r}")
        return value
    optional = {float | None: float, bool | None: bool, int | None: int}
    if kind in optional:
        return None if value is None else _coerce(value, optional[kind], name)
    if isinstance(value, dict) or value is None:
        return dict(value or {})
    raise ConfigError(f"{name} must be a mapping, got {value!r}")


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """A :class:`TrainConfig` from nested plain data (unknown keys are errors with suggestions)."""
    return _build(TrainConfig, data, "")


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.field=value`` overrides (values parsed as YAML) to nested plain data."""
    out = json.loads(json.dumps(data))
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(
                f"override {item!r} must look like section.field=value, e.g. rollout.group_size=4"
            )
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[parts[-1]] = yaml.safe_load(raw)
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Defaults, then the YAML file at ``path`` (if any), then ``overrides``; validated."""
    data = dataclasses.asdict(TrainConfig())
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {str(p)!r} does not exist; pass a YAML file (see examples/)")
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {str(p)!r} is not valid YAML: {exc}") from None
        _merge(data, config_dict_checked(loaded))
    data = apply_overrides(data, overrides or [])
    return config_from_dict(data).validate()


def config_dict_checked(loaded: Any) -> dict[str, Any]:
    if not isinstance(loaded, dict):
        raise ConfigError(f"a config file must hold a mapping at the top level, got {type(loaded).__name__}")
    config_from_dict(_merged_defaults(loaded))  # raises on unknown keys / wrong types
    return loaded


def _merged_defaults(loaded: dict[str, Any]) -> dict[str, Any]:
    data = dataclasses.asdict(TrainConfig())
    _merge(data, loaded)
    return data


def _merge(base: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict) and key not in ("kwargs", "params"):
            _merge(base[key], value)
        else:
            base[key] = value
