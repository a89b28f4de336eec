"""Scales, frozen-dataclass configs, their declared ranges, `--set key=value` overrides and config hashes.

A figure declares one frozen dataclass and an instance per scale. Every numeric field declares its valid
range where it is declared, through its annotation:

    seeds: Count = 3                                  # an integer >= 1
    lrs: tuple[Positive, ...] = (0.1, 0.2)            # each element > 0
    beta: Annotated[float, Range(0, 1, high_open=True)] = 0.9
    optimizer: Annotated[str, OneOf("adam", "sgd")] = "adam"

`validate_config` checks every field (nested dataclasses too) against its declaration and then calls the
config's own `validate()` for rules between fields, if it has one; `apply_overrides` runs it after the
`--set` values are parsed, so a bad value is one `ConfigError` line before anything runs. Overrides must
name an existing field and keep its type.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any


class Scale(StrEnum):
    """quick: tests, about a minute per paper; default: `make figures`; paper: GPUs and clusters."""

    QUICK = "quick"
    DEFAULT = "default"
    PAPER = "paper"


class ConfigError(ValueError):
    """A user-facing configuration mistake (unknown key, wrong type); the CLI maps it to exit code 2."""


@dataclass(frozen=True)
class Range:
    """The valid interval of a numeric field: [low, high], either end open or absent."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True

    def describe(self, kind: type) -> str:
        noun = "an integer" if kind is int else "a number"
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{noun} in {left}{_num(self.low)}, {_num(self.high)}{right}"
        if self.low is not None:
            return f"{noun} {'>' if self.low_open else '>='} {_num(self.low)}"
        if self.high is not None:
            return f"{noun} {'<' if self.high_open else '<='} {_num(self.high)}"
        return f"{noun} (any finite value)"


@dataclass(frozen=True)
class OneOf:
    """The valid values of a string (or other discrete) field."""

    values: tuple[Any, ...]

    def __init__(self, *values: Any) -> None:
        object.__setattr__(self, "values", tuple(values))

    def contains(self, value: Any) -> bool:
        return value in self.values

    def describe(self, kind: type) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


# The ranges most fields need. Count: how many of something (seeds, steps, sizes, widths, dimensions,
# batch sizes); Index: a seed, an offset or an optional count that may be 0; Positive: learning rates,
# temperatures, scales; Fraction: shares and probabilities in [0, 1].
Count = Annotated[int, Range(1)]
Index = Annotated[int, Range(0)]
Positive = Annotated[float, Range(0, low_open=True)]
NonNegative = Annotated[float, Range(0)]
Fraction = Annotated[float, Range(0, 1)]
OpenFraction = Annotated[float, Range(0, 1, low_open=True, high_open=True)]
AnyFloat = Annotated[float, Range()]  # finite, either sign (e.g. a signed offset)
AnyInt = Annotated[int, Range()]


def _strip_annotated(hint: Any) -> tuple[Any, Any]:
    """(the bare type, its Range/OneOf declaration or None)."""
    if typing.get_origin(hint) is Annotated:
        base, *extras = typing.get_args(hint)
        for extra in extras:
            if isinstance(extra, Range | OneOf):
                return base, extra
        return base, None
    return hint, None


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _field_hints(config_type: type) -> dict[str, Any]:
    return typing.get_type_hints(config_type, include_extras=True)


def _value_problem(hint: Any, value: Any) -> str | None:
    """Why `value` does not fit the declared `hint`, or None when it does."""
    if value is None:
        return None if _is_union(hint) and type(None) in typing.get_args(hint) else "must not be None"
    if _is_union(hint):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        problems = [_value_problem(a, value) for a in options]
        return None if any(p is None for p in problems) else problems[0]
    base, declared = _strip_annotated(hint)
    if typing.get_origin(base) is tuple:
        args = [a for a in typing.get_args(base) if a is not Ellipsis]
        for i, item in enumerate(value):
            element = args[0] if len(args) == 1 else args[min(i, len(args) - 1)]
            problem = _value_problem(element, item)
            if problem is not None:
                return f"element {i} ({item!r}) {problem}"
        return None
    if declared is None:
        return None
    if isinstance(value, bool):
        return None
    if not declared.contains(value):
        kind = int if base is int else float if base is float else type(value)
        return f"is out of range: expected {declared.describe(kind)}"
    return None


def validate_config(config: Any, prefix: str = "") -> Any:
    """Raise `ConfigError` naming the first field whose value is outside its declared range (nested
    dataclass fields are checked too, their names dotted), then run the config's own `validate()`."""
    hints = _field_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            validate_config(value, prefix=f"{prefix}{f.name}.")
            continue
        problem = _value_problem(hints.get(f.name, Any), value)
        if problem is not None:
            raise ConfigError(f"config key {prefix + f.name!r} = {value!r} {problem}")
    own = getattr(config, "validate", None)
    if callable(own):
        try:
            own()
        except ConfigError:
            raise
        except ValueError as err:
            raise ConfigError(f"{type(config).__name__}: {err}") from None
    return config


def undeclared_numeric_fields(config_type: type, prefix: str = "") -> list[str]:
    """Names of int/float fields (or tuples of them) of a config dataclass that declare no range; a test
    asserts this is empty for every figure's config."""
    missing = []
    for name, hint in _field_hints(config_type).items():
        options = [a for a in typing.get_args(hint) if a is not type(None)] if _is_union(hint) else [hint]
        for option in options:
            base, declared = _strip_annotated(option)
            if dataclasses.is_dataclass(base):
                missing += undeclared_numeric_fields(base, prefix=f"{prefix}{name}.")
            elif typing.get_origin(base) is tuple:
                for element in typing.get_args(base):
                    ebase, edeclared = _strip_annotated(element)
                    if ebase in (int, float) and edeclared is None:
                        missing.append(f"{prefix}{name}")
            elif base in (int, float) and declared is None:
                missing.append(f"{prefix}{name}")
    return sorted(set(missing))


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
    hints = _field_hints(type(config))
    changes: dict[str, Any] = {}
    for key, raw in pairs:
        if key not in fields:
            raise ConfigError(
                f"unknown config key {key!r} for {type(config).__name__}; "
                f"valid keys: {', '.join(sorted(fields))}"
            )
        current = getattr(config, key)
        changes[key] = _parse_value(key, raw, hints.get(key, type(current)), current)
        problem = _value_problem(hints.get(key, Any), changes[key])
        if problem is not None:  # before the config's own __post_init__ computes with the value
            raise ConfigError(f"config key {key!r} = {changes[key]!r} {problem}")
    try:
        replaced = dataclasses.replace(config, **changes)
    except ConfigError:
        raise
    except (ValueError, TypeError) as err:  # a config's own __post_init__ rejected the value
        raise ConfigError(f"{type(config).__name__}: {err}") from None
    return validate_config(replaced)


def _parse_value(key: str, raw: str, hint: Any, current: Any) -> Any:
    hint = _strip_annotated(hint)[0]
    origin = typing.get_origin(hint)
    if origin is tuple:
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        element = _strip_annotated(args[0])[0] if args else str
        parts = [p for p in raw.replace("(", "").replace(")", "").split(",") if p.strip()]
        return tuple(_parse_scalar(key, p.strip(), element) for p in parts)
    if _is_union(hint):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if raw.lower() == "none":
            return None
        return _parse_value(key, raw, args[0], current) if args else raw
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
