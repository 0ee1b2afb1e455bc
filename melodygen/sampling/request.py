"""The one generation request: what `melodygen sample`, `Model.generate` and the studio ask for.

`GenerationRequest` is a frozen dataclass whose fields are the options, each spelled once: its
name is the `Model.generate` keyword, the studio's form field and the command line's parameter
(`--top-p` for `top_p`). Each field's `Option` (its metadata) says what it is (a number with
its range, a flag, a file, a list read from text), its default and its help; the command's
click options are made from them (`commands.params.request_options`), `GenerationRequest.build(**values)` reads
Python values or text into a request, and `problem()` is the one check of the options among
themselves, run when a request is made: an invalid request cannot exist. tests/test_request.py
checks that the command line, the API and the studio agree with it on names and defaults.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from melodygen.encodings.controls import KEY_STRENGTH
from melodygen.errors import ConfigError

SEED_LIMIT = 2**31 - 1  # seeds drawn at random are at most this (any whole number >= 0 is taken)


def random_seed() -> int:
    """A seed for a request that gives none (the command line, the API, the studio)."""
    return secrets.randbelow(SEED_LIMIT + 1)


@dataclass(frozen=True)
class Option:
    """How one request field reads and is offered: `kind` "int", "float", "flag", "file",
    "text" or "list" (text split on commas, read by `parse`), its range [`lo`, `hi`] (an open
    lower end with `lo_open`), the command line's `flags` (default `--name`) and `help`."""

    kind: str
    help: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    flags: tuple[str, ...] = ()
    parse: Callable[[str, Any], Any] | None = None  # (name, a list's text or sequence) -> a tuple

    def read(self, name: str, value: Any) -> Any:
        """`value` (Python or text) as this option's type, within its range; `ConfigError`
        naming `name`."""
        value = self.convert(name, value)
        if self.kind in ("int", "float") and value is not None:
            self.check_range(name, value)
        return value

    def convert(self, name: str, value: Any) -> Any:
        """`value` (Python or text) as this option's type, its range not checked."""
        if value is None or self.kind == "text":
            return value
        if self.kind == "flag":
            return _flag(name, value)
        if self.kind == "file":
            return Path(value)
        if self.kind == "list":
            return self.parse(name, value)
        return _number(name, value, int if self.kind == "int" else float)

    def check_range(self, name: str, number: float) -> None:
        low_ok = self.lo is None or (number > self.lo if self.lo_open else number >= self.lo)
        if not (low_ok and (self.hi is None or number <= self.hi)):
            raise ConfigError(f"{name}: {number:g} is outside {self.range_text()}")

    def range_text(self) -> str:
        lo = "-inf" if self.lo is None else f"{self.lo:g}"
        hi = "inf" if self.hi is None else f"{self.hi:g}"
        return f"{'(' if self.lo_open else '['}{lo}, {hi}]"


def _option(kind: str, help: str, **more) -> Any:
    """A request field with its `Option`; its default is `more["default"]` (None if absent)."""
    default = more.pop("default", False if kind == "flag" else None)
    return field(default=default, metadata={"option": Option(kind, help, **more)})


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("", "0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: {value!r} is not true or false")


def _number(name: str, value: Any, kind: type) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{name}: {value!r} is not a number")
    try:
        number = kind(value) if kind is float or not isinstance(value, float) else None
    except (TypeError, ValueError):
        number = None
    if number is None or (kind is float and not math.isfinite(number)):
        raise ConfigError(f"{name}: {value!r} is not {'a whole number' if kind is int else 'a finite number'}")
    return number


def _items(value: Any) -> list:
    """A list option's items: text split on commas (and spaces), or a sequence as it is."""
    if isinstance(value, str):
        return [item for item in re.split(r"[,\s]+", value.strip()) if item]
    if isinstance(value, (int, float)):
        return [value]
    return list(value)


def _instruments(name: str, value: Any) -> tuple[int, ...]:
    from melodygen.instruments import parse_instrument

    items = _items(value)
    if not items:
        raise ConfigError(f"{name}: give at least one instrument")
    return tuple(i if isinstance(i, int) and not isinstance(i, bool) else parse_instrument(str(i)) for i in items)


def _counts(name: str, value: Any, *, pair: bool = False) -> tuple[int, ...]:
    """Whole numbers from 1: '1,3' (or a sequence); with `pair`, two of them, 'A-B'."""
    items = re.split(r"\s*-\s*", value.strip()) if pair and isinstance(value, str) else _items(value)
    try:
        numbers = tuple(_number(name, item, int) for item in items)
    except ConfigError:
        numbers = ()
    if not numbers or any(n < 1 for n in numbers) or (pair and len(numbers) != 2):
        raise ConfigError(f"{name} {value!r}: expected whole numbers from 1 as in {'5-8' if pair else '1,3'}")
    return numbers


