"""Settings dataclasses from plain dicts: types converted or refused, rules, all problems at once."""

import dataclasses
from dataclasses import dataclass

import pytest

from melodygen.errors import ConfigError
from melodygen.settings import SettingsError, build, check, collect, each


@dataclass(frozen=True)
class Demo:
    size: int = 4
    rate: float = 0.5
    name: str = "x"
    flag: bool = False
    limit: int | None = None
    pair: tuple[int, int] = (0, 1)
    names: tuple[str, ...] = ()

    def __post_init__(self):
        check(self, {**each(self, ("size",), lambda v: v >= 1, ">= 1"),
                     "pair must be increasing": lambda: self.pair[0] < self.pair[1]})


def test_plain_values_are_converted_to_the_field_types():
    demo = build(Demo, {"rate": 1, "pair": [2, 3], "names": ["a", "b"], "limit": 7}, "demo")
    assert demo == Demo(rate=1.0, pair=(2, 3), names=("a", "b"), limit=7)
    assert type(demo.rate) is float and type(demo.pair) is tuple
    assert build(Demo, {}, "demo") == Demo()
    with pytest.raises(dataclasses.FrozenInstanceError):
        demo.size = 3


@pytest.mark.parametrize("values, text", [
    ({"size": True}, "size=True must be int"),
    ({"size": 1.5}, "size=1.5 must be int"),
    ({"rate": "fast"}, "rate='fast' must be float"),
    # TOML's inf passed the rules (training.max_minutes=inf crashed the progress bar); nan was
    # refused only where a rule happened to compare it
    ({"rate": float("inf")}, "rate=inf must be float (a finite number)"),
    ({"rate": float("nan")}, "rate=nan must be float (a finite number)"),
    ({"flag": 1}, "flag=1 must be bool"),
    ({"limit": "3"}, "limit='3' must be int or None"),
    ({"pair": [1]}, "pair=[1] must be list of 2 int"),
    ({"names": "ab"}, "names='ab' must be list of str"),
    ({"size": 0}, "size=0 must be >= 1"),
    ({"pair": [3, 2]}, "pair must be increasing"),
])
def test_each_problem_is_named(values, text):
    with pytest.raises(ConfigError, match="^demo: ") as info:
        build(Demo, values, "demo")
    assert text in str(info.value)


def test_every_problem_at_once_with_hints():
    with pytest.raises(ConfigError) as info:
        build(Demo, {"sise": 3, "colour": 1, "rate": "x", "size": 0}, "demo")
    message = str(info.value)
    assert "unknown setting 'sise' (did you mean 'size'?)" in message
    assert "unknown setting 'colour' (valid settings: size, rate, name" in message
    assert "rate='x' must be float" in message
    assert "size=0 must be >= 1" in message  # rules still judge the well-typed values
    assert "\n" not in message


def test_collect_qualifies_names_and_falls_back_to_defaults():
    problems = ["earlier"]
    assert collect(Demo, {"size": 0, "nme": "y"}, problems, prefix="demo.") == Demo()
    assert problems == ["earlier", "unknown setting 'demo.nme' (did you mean 'demo.name'?)",
                        "demo.size=0 must be >= 1"]
    assert collect(Demo, {"size": 2, "rate": "x"}, problems) == Demo(size=2)  # what is valid
    assert problems[3:] == ["rate='x' must be float"]


def test_direct_construction_is_checked_too():
    with pytest.raises(SettingsError, match="bad Demo: size=0 must be >= 1") as info:
        Demo(size=0)
    assert info.value.problems == ["size=0 must be >= 1"]
    assert Demo(rate=1).rate == 1  # an int is a valid float
