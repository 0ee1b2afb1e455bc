"""Frozen settings dataclasses built from plain dicts, with every problem reported at once.

Each component keeps its settings in one frozen dataclass (an encoding's, a model's, each
section of the run config), and this module is the one place that judges them:

    @dataclass(frozen=True)
    class LSTMSettings:
        hidden_size: int = 256
        dropout: float = 0.1

        def __post_init__(self):
            check(self, {"dropout must be in [0, 1)": lambda: 0 <= self.dropout < 1})

    build(LSTMSettings, {"hiden_size": 8, "dropout": "0.1"}, "model 'lstm'")
    # ConfigError: model 'lstm': unknown setting 'hiden_size' (did you mean 'hidden_size'?);
    #              dropout='0.1' must be float

A value must match its field's annotation (int, float, bool, str, `X | None`, `tuple[...]`,
dict): a bool is no int; an int is taken for a float and a list for a tuple (TOML and JSON
have no tuples), converted. Rules (a description and a check) run once the types are right,
since they compare values; a rule's description starts with the field it is about, so a
prefix such as "training." qualifies it.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from melodygen.errors import ConfigError

Rules = dict[str, Callable[[], bool]]

_BAD = object()  # what `_convert` returns for a value of the wrong type


class SettingsError(ConfigError):
    """Raised by `check`; `problems` holds one text per problem, without the class name."""

    def __init__(self, settings_type: type, problems: list[str]):
        super().__init__(f"bad {settings_type.__name__}: " + "; ".join(problems))
        self.problems = problems


def check(settings: Any, rules: Rules | None = None) -> None:
    """Check a settings dataclass (call it from `__post_init__`): each field's type, then each
    rule whose check fails; every problem -> one `SettingsError`."""
    hints = typing.get_type_hints(type(settings))
    problems = [_wrong_type(f.name, getattr(settings, f.name), hints[f.name])
                for f in dataclasses.fields(settings)
                if _convert(getattr(settings, f.name), hints[f.name]) is _BAD]
    if not problems:
        problems = [text for text, holds in (rules or {}).items() if not holds()]
    if problems:
        raise SettingsError(type(settings), problems)


def each(settings: Any, names: Iterable[str], test: Callable[[Any], bool], wanted: str) -> Rules:
    """Rules for `check`: each field in `names` passes `test`, else "name=value must be wanted"."""
    return {f"{name}={getattr(settings, name)!r} must be {wanted}":
            (lambda name=name: test(getattr(settings, name))) for name in names}


def build(cls: type, values: Mapping[str, Any], where: str) -> Any:
    """`cls` from plain `values` (missing keys take their defaults). Every unknown key (with the
    closest valid name), wrong type and broken rule -> one `ConfigError("{where}: ...")`."""
    problems: list[str] = []
    settings = collect(cls, values, problems)
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))
    return settings


def collect(cls: type, values: Mapping[str, Any], problems: list[str], prefix: str = "") -> Any:
    """`build` for callers gathering problems from several places: appends them to `problems`
    (field names after `prefix`, e.g. "training.") and returns the settings the well-typed
    values make, or the defaults `cls()` where those break a rule."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in names:
            problems.append(_unknown(key, names, prefix))
        elif (converted := _convert(value, hints[key])) is _BAD:
            problems.append(_wrong_type(f"{prefix}{key}", value, hints[key]))
        else:
            kwargs[key] = converted
    try:  # the well-typed values still have their rules checked
        return cls(**kwargs)
    except SettingsError as exc:
        problems += [prefix + text for text in exc.problems]
        return cls()


def _wrong_type(name: str, value: Any, hint: Any) -> str:
    finite = " (a finite number)" if isinstance(value, float) and not math.isfinite(value) else ""
    return f"{name}={value!r} must be {_type_name(hint)}{finite}"


def _unknown(key: Any, names: list[str], prefix: str) -> str:
    close = difflib.get_close_matches(str(key), names, n=1)
    hint = f"did you mean '{prefix}{close[0]}'?" if close else f"valid settings: {', '.join(names)}"
    return f"unknown setting '{prefix}{key}' ({hint})"


def _convert(value: Any, hint: Any) -> Any:
    """`value` as a value of type `hint` (int -> float, list -> tuple), or `_BAD`."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        converted = (_convert(value, arg) for arg in args)
        return next((c for c in converted if c is not _BAD), _BAD)
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, (list, tuple)):
            return _BAD
        if len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],) * len(value)
        if len(value) != len(args):
            return _BAD
        items = tuple(_convert(v, a) for v, a in zip(value, args))
        return _BAD if any(i is _BAD for i in items) else items
    if isinstance(value, bool) and hint is not bool:  # True is no pitch or step count
        return _BAD
    if hint is float and isinstance(value, int):
        return float(value)
    if hint is float and isinstance(value, float) and not math.isfinite(value):
        return _BAD  # TOML's inf/nan: nan fails no comparison of a rule, inf overflows later
    return value if isinstance(value, typing.get_origin(hint) or hint) else _BAD


def _type_name(hint: Any) -> str:
    """`int`, `float`, `int or None`, `list of 2 float`, `list of str`..."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return " or ".join(_type_name(arg) for arg in args)
    if typing.get_origin(hint) is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list of {_type_name(args[0])}"
        return f"list of {len(args)} {_type_name(args[0])}"
    return "None" if hint is type(None) else hint.__name__
