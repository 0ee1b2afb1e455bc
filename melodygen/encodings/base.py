"""The abstract `Encoding`: notes <-> ids, its settings, and its JSON form.

Every encoding has a registry `name`, a frozen settings dataclass, and a `Vocabulary` built
from those settings. `to_dict` stores name + settings + the token list + the stream version +
melodygen version; `from_dict` rebuilds the encoding from the settings and refuses a token list
that does not match, so a dataset or checkpoint is never read with a different vocabulary, and
a stream version other than the encoder's, so it is never read as ids that meant something
else when they were written (a stored encoding that records none was written before versions
existed: version 1).

Musical time belongs to the encoding: `time_per_id` says how far each id moves time forward,
in beats, seconds or bars, so sampling lengths in seconds or bars, statistics and reports never
switch on an encoding's name. So does the shape of what comes back: `decode_score` gives a whole
`Score` (one track for a single-stream encoding; `keeps_instruments` says whether its tracks,
programs, tempo and meter come from the ids or are the caller's to choose).
"""

from __future__ import annotations

import dataclasses
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from melodygen import __version__
from melodygen.atomic import atomic_write
from melodygen.encodings.vocab import Vocabulary
from melodygen.errors import ConfigError, EncodingError
from melodygen.notes import Note, Score, TempoMap, Track
from melodygen.settings import build

BEATS, SECONDS, BARS = "beats", "seconds", "bars"
UNVERSIONED_STREAM = 1
"""The stream version of a stored encoding that records none (written before versions existed)."""


@dataclass(frozen=True)
class TimePerId:
    """How far each id moves musical time forward: `amounts[i]` (float, (V,)) in `unit`,
    `BEATS` (quarter notes: laid out at a tempo), `SECONDS` (absolute time) or `BARS` (bar
    lines: an id that opens a bar counts 1, whatever the bar's meter)."""

    amounts: np.ndarray
    unit: str

    def fixed_step(self, first_event_id: int) -> float | None:
        """The one amount every event id (ids from `first_event_id` on) advances, when they all
        advance the same positive amount (a grid with one event per step); else None."""
        events = self.amounts[first_event_id:]
        step = float(events[0]) if len(events) else 0.0
        return step if step > 0 and bool((events == step).all()) else None


