"""What a user may ask a piece's controls to be: a key, and per bar a chord and a note count.

The request side of controls, the same for every encoding that carries them
(`Encoding.control_ids`; today the multitrack encoding, `multitrack_controls`, which says how
they are measured and written as tokens): `ControlRequest` parses what the user typed, with
errors that name the control, not a command-line flag, so the command line, the API and the
studio say the same; `Steering` records the request beside a sampled file for the report.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from melodygen import harmony
from melodygen.atomic import atomic_write
from melodygen.errors import ConfigError

CONTROL_KINDS = ("key", "chord", "density")
_EXACT = 16
DENSITY_TOLERANCE = 0.15  # how far from a requested note count a bar may be and still obey it
KEY_STRENGTH = 4.0  # how far new notes lean toward an asked key (`encodings.key_lean`; docs/benchmarks.md)
UNKNOWN_LENGTH_BARS = 4096  # a cadence's chord plan where the length is not in bars: longer than any piece
DENSITY_COUNTS: tuple[int, ...] = tuple(range(_EXACT + 1)) + tuple(
    sorted({round(_EXACT * 1.125 ** k) for k in range(1, 25)} - set(range(_EXACT + 1))))


@dataclass(frozen=True)
class ControlRequest:
    """Controls asked for at sampling time: a key, and per new bar a chord and a note count (the
    lists repeat when the piece has more bars than they name). None: that control is not set,
    and the model writes as it learned to without it. A chord None in `chords` leaves that bar's
    chord to the model (`with_cadence` plans such bars; what a user types always names one)."""

    key: int | None = None
    chords: tuple[int | None, ...] | None = None
    density: tuple[int, ...] | None = None
    strict_density: bool = False  # the grammar holds each bar within DENSITY_TOLERANCE of it
    key_strength: float = KEY_STRENGTH  # with a key: how far new notes lean toward it (`encodings.key_lean`)
    cadence: bool = True  # with a key and no chords: open and close on its tonic chord (`with_cadence`)

    @classmethod
    def parse(cls, key: str | None = None, chords: str | Sequence[str] | None = None,
              density: str | Sequence[int] | None = None, strict_density: bool = False,
              key_strength: float = KEY_STRENGTH, key_measured: bool = False,
              cadence: bool = True) -> ControlRequest:
        """From the command line's text ("Bm"; "D G A7 D" or a list; "8" or "8,4" or a list);
        every bad value -> one-line `ConfigError`. `key_measured`: the key is the given music's
        (accompaniment), so a strength needs no key asked."""
        if isinstance(chords, str):
            chords = chords.replace(",", " ").split()
        if isinstance(density, str):
            try:
                density = [int(x) for x in density.replace(",", " ").split()]
            except ValueError:
                raise ConfigError(f"density {density!r}: give whole numbers of notes per bar, "
                                  "e.g. 8 or 8,4") from None
        if chords is not None and not chords:
            raise ConfigError("chords: none given; give one chord per bar, e.g. \"D G A7 D\"")
        if density is not None:
            if not density:
                raise ConfigError("density: none given; give notes per bar, e.g. 8 or 8,4")
            bad = next((d for d in density if not 1 <= d <= DENSITY_COUNTS[-1]), None)
            if bad is not None:
                raise ConfigError(f"density {bad}: notes per bar must be 1..{DENSITY_COUNTS[-1]}")
        if strict_density and density is None:
            raise ConfigError("strict density holds the notes per bar asked for: ask for a density too")
        if key_strength != KEY_STRENGTH and key is None and not key_measured:
            raise ConfigError("key strength leans new notes toward the key asked for (or, accompanying, "
                              "the given music's): ask for a key too")
        return cls(None if key is None else harmony.parse_key(key),
                   None if chords is None else tuple(harmony.parse_chord(c) for c in chords),
                   None if density is None else tuple(int(d) for d in density), strict_density,
                   float(key_strength), bool(cadence))

    def with_cadence(self, bars: int | None, opening: bool, sources: Sequence[int | None] | None = None
                     ) -> ControlRequest:
        """The request a grammar steers new music by: with a key, no chords asked and `cadence`,
        chords that open on the key's tonic chord (when the new music is the piece's `opening`,
        not a primer's continuation) and close on it (in new bar `bars`, when the length is
        known), the model's choice between (None in `chords`: the model's chord in that bar);
        else this request. Why: the key token and the lean alone left folk-band's minor pieces
        on their relative major (docs/benchmarks.md, "Keys asked for"); a tonal tune states its
        key by its tonic chord at both ends. `sources`: a form plan's bar each bar keeps its
        chord from (`FormPlan.chord_sources`); the closing tonic goes to the bar the last one's
        chord comes from, since a repeated bar's chord is its source's."""
        if self.key is None or self.chords is not None or not self.cadence or not (opening or bars):
            return self
        tonic = harmony.parse_chord(harmony.key_name(self.key))  # "Em" names the key and its triad
        length = bars or UNKNOWN_LENGTH_BARS
        plan = [tonic if opening else None] + [None] * (length - 1)
        if bars:
            last = bars - 1
            while sources is not None and last < len(sources) and sources[last] is not None:
                last = sources[last]
            plan[last] = tonic
        return replace(self, chords=tuple(plan))

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(k for k in CONTROL_KINDS if getattr(self, "chords" if k == "chord" else k) is not None)

    def check_model(self, controls: Sequence[str]) -> None:
        """`ConfigError` when asking for a control the model was not trained with."""
        missing = [k for k in self.kinds if k not in controls]
        if missing:
            have = ", ".join(controls) if controls else "none"
            raise ConfigError(f"this model was trained without the {' and '.join(missing)} control "
                              f"(its controls: {have}); train one with a preset that has them, "
                              "e.g. configs/multitrack_nottingham.toml")

    def describe(self) -> dict:
        """Plain JSON: names, not indices."""
        return {"key": None if self.key is None else harmony.key_name(self.key),
                "chords": None if self.chords is None else [harmony.chord_name(c) for c in self.chords],
                "density": None if self.density is None else list(self.density),
                "strict_density": self.strict_density,
                "key_strength": None if self.key is None else self.key_strength,
                "cadence": self.cadence}


@dataclass(frozen=True)
class Steering:
    """The controls a piece was sampled with: the request, the bar of the piece where the
    steered bars begin (after a primer's bars; 0-based), how many were asked for (None: as
    many as the model wrote), and its form plan."""

    request: ControlRequest
    first_bar: int = 0
    bars: int | None = None
    form: str | None = None  # the form plan, every section with its bars (`encodings.form`)

    def save_beside(self, midi: Path, achieved: dict | None = None) -> Path:
        """Write `NAME.controls.json` beside a sampled `NAME.mid` (`melodygen report` reads it),
        with what the piece `achieved` of its form plan where there is one."""
        path = controls_path(midi)
        data = {**self.request.describe(), "first_bar": self.first_bar, "bars": self.bars, "form": self.form}
        if achieved is not None:
            data["form_achieved"] = achieved
        with atomic_write(path, "w", encoding="utf-8") as file:
            json.dump(data, file, indent=1)
        return path


def controls_path(midi: Path) -> Path:
    """Where `ControlRequest.save_beside` puts the request of a sampled MIDI file."""
    return Path(midi).with_suffix(".controls.json")


def read_beside(midi: Path) -> Steering | None:
    """The `Steering` saved beside `midi`, or None when there is no such file; a damaged one ->
    `ConfigError` naming it."""
    path = controls_path(midi)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        strength = data.get("key_strength")  # None: saved without a key, or before the lean existed
        request = ControlRequest.parse(data["key"], data["chords"], data["density"], bool(data.get("strict_density")),
                                       KEY_STRENGTH if strength is None else float(strength),
                                       cadence=bool(data.get("cadence", False)))  # absent: saved before cadences
        return Steering(request, int(data["first_bar"]), None if data["bars"] is None else int(data["bars"]),
                        data.get("form"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a melodygen controls file ({exc})") from None
