"""Declared config ranges: every figure's numeric fields declare one, every scale's config satisfies it, and a
negative count is one ConfigError line before anything runs; plus unit tests of `common.configs`' Range,
OneOf, validate_config and apply_overrides on small local dataclasses. Nothing here calls run()."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any

import pytest

from common import cli, registry
from common.configs import (
    AnyFloat,
    ConfigError,
    Count,
    Fraction,
    Index,
    OneOf,
    OpenFraction,
    Positive,
    Range,
    apply_overrides,
    undeclared_numeric_fields,
    validate_config,
)


# --------------------------------------------------------------------------------------------------------
# Every figure of every implemented paper
# --------------------------------------------------------------------------------------------------------
def _figures() -> list[tuple[str, Any]]:
    return [(p.key, fig) for p in registry.papers(include_planned=False) for fig in p.figures()]


FIGURES = _figures()


def _without_none(hint: Any) -> Any:
    """`X | None` -> X (the optional fields' declaration is X's)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return options[0] if len(options) == 1 else hint
    return hint


def _int_declaration(hint: Any) -> tuple[bool, Range | None] | None:
    """(is a tuple, its Range) for an int or tuple-of-int field, None for any other field."""
    hint = _without_none(hint)
    is_tuple = False
    if typing.get_origin(hint) is tuple:
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        if len(args) != 1:
            return None
        hint, is_tuple = args[0], True
    if typing.get_origin(hint) is Annotated:
        base, *extras = typing.get_args(hint)
        declared = next((e for e in extras if isinstance(e, Range)), None)
    else:
        base, declared = hint, None
    return (is_tuple, declared) if base is int else None


def count_like_fields(config_type: type) -> list[str]:
    """Top-level int and int-tuple fields whose declared range excludes -1."""
    hints = typing.get_type_hints(config_type, include_extras=True)
    names = []
    for f in dataclasses.fields(config_type):
        found = _int_declaration(hints[f.name])
        if found is not None and found[1] is not None and not found[1].contains(-1):
            names.append(f.name)
    return names


SCALE_CASES = [
    pytest.param(fig, scale, id=f"{paper}/{fig.name}/{scale.value}")
    for paper, fig in FIGURES
    for scale in fig.configs
]
FIGURE_CASES = [pytest.param(fig, id=f"{paper}/{fig.name}") for paper, fig in FIGURES]
NEGATIVE_CASES = [
    pytest.param(fig, scale, name, id=f"{paper}/{fig.name}/{scale.value}/{name}")
    for paper, fig in FIGURES
    for scale in fig.configs
    for name in count_like_fields(type(fig.configs[scale]))
]


def test_every_implemented_paper_has_figures():
    assert {p for p, _ in FIGURES} == {p.key for p in registry.papers(include_planned=False)}
    assert all(len(fig.configs) >= 1 for _, fig in FIGURES)


@pytest.mark.parametrize(("fig", "scale"), SCALE_CASES)
def test_every_scale_config_validates(fig, scale):
    config = fig.configs[scale]
    assert validate_config(config) is config
    assert fig.config_for(scale) == config  # the runner's path: no override changes nothing


@pytest.mark.parametrize("fig", FIGURE_CASES)
def test_every_numeric_field_declares_its_range(fig):
    for config in fig.configs.values():
        assert undeclared_numeric_fields(type(config)) == []


@pytest.mark.parametrize("fig", FIGURE_CASES)
def test_every_figure_has_count_like_fields(fig):
    for config in fig.configs.values():
        assert count_like_fields(type(config)), f"{fig.name}: no int field declares a range excluding -1"


@pytest.mark.parametrize(("fig", "scale", "name"), NEGATIVE_CASES)
def test_negative_counts_are_config_errors(fig, scale, name):
    with pytest.raises(ConfigError, match=name):
        fig.config_for(scale, overrides=[f"{name}=-1"])


@pytest.mark.parametrize("fig", FIGURE_CASES)
def test_figures_declare_their_threads(fig):
    assert fig.threads is None or (isinstance(fig.threads, int) and fig.threads >= 1)


