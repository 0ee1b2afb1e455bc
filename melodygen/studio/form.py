"""The studio's generation form, checked: field text -> `GenerationSettings`.

Every field is checked against its range (numbers), its length in characters and its number of
items (instruments, chords, densities), and every problem is reported together in one
`ConfigError` (the page shows its message), as `--set` overrides are. No Flask here: the form
arrives as a plain mapping of field name -> text. The controls (key, chords, notes per bar) are
read by `ControlRequest.parse`, as `melodygen sample --key/--chords/--density` reads them; whether
the model has them is the request's check (`Studio.start`), not the form's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from melodygen.errors import ConfigError
from melodygen.sampling.request import SEED_LIMIT, random_seed, request_options

MAX_PIECES = 8
# (lowest, highest) new music per piece, per unit: enough for a song, small enough that one
# request cannot keep a shared CPU busy for an hour
LENGTH_LIMITS = {"bars": (1, 64), "seconds": (1, 240), "events": (1, 4096)}
MAX_FIELD_CHARS = 1000  # the text of one field: 16 instrument names or 64 chords fit with room
MAX_ITEMS = 64  # instruments (the most tracks an encoding may have), chords, densities (one per bar)
UPLOAD_KINDS = ("primer", "accompany")  # what an uploaded MIDI file is: music to continue, or to accompany


@dataclass(frozen=True)
class GenerationSettings:
    """What one press of Generate asks for; sample `i` of a request is drawn with `seed + i`.
    Its fields are the generation request's (`sampling.request.GenerationRequest`: the same
    names and defaults, a test checks), but for the model, `length` in a `unit`, which is
    the request's `bars`, `seconds` or `events`, and `upload`: what an uploaded MIDI file is, a
    primer to continue or music to accompany (`given_tracks` of it given; the request's
    `primer` or `accompany`)."""

    model: str
    n: int = 1
    temperature: float = 1.0
    top_p: float | None = None
    length: float = 8
    unit: str = "bars"
    seed: int | None = None
    tempo: float | None = None
    instruments: tuple[int, ...] | None = None
    key: str | None = None  # names as `harmony` spells them ("Bm"), so they read back the same
    chords: tuple[str, ...] | None = None
    density: tuple[int, ...] | None = None
    form: str | None = None
    upload: str = "primer"
    given_tracks: tuple[int, ...] | None = None

    def generate_options(self, seed: int, file: Path | None = None) -> dict:
        """The generation request's options (`Model.generate` keywords) for one piece drawn
        with `seed`, the uploaded `file` (if any) its primer or the music it accompanies."""
        if self.upload == "accompany":  # the given piece sets the length and the tempo
            return {"n": 1, "temperature": self.temperature, "top_p": self.top_p, "seed": seed,
                    "instruments": self.instruments, "accompany": file, "given_tracks": self.given_tracks}
        length = int(self.length) if self.unit == "events" else self.length
        # a form gives its own length, unless its sections have no counts and share the bars asked
        sized = self.form is None or (self.unit == "bars" and not any(c.isdigit() for c in self.form))
        return {"n": 1, **({self.unit: length} if sized else {}), "temperature": self.temperature, "top_p": self.top_p,
                "seed": seed, "tempo": self.tempo, "instruments": self.instruments,
                "key": self.key, "chords": self.chords, "density": self.density, "form": self.form, "primer": file}

    def to_dict(self) -> dict:
        return asdict(self)


def parse_settings(form: Mapping[str, str], models: list[str]) -> GenerationSettings:
    """The settings a form asks for; `ConfigError` listing every bad field. An empty seed
    draws one at random; empty top-p, tempo, instruments and controls mean "none"."""
    problems: list[str] = []
    field = _Fields(form, problems)
    model = field.text("model")
    if model is not None and model not in models:
        problems.append(f"model: {model!r} is not one of this studio's models ({', '.join(models)})")
    upload = field.text("upload") or "primer"
    if upload not in UPLOAD_KINDS:
        problems.append(f"upload: {upload!r} is not one of {', '.join(UPLOAD_KINDS)}")
        upload = "primer"
    unit = field.text("unit") or "bars"
    if unit not in LENGTH_LIMITS:
        problems.append(f"unit: {unit!r} is not one of {', '.join(LENGTH_LIMITS)}")
        unit = "bars"
    settings = GenerationSettings(
        model=model,
        n=field.number("n", 1, MAX_PIECES, default=1),
        temperature=field.number("temperature", 0.05, 3.0, default=1.0),
        top_p=field.number("top_p", 0.01, 1.0, default=None),
        length=field.number("length", *LENGTH_LIMITS[unit], default=8, read_as=unit),
        unit=unit,
        seed=field.number("seed", 0, SEED_LIMIT, default=None),
        tempo=field.number("tempo", 20, 400, default=None),
        instruments=field.instruments("instruments"),
        form=field.text("form") or None,
        upload=upload,
        given_tracks=field.tracks("given_tracks"),
        **field.controls(),
    )
    if upload == "accompany":  # the given piece sets these: a value asked for would be dropped
        asked = [name for name in ("tempo", "key", "chords", "density", "form") if getattr(settings, name) is not None]
        problems += [f"{name}: not with upload=accompany (the given piece sets it)" for name in asked]
    if problems:
        raise ConfigError("; ".join(problems))
    return settings if settings.seed is not None else _with_seed(settings, random_seed())


def _with_seed(settings: GenerationSettings, seed: int) -> GenerationSettings:
    return GenerationSettings(**{**settings.to_dict(), "seed": seed})


class _Fields:
    """Reads fields of a form, appending one line per bad field to `problems`."""

    def __init__(self, form: Mapping[str, str], problems: list[str]) -> None:
        self.form, self.problems = form, problems

    def text(self, name: str) -> str | None:
        """The field's text, stripped; None (and a problem) when over `MAX_FIELD_CHARS`."""
        text = str(self.form.get(name, "")).strip()
        if len(text) > MAX_FIELD_CHARS:
            self.problems.append(f"{name}: {len(text)} characters, more than the {MAX_FIELD_CHARS} a field may have")
            return None
        return text

    def number(self, name: str, lo: float, hi: float, *, default, read_as: str | None = None):
        """A number read as the generation request reads its option `read_as` (default: `name`;
        its type, `sampling.request.Option.convert`), within the studio's own limits `lo`..`hi`,
        narrower than the request's (what one press of a shared page may ask)."""
        text = self.text(name)
        if not text:
            return default
        try:
            value = request_options()[read_as or name].convert(name, text)
        except ConfigError as exc:
            self.problems.append(str(exc))
            return default
        if not lo <= value <= hi:
            self.problems.append(f"{name}: {text} is outside {lo:g}..{hi:g}")
            return default
        return value

    def tracks(self, name: str) -> tuple[int, ...] | None:
        """Track numbers, as the request reads them ("1" or "1,3"); None when empty."""
        words = [w for w in (self.text(name) or "").split(",") if w.strip()]
        if len(words) > MAX_ITEMS:
            self.problems.append(f"{name}: {len(words)} tracks, more than {MAX_ITEMS}")
            return None
        if not words:
            return None
        try:
            return tuple(request_options()[name].convert(name, ",".join(words)))
        except ConfigError as exc:
            self.problems.append(str(exc))
            return None

    def instruments(self, name: str) -> tuple[int, ...] | None:
        from melodygen.instruments import parse_instrument

        words = [w for w in (self.text(name) or "").split(",") if w.strip()]
        if len(words) > MAX_ITEMS:
            self.problems.append(f"{name}: {len(words)} instruments, more than {MAX_ITEMS}")
            return None
        chosen = []
        for word in words:
            try:
                chosen.append(parse_instrument(word))
            except ConfigError as exc:
                self.problems.append(f"{name}: {exc}")
        return tuple(chosen) or None

    def controls(self) -> dict:
        """`key`, `chords`, `density` as `GenerationSettings` holds them (None: not asked for);
        each field read alone, so that its problem names it."""
        from melodygen import harmony
        from melodygen.encodings.controls import ControlRequest

        named = {"key": lambda asked: harmony.key_name(asked.key),
                 "chords": lambda asked: tuple(map(harmony.chord_name, asked.chords)),
                 "density": lambda asked: asked.density}
        values: dict = dict.fromkeys(named)
        for name, value_of in named.items():
            text = self.text(name)
            if not text:
                continue
            if name != "key" and len(text.replace(",", " ").split()) > MAX_ITEMS:
                self.problems.append(f"{name}: more than {MAX_ITEMS} values (one per bar; the longest piece has "
                                     f"{LENGTH_LIMITS['bars'][1]} bars)")
                continue
            try:
                values[name] = value_of(ControlRequest.parse(**{name: text}))
            except ConfigError as exc:  # it names the control ("density 0: ...")
                line = str(exc)
                self.problems.append(line if line.startswith(name) else f"{name}: {line}")
        return values