class Encoding(ABC):
    """Turns a `Score` into ids (uint16, without BOS/EOS) and ids back into notes."""

    name: ClassVar[str]
    settings_type: ClassVar[type]
    # The version of the stream `encode` writes, declared by each encoding (no default). Bump it
    # whenever the ids of the same notes and settings change, or what an id means does: a
    # dataset or checkpoint of another version is then refused instead of read as today's ids.
    # tests/test_stream_versions.py holds each version's output hash and fails on a change
    # made without a bump.
    stream_version: ClassVar[int]
    # True when the ids carry tracks, programs, tempo and meter; False for one stream of notes
    # whose instrument and tempo the caller chooses (see `decode_score`).
    keeps_instruments: ClassVar[bool] = False

    def __init__(self, settings: Any = None):
        self.settings = self.settings_type() if settings is None else settings
        self.vocab: Vocabulary = self._build_vocab()

    @classmethod
    def from_settings(cls, values: dict[str, Any]) -> Encoding:
        """Build from plain settings (config/JSON); every bad key or value -> one `ConfigError`."""
        return cls(build(cls.settings_type, values, f"{cls.name} encoding"))

    @abstractmethod
    def _build_vocab(self) -> Vocabulary: ...

    @abstractmethod
    def encode(self, score: Score) -> np.ndarray:
        """Ids (uint16) of one piece, without BOS/EOS; raises `NoUsableMusicError(reason)`."""

    def decode(self, ids: Sequence[int], qpm: float = 120.0) -> list[Note]:
        """Notes of any in-vocabulary id sequence (specials skipped); never crashes on those.

        `qpm` lays out encodings whose time is counted in beats (melody); encodings in absolute
        time ignore it, so callers can treat every encoding alike.
        """
        return self._decode(ids, qpm)[0]

    def decode_score(self, ids: Sequence[int], qpm: float = 120.0) -> Score:
        """The `Score` of any in-vocabulary ids. A single-stream encoding gives one track named
        after it (program 0) at a constant `qpm` in 4/4, ending with its last note."""
        notes = self.decode(ids, qpm)
        return Score([Track(self.name, 0, False, notes)], TempoMap(qpm=(qpm,)), [(0.0, 4, 4)],
                     end_time=max((n.end for n in notes), default=0.0))

    @property
    def reads_drums(self) -> bool:
        """Whether `encode` wants the drum tracks of a file (readers leave them out otherwise)."""
        return False

    def readable(self, ids: Sequence[int]) -> list[str]:
        """A readable token per id, as `melodygen tokens` prints them."""
        return [self.vocab.tokens[int(i)] for i in ids]

    def dropped_ids(self, ids: Sequence[int]) -> int:
        """How many of `ids` break the stream's grammar, so that decoding ignores them or drops
        the note they make (e.g. a NOTE_OFF with no note sounding). 0 for what `encode` makes,
        and for what sampling makes through `grammar`."""
        return self._decode(ids, 120.0)[1]

    @abstractmethod
    def _decode(self, ids: Sequence[int], qpm: float) -> tuple[list[Note], int]:
        """(`decode`'s notes, `dropped_ids`' count): one pass does both."""

    def grammar(self, primer_ids: Sequence[int], rows: int, device="cpu"):
        """A logit processor (`sampling.processors` contract, with `select_rows`) that bans, row
        by row, the ids that would break the grammar after `primer_ids` and what each row drew
        since; None when every id is always valid. An encoding that `keeps_instruments` also
        takes `instruments=` (instrument numbers, `melodygen.instruments`) and steers the
        tracks with them."""
        return None

    def conditioning(self, request, profile=None):
        """What a generation request (`sampling.request.GenerationRequest`) means for this
        encoding: its checks, primer, logit processors, given music and finish step
        (`encodings.conditioning`). `profile`: a function giving what the model saw in training
        (`dataset.profile.DataProfile`: its usual tracks and their ranges), or None (unknown)."""
        from melodygen.encodings.conditioning import Conditioning

        return Conditioning(self, request, profile)

    @property
    def refers_back(self) -> bool:
        """Whether some ids point back at earlier music (then `written_out` spells it out)."""
        return False

    def written_out(self, ids: Sequence[int]) -> np.ndarray:
        """`ids` with nothing written by reference: what the copy check compares, where the same
        id must mean the same music in every piece (the ids themselves, but for an encoding that
        can point back at earlier music: multitrack with repeats)."""
        return np.asarray(ids, dtype=np.int64)

    def given_source(self, ids: Sequence[int], given_tracks: int) -> np.ndarray:
        """The first `given_tracks` tracks of a piece's ids, as an encoder-decoder reads them
        (`models.seq2seq`); a single stream has no tracks to give."""
        raise self._no_tracks()

    def given_notes(self, ids, given_tracks: int) -> np.ndarray:
        """Which of `ids` (a piece or windows of one, (..., L)) are notes of the first
        `given_tracks` tracks, the ones an encoder-decoder reads in its source; bool, same shape."""
        raise self._no_tracks()

    def _no_tracks(self):
        from melodygen.errors import ConfigError

        return ConfigError(f"the {self.name} encoding has one stream, no tracks to give: an encoder-decoder "
                           "(seq2seq) reads given tracks, so it needs an encoding with tracks (multitrack)")

    def blank_of(self, ids) -> np.ndarray:
        """For each id, the blank that erases it (-1 where none can), what a masked model reads
        in its place (`models.masked`); only an encoding of cells has blanks (voices)."""
        from melodygen.errors import ConfigError

        raise ConfigError(f"the {self.name} encoding has no blanks to fill: a masked model needs an encoding of "
                          "cells (voices)")

    def program_ids(self) -> np.ndarray | None:
        """The id of each instrument (GM program 0..127, then drums) the ids may name; None for a
        single-stream encoding, whose instrument is the caller's."""
        return None

    def control_ids(self) -> dict[str, np.ndarray]:
        """The ids of each kind of control token the encoding carries, by kind (none by default;
        `multitrack_controls`). Training takes each kind out of a window at random
        (`training.control_dropout`)."""
        return {}

    def time_per_id(self) -> TimePerId | None:
        """How far each id moves time forward; None for an encoding that declares no time
        (then lengths can only be asked for in events)."""
        return None

    @abstractmethod
    def pitch_shift_table(self, shift: int) -> np.ndarray:
        """int64 map id -> id transposed by `shift` semitones; -1 where it leaves the range."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (a tuple setting as a list), so a stored copy compares equal."""
        settings = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self.settings).items()}
        return {"name": self.name, "settings": settings, "tokens": list(self.vocab.tokens),
                "stream_version": self.stream_version, "melodygen_version": __version__}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Encoding:
        """Rebuild from `to_dict` output; a mismatch of name, stream version or token list ->
        `EncodingError`."""
        if not isinstance(d, dict) or d.get("name") != cls.name:
            raise EncodingError(f"not a {cls.name} encoding: {str(d)[:80]}")
        if (stored := stored_stream_version(d)) != cls.stream_version:
            raise EncodingError(
                f"stored with the {cls.name} encoding's stream version {stored}, but this melodygen "
                f"writes version {cls.stream_version}: its ids meant something else")
        try:
            encoding = cls.from_settings(dict(d.get("settings") or {}))
        except (ConfigError, TypeError) as exc:
            raise EncodingError(f"bad {cls.name} encoding settings: {exc}") from None
        if list(d.get("tokens", [])) != encoding.vocab.tokens:
            raise EncodingError(
                f"the stored {cls.name} token list does not match the vocabulary these settings "
                f"build ({len(d.get('tokens', []))} stored vs {encoding.vocab.size} ids)")
        return encoding

    def save_json(self, path: str | Path) -> Path:
        """Write `to_dict()` as JSON atomically (temp file in the same folder + rename)."""
        path = Path(path)
        with atomic_write(path, "w", encoding="utf-8") as file:
            json.dump(self.to_dict(), file, indent=1)
        return path

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.settings == self.settings

    def __hash__(self) -> int:
        return hash((type(self), self.settings))


def stored_stream_version(d: dict[str, Any]) -> int:
    """The stream version a stored `to_dict()` was written with (`UNVERSIONED_STREAM` when it
    records none); `EncodingError` for a value that is not a whole number."""
    version = d.get("stream_version", UNVERSIONED_STREAM)
    if isinstance(version, bool) or not isinstance(version, int):
        raise EncodingError(f"damaged stream version {version!r} in the stored {d.get('name')!r} encoding")
    return version


def sort_notes(notes: Iterable[Note]) -> list[Note]:
    """Notes in the order decoders return them: by start, then pitch (then end, velocity)."""
    return sorted(notes, key=lambda n: (n.start, n.pitch, n.end, n.velocity))