def test_cli_rejects_negative_seeds_in_one_line(capsys, tmp_path):
    argv = ["reproduce", "momentum", "--figure", "fig_svag", "--set", "seeds=-1", "--out", str(tmp_path)]
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert "'seeds'" in lines[0] and "-1" in lines[0] and "an integer >= 1" in lines[0], lines[0]
    assert captured.out == ""
    assert not any(tmp_path.iterdir())  # nothing ran


# --------------------------------------------------------------------------------------------------------
# Range, OneOf, validate_config, apply_overrides on local dataclasses
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Inner:
    width: Count = 4
    scale: Positive = 1.0


@dataclass(frozen=True)
class Local:
    steps: Count = 10
    seed: Index = 0
    lr: Positive = 0.1
    beta: Annotated[float, Range(0, 1, high_open=True)] = 0.9
    share: Fraction = 0.5
    mask: OpenFraction = 0.3
    offset: AnyFloat = -2.5
    lrs: tuple[Positive, ...] = (0.1, 0.2)
    sizes: tuple[Count, ...] = (1, 2)
    cap: Count | None = None
    optimizer: Annotated[str, OneOf("adam", "sgd")] = "adam"
    flag: bool = True
    name: str = "x"
    inner: Inner = Inner()

    def validate(self) -> None:
        if self.seed >= self.steps:
            raise ValueError(f"seed ({self.seed}) must be < steps ({self.steps})")


@dataclass(frozen=True)
class Undeclared:
    a: int = 1
    b: float = 1.0
    c: tuple[int, ...] = ()
    d: Count = 1
    e: bool = True
    f: str = ""
    g: int | None = None
    inner: Inner = Inner()


@dataclass(frozen=True)
class UndeclaredNested:
    inner: Undeclared = Undeclared()


def test_range_contains_respects_open_and_closed_ends():
    closed, half = Range(0, 1), Range(0, 1, high_open=True)
    assert closed.contains(0) and closed.contains(1) and closed.contains(0.5)
    assert half.contains(0) and not half.contains(1)
    assert not Range(0, low_open=True).contains(0) and Range(0, low_open=True).contains(1e-12)
    assert not closed.contains(-1e-9) and not closed.contains(1.0 + 1e-9)
    assert Range().contains(-1e300) and Range(high=3).contains(-5) and not Range(high=3).contains(4)
    for bad in (math.nan, math.inf, -math.inf):
        assert not Range().contains(bad)


def test_range_and_oneof_describe_themselves():
    assert Range(1).describe(int) == "an integer >= 1"
    assert Range(0, low_open=True).describe(float) == "a number > 0"
    assert Range(0, 1, high_open=True).describe(float) == "a number in [0, 1)"
    assert Range(0, 1, low_open=True, high_open=True).describe(float) == "a number in (0, 1)"
    assert Range(high=2.5).describe(float) == "a number <= 2.5"
    assert Range().describe(float) == "a number (any finite value)"
    assert OneOf("adam", "sgd").describe(str) == "one of 'adam', 'sgd'"
    assert OneOf("adam", "sgd").contains("sgd") and not OneOf("adam", "sgd").contains("adamw")


def test_validate_config_accepts_the_defaults_and_bools_and_free_strings():
    config = Local()
    assert validate_config(config) is config
    assert validate_config(Local(flag=False, name="anything")).flag is False
    assert validate_config(Local(cap=None)).cap is None
    assert validate_config(Local(cap=3)).cap == 3