def _chords(name: str, value: Any) -> tuple[str, ...]:
    return tuple(str(chord) for chord in _items(value))


def _densities(name: str, value: Any) -> tuple[int, ...]:
    return tuple(_number(name, item, int) for item in _items(value))


@dataclass(frozen=True)
class GenerationRequest:
    """What to generate. At most one of `events`, `seconds`, `bars`: that much new music per
    piece (end-of-piece is not drawn before it unless `allow_early_end`); none: a piece ends
    where the model ends it, after at most 512 events. `seed` None: one drawn at random
    (`seeded()` draws it; the pieces record it)."""

    n: int = _option("int", "How many pieces, generated together as one batch.", lo=1, hi=1024, default=1,
                     flags=("-n", "--num-outputs"))
    temperature: float = _option("float", "Logits are divided by T before the softmax: < 1 safer, > 1 wilder.",
                                 lo=0, lo_open=True, default=1.0)
    top_k: int | None = _option("int", "Draw only among the K likeliest ids.", lo=1)
    top_p: float | None = _option("float", "Draw only among the likeliest ids whose probability sums to P "
                                  "(nucleus).", lo=0, hi=1, lo_open=True)
    events: int | None = _option("int", "New events per piece, after any primer [default: until the model ends "
                                 "the piece, at most 512].", lo=1, flags=("--events", "--length"))
    seconds: float | None = _option("float", "Instead: this many seconds of new music per piece.", lo=0, lo_open=True)
    bars: float | None = _option("float", "Instead: this many new bars per piece: 4/4 bars at --tempo for melody "
                                 "and performance models; whole bars in the model's own meters for multitrack.",
                                 lo=0, lo_open=True)
    form: str | None = _option(
        "text", "Multitrack models trained with repeats (folk-band): the piece's sections, e.g. AABA or "
        "'A8 A8 B8 A8'. Letters name sections, counts give their bars, and a letter that came before repeats "
        "its section bar for bar; A' varies it (its first half again, a new second half). Without --bars, the "
        "sections give the length (8 bars each where no count says).")
    meter: str | None = _option(
        "text", "Multitrack models, a piece from nothing: its meter, e.g. 3/4 (a waltz) or 9/8 (a slip jig), one "
        "the model trained on; the piece keeps it [default: the model's choice, mostly its commonest meters].")
    primer: Path | None = _option("file", "MIDI file to continue; the output starts with it.")
    continuation_only: bool = _option("flag", "With --primer: write only the new music.")
    fit_velocities: bool = _option(
        "flag", "With --primer: map each of its velocities the model never saw in training to the nearest one "
        "it saw (the primer comes back with them). A primer or --accompany file far outside the model's "
        "training data gets a warning either way.")
    accompany: Path | None = _option(
        "file", "Multitrack models: a MIDI file whose tracks are given (e.g. your melody); the model writes "
        "new tracks (--instruments, default piano) in time with them, as long as the piece. The given notes "
        "come back unchanged.")
    given_tracks: tuple[int, ...] | None = _option(
        "list", "With --accompany: which of its tracks are given, e.g. '1' or '1,3' [default: all].",
        parse=_counts)
    infill: tuple[int, int] | None = _option(
        "list", "Multitrack models: write bars A to B of the --primer piece again (every track), between the "
        "bars before and after them, which come back unchanged. As A-B.",
        parse=lambda name, value: _counts(name, value, pair=True))
    seed: int | None = _option("int", "Random seed; the same seed gives the same pieces [default: one drawn at "
                               "random, and said].", lo=0, hi=2**63 - 1)
    tempo: float | None = _option("float", "Tempo in BPM [default: the primer's, else 120; a multitrack model "
                                  "writes its own tempo changes, and --tempo scales them to start here].",
                                  lo=4, hi=1000)
    transpose: int = _option("int", "Semitones to move every new piece up (negative: down), primer included; "
                             "drums stay, a note leaving MIDI's range moves back by octaves.", lo=-24, hi=24, default=0)
    program: int | None = _option("int", "General MIDI program of a melody/performance model's one track "
                                  "[default: 0, acoustic grand piano].", lo=0, hi=127)
    instruments: tuple[int, ...] | None = _option(
        "list", "Multitrack models: the instruments that play, comma-separated GM names, families or program "
        "numbers (e.g. 'piano,bass,drums', 'flute,0'). From nothing: exactly these tracks, in this order; "
        "with --primer: only the primer's tracks of these instruments get new notes.", parse=_instruments)
    range_margin: int = _option(
        "int", "Multitrack models that recorded their tracks' pitch ranges (trained since issue 23): semitones "
        "each range is widened by; new notes stay inside. A large margin (127) lifts the ranges.",
        lo=0, hi=127, default=0)
    key: str | None = _option("text", "Models trained with controls (folk-band; presets with encoding.controls): "
                              "the key of the new bars, e.g. 'D', 'Bm', 'F# minor'.")
    key_strength: float = _option(
        "float", "With --key: how far new notes lean toward the key's pitch classes (its Krumhansl-Kessler "
        "profile to this power times the model's odds; how many notes is still the model's). 0: the model's "
        "key control alone, which it keeps to weakly (docs/benchmarks.md). With --accompany and no --key: "
        "toward the given tracks' key, measured, for any multitrack model.", lo=0, hi=10, default=KEY_STRENGTH)
    cadence: bool = _option(
        "flag", "With --key and no --chords, models trained with the chord control (folk-band): the chord track "
        "opens on the key's tonic chord (from nothing) and closes on it (with --bars); the model chooses the "
        "chords between. Without it, minor keys came out as their relative major far more often "
        "(docs/benchmarks.md). With --form, the closing tonic goes to the bar the last bar repeats.", default=True,
        flags=("--cadence/--no-cadence",))
    chords: tuple[str, ...] | None = _option(
        "list", "Models trained with controls: one chord per new bar, repeated when the piece is longer, "
        "e.g. 'D G A7 D' or 'Am,Dm,E7,Am' (qualities: maj, m, 7, m7, maj7, dim, aug, sus4).", parse=_chords)
    density: tuple[int, ...] | None = _option(
        "list", "Models trained with controls: notes starting in each new bar, every track together; one "
        "count for every bar or one per bar, repeated (e.g. 10 or 6,12).", parse=_densities)
    strict_density: bool = _option("flag", "With --density: hold every new bar within 15% of it (no note past "
                                   "the most, no bar line before the fewest), whatever the model would rather do.")
    allow_early_end: bool = _option("flag", "With --events/--seconds/--bars: the model may end a piece before "
                                    "that length (by default every piece gets all the new music asked for).")
    beam: int = _option("int", "Beam search keeping this many sequences: each grows --branch sampled branches "
                        "and the most likely survive; each piece gets its log-likelihood. 0: plain sampling. "
                        "-n may not exceed it.", lo=0, hi=256, default=0)
    branch: int = _option("int", "With --beam: branches sampled from each kept sequence.", lo=1, hi=64, default=2)
    beam_steps: int = _option("int", "With --beam: ids each branch draws before the beam is pruned again.",
                              lo=1, default=1)
    fast: bool = _option("flag", "Step the model through its fast decoding path where it has one (the same ids "
                         "up to float rounding); off: the plain model.step.", default=True,
                         flags=("--fast/--no-fast",))
    draft: bool = _option("flag", "One piece (-n 1) from a Transformer: check ids guessed from the piece itself "
                          "several per step, the same ids. Whether it pays depends on the machine and how much "
                          "the piece repeats: 1.1-1.3x faster on folk-band here, ~10% slower on pop-piano "
                          "(docs/benchmarks.md).")

    def __post_init__(self):
        """Every value read as its option says (text or Python; ranges checked), then the
        options checked among themselves: an invalid request raises a one-line `ConfigError`."""
        for name, option in request_options().items():
            object.__setattr__(self, name, option.read(name, getattr(self, name)))
        problem = self.problem()
        if problem:
            raise ConfigError(problem)
        self.controls  # noqa: B018 - key, chords and density are read (and refused) here, once
        if self.form_plan is not None and self.bars is None:  # the sections give the length
            object.__setattr__(self, "bars", float(self.form_plan.bars))

    @classmethod
    def build(cls, **values) -> GenerationRequest:
        """A request from keyword values, Python or text (as a form or the command line gives
        them); an unknown name is a one-line `ConfigError` too."""
        options = request_options()
        unknown = sorted(set(values) - set(options))
        if unknown:
            raise ConfigError(f"unknown generation option {unknown[0]!r}; the options: {', '.join(options)}")
        return cls(**values)

    def seeded(self) -> GenerationRequest:
        """This request with a seed: its own, else one drawn at random."""
        return self if self.seed is not None else replace(self, seed=random_seed())

    @property
    def has_length(self) -> bool:
        return not (self.events is None and self.seconds is None and self.bars is None)

    @cached_property
    def controls(self):
        """The `encodings.controls.ControlRequest` of key, chords, density (None: none asked),
        read once, when the request is made."""
        if (self.key is None and self.chords is None and self.density is None and not self.strict_density
                and self.key_strength == KEY_STRENGTH):
            return None
        from melodygen.encodings.controls import ControlRequest

        return ControlRequest.parse(self.key, self.chords, self.density, self.strict_density, self.key_strength,
                                    key_measured=self.accompany is not None, cadence=self.cadence)

    @cached_property
    def form_plan(self):
        """The `encodings.form.FormPlan` of `form` (None: none asked), read once."""
        if self.form is None:
            return None
        from melodygen.encodings.form import FormPlan

        return FormPlan.parse(self.form, self.bars)

    def problem(self) -> str | None:
        """What is wrong with the options among themselves (one line), or None."""
        lengths = [k for k in ("events", "seconds", "bars") if getattr(self, k) is not None]
        given = self.accompany is not None or self.infill is not None
        steered = self.key is not None or self.chords is not None or self.density is not None
        problems = [
            (len(lengths) > 1, "give at most one of --events, --seconds, --bars"),
            (self.continuation_only and self.primer is None, "--continuation-only needs --primer"),
            (self.fit_velocities and (self.primer is None or given),
             "--fit-velocities maps the velocities of a --primer the model continues: not without one, nor with "
             "--accompany or --infill (their given music comes back as the file has it)"),
            (bool(self.beam) and self.n > self.beam,
             f"-n {self.n} is more than the --beam {self.beam} sequences beam search keeps"),
            (bool(self.beam) and self.allow_early_end,
             "--beam runs every piece to its length: --allow-early-end does not apply"),
            (self.draft and (not self.fast or bool(self.beam) or self.n > 1),
             "--draft drafts one piece at a time on the fast path: not with --no-fast, --beam or -n > 1"),
            (not self.beam and (self.branch != 2 or self.beam_steps != 1),
             "--branch and --beam-steps set up beam search: add --beam N"),
            (self.given_tracks is not None and self.accompany is None,
             "--given-tracks chooses tracks of the --accompany file: add --accompany FILE"),
            (self.accompany is not None and self.infill is not None, "give --accompany or --infill, not both"),
            (given and (self.has_length or bool(self.beam)),
             "--accompany and --infill write as long as the given piece: no --events, --seconds, --bars or --beam"),
            (given and (self.tempo is not None or self.continuation_only),
             "--accompany and --infill keep the given piece's tempo and write it whole: no --tempo or "
             "--continuation-only"),
            (self.accompany is not None and self.primer is not None,
             "--accompany gives the music to start from: no --primer"),
            (self.infill is not None and bool(self.instruments),
             "--infill writes the primer's own tracks again: no --instruments"),
            (self.infill is not None and self.infill[0] > self.infill[-1],
             f"--infill {self.infill[0]}-{self.infill[-1]}: the first bar comes after the last" if self.infill else ""),
            (self.given_tracks is not None and len(set(self.given_tracks)) != len(self.given_tracks),
             "--given-tracks names a track twice"),
            (self.infill is not None and steered, "--key, --chords and --density steer music written from nothing, "
                                                  "a primer or around --accompany: not with --infill"),
            (not self.cadence and (self.key is None or self.chords is not None or given),
             "--no-cadence turns off the tonic chords a --key brings to music written without --chords: "
             "not without --key, nor with --chords, --accompany or --infill"),
            (self.accompany is not None and (self.density is not None or self.strict_density),
             "--density counts every track's notes: with --accompany, give --key and --chords only"),
            (self.form is not None and (given or self.events is not None or self.seconds is not None
                                        or bool(self.beam) or self.strict_density),
             "--form plans bars of music written from nothing or a primer: its length is --bars (or the "
             "form's own), not with --events, --seconds, --beam, --strict-density, --accompany or --infill"),
            (self.meter is not None and (given or self.primer is not None),
             "--meter sets the meter of a piece from nothing: a --primer, --accompany or --infill file brings "
             "its own"),
            (self.meter is not None and re.fullmatch(r"\d+/\d+", self.meter.strip()) is None,
             f"--meter {self.meter!r}: give it as beats/unit, e.g. 3/4 or 6/8"),
            (bool(self.transpose) and (given or self.key is not None or self.chords is not None),
             "--transpose moves the whole piece: not with --accompany or --infill (the given music comes back "
             "as it is), nor --key or --chords (ask for the key you want)"),
        ]
        return next((text for wrong, text in problems if wrong), None)


def request_options() -> dict[str, Option]:
    """{field name: its `Option`}, in the request's order."""
    return {f.name: f.metadata["option"] for f in fields(GenerationRequest)}


def request_defaults() -> dict[str, Any]:
    """{field name: its default}."""
    return {f.name: (None if f.default is MISSING else f.default) for f in fields(GenerationRequest)}
