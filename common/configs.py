"""Scales, frozen-dataclass configs, `--set key=value` overrides and config hashes.

A figure declares one frozen dataclass and an instance per scale. Overrides must name an existing field and
keep its type; anything else is a `ConfigError` whose message lists the valid keys.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from enum import StrEnum
from typing import Any


class Scale(StrEnum):
    """quick: tests, about a minute per paper; default: `make figures`; paper: GPUs and clusters."""

    QUICK = "quick"
    DEFAULT = "default"
    PAPER = "paper"


class ConfigError(ValueError):
    """A user-facing configuration mistake (unknown key, wrong type); the CLI maps it to exit code 2."""


def parse_scale(name: str) -> Scale:
    try:
        return Scale(name)
    except ValueError:
        valid = ", ".join(s.value for s in Scale)
        raise ConfigError(f"unknown scale {name!r}; valid scales: {valid}") from None


def config_to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as a plain JSON-able dict (tuples become lists)."""
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"configs must be dataclass instances, got {type(config).__name__}")
    return json.loads(json.dumps(dataclasses.asdict(config)))


def config_hash(config: Any, extra: dict[str, Any] | None = None) -> str:
    """A short stable hash of the config (and of `extra`, e.g. the device), used to skip completed runs."""
    payload = {"type": type(config).__qualname__, "fields": config_to_dict(config), "extra": extra or {}}
    blob = json.dumps(payload, sort_keys=True).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def apply_overrides(config: Any, overrides: list[str] | dict[str, str]) -> Any:
    """Return a copy of `config` with `key=value` overrides applied, each parsed to the field's type.

    >>> apply_overrides(cfg, ["steps=200", "lrs=0.1,0.2"])  # doctest: +SKIP
    """
    if isinstance(overrides, dict):
        pairs = list(overrides.items())
    else:
        pairs = []
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override {item!r} must look like key=value")
            key, value = item.split("=", 1)
            pairs.append((key.strip(), value.strip()))
    fields = {f.name: f for f in dataclasses.fields(config)}
    hints = typing.get_type_hints(type(config))
    changes: dict[str, Any] = {}
    for key, raw in pairs:
        if key not in fields:
            raise ConfigError(
                f"unknown config key {key!r} for {type(config).__name__}; "
                f"valid keys: {', '.join(sorted(fields))}"
            )
        current = getattr(config, key)
        changes[key] = _parse_value(key, raw, hints.get(key, type(current)), current)
    return dataclasses.replace(config, **changes)


def _parse_value(key: str, raw: str, hint: Any, current: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin is tuple:
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        element = args[0] if args else str
        parts = [p for p in raw.replace("(", "").replace(")", "").split(",") if p.strip()]
        return tuple(_parse_scalar(key, p.strip(), element) for p in parts)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if raw.lower() == "none":
            return None
        return _parse_scalar(key, raw, args[0] if args else str)
    if isinstance(current, tuple):
        return tuple(
            _parse_scalar(key, p.strip(), type(current[0]) if current else str) for p in raw.split(",")
        )
    return _parse_scalar(key, raw, hint)


def _parse_scalar(key: str, raw: str, kind: Any) -> Any:
    try:
        if kind is bool:
            lowered = raw.lower()
            if lowered in ("true", "1", "yes"):
                return True
            if lowered in ("false", "0", "no"):
                return False
            raise ValueError(raw)
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if kind is str:
            return raw
    except ValueError:
        raise ConfigError(f"config key {key!r} expects {kind.__name__}, got {raw!r}") from None
    raise ConfigError(f"config key {key!r} has a type ({kind}) that cannot be set from the command line")