BAD_VALUES = [
    ({"steps": 0}, ["'steps'", "= 0", "an integer >= 1"]),
    ({"seed": -1}, ["'seed'", "= -1", "an integer >= 0"]),
    ({"lr": 0.0}, ["'lr'", "= 0.0", "a number > 0"]),
    ({"lr": math.nan}, ["'lr'", "nan", "a number > 0"]),
    ({"beta": 1.0}, ["'beta'", "= 1.0", "a number in [0, 1)"]),
    ({"share": 1.5}, ["'share'", "= 1.5", "a number in [0, 1]"]),
    ({"mask": 0.0}, ["'mask'", "= 0.0", "a number in (0, 1)"]),
    ({"offset": math.inf}, ["'offset'", "inf", "any finite value"]),
    ({"lrs": (0.1, -0.2)}, ["'lrs'", "(0.1, -0.2)", "element 1 (-0.2)", "a number > 0"]),
    ({"sizes": (3, 0)}, ["'sizes'", "element 1 (0)", "an integer >= 1"]),
    ({"cap": 0}, ["'cap'", "= 0", "an integer >= 1"]),
    ({"optimizer": "adamw"}, ["'optimizer'", "'adamw'", "one of 'adam', 'sgd'"]),
    ({"inner": Inner(width=0)}, ["'inner.width'", "= 0", "an integer >= 1"]),
    ({"inner": Inner(scale=-1.0)}, ["'inner.scale'", "= -1.0", "a number > 0"]),
]


@pytest.mark.parametrize(("changes", "pieces"), BAD_VALUES, ids=[p[0].strip("'") for _, p in BAD_VALUES])
def test_validate_config_names_key_value_and_range(changes, pieces):
    with pytest.raises(ConfigError) as err:
        validate_config(dataclasses.replace(Local(), **changes))
    message = str(err.value)
    assert "\n" not in message
    for piece in pieces:
        assert piece in message, message


def test_validate_config_runs_the_configs_own_validate_after_the_ranges():
    with pytest.raises(ConfigError, match=r"Local: seed \(10\) must be < steps \(10\)"):
        validate_config(Local(seed=10))
    # a range error comes first, so validate() never sees an out-of-range value
    with pytest.raises(ConfigError, match="'steps' = 0 is out of range"):
        validate_config(Local(steps=0))


def test_validate_config_rejects_none_where_it_is_not_optional():
    with pytest.raises(ConfigError, match="'steps' = None must not be None"):
        validate_config(Local(steps=None))


def test_undeclared_numeric_fields():
    assert undeclared_numeric_fields(Local) == []
    assert undeclared_numeric_fields(Undeclared) == ["a", "b", "c", "g"]  # bool, str and declared ones pass
    assert undeclared_numeric_fields(UndeclaredNested) == ["inner.a", "inner.b", "inner.c", "inner.g"]


def test_apply_overrides_parses_and_validates():
    config = apply_overrides(
        Local(), ["steps=20", "lrs=0.3,0.4", "sizes=5", "cap=7", "flag=false", "optimizer=sgd", "name=y"]
    )
    assert (config.steps, config.lrs, config.sizes, config.cap) == (20, (0.3, 0.4), (5,), 7)
    assert (config.flag, config.optimizer, config.name) == (False, "sgd", "y")
    assert apply_overrides(Local(cap=3), ["cap=none"]).cap is None
    assert apply_overrides(Local(), {"seed": "4"}).seed == 4
    assert apply_overrides(Local(), []) == Local()


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ("steps=-1", r"config key 'steps' = -1 is out of range: expected an integer >= 1"),
        ("seed=-1", r"'seed' = -1 .* an integer >= 0"),
        ("cap=-1", r"'cap' = -1 .* an integer >= 1"),
        ("sizes=-1", r"'sizes' = \(-1,\) .*element 0 \(-1\)"),
        ("lrs=0.1,0", r"'lrs' .*element 1 \(0.0\) .* a number > 0"),
        ("beta=1", r"'beta' = 1.0 .* \[0, 1\)"),
        ("optimizer=adamw", r"'optimizer' = 'adamw' .* one of 'adam', 'sgd'"),
        ("seed=10", r"Local: seed \(10\) must be < steps \(10\)"),
        ("steps=ten", r"config key 'steps' expects int, got 'ten'"),
        ("flag=maybe", r"config key 'flag' expects bool"),
        ("nope=1", r"unknown config key 'nope' for Local; valid keys: .*steps"),
        ("steps", r"must look like key=value"),
    ],
)
def test_apply_overrides_errors_are_config_errors(override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        apply_overrides(Local(), [override])
