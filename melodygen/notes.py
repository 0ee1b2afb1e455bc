"""The in-memory music types every stage shares: notes in seconds, tracks, a score.

`midi_io` builds a `Score` from a file; encodings, statistics and rendering only ever see
these types, never pretty_midi or mido objects.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True)
class Note:
    """One sounding note; times in seconds, `end > start`."""

    pitch: int
    velocity: int
    start: float
    end: float


@dataclass(slots=True)
class Track:
    """The notes of one MIDI track (or one channel of a type-0 file), sorted by (start, pitch).

    `pedals` are the sustain-pedal (CC64 >= 64) intervals in seconds, kept apart so that an
    encoding decides whether to extend notes under the pedal.
    """

    name: str
    program: int
    is_drum: bool
    notes: list[Note]
    pedals: list[tuple[float, float]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TempoMap:
    """Maps seconds to quarter notes (beats) through the file's tempo changes.

    `times[i]` (seconds) is where segment i starts, `beats[i]` its position in quarter notes
    and `qpm[i]` its tempo. `times[0] == beats[0] == 0`.
    """

    times: tuple[float, ...] = (0.0,)
    beats: tuple[float, ...] = (0.0,)
    qpm: tuple[float, ...] = (120.0,)

    @classmethod
    def from_changes(cls, times: Sequence[float], qpm: Sequence[float]) -> TempoMap:
        """The map of tempo `qpm[i]` from second `times[i]` on (`times[0] == 0`, increasing)."""
        beats = [0.0]
        for i in range(1, len(times)):
            beats.append(beats[-1] + (times[i] - times[i - 1]) * qpm[i - 1] / 60.0)
        return cls(tuple(float(t) for t in times), tuple(beats), tuple(float(q) for q in qpm))

    @classmethod
    def from_beats(cls, beats: Sequence[float], qpm: Sequence[float]) -> TempoMap:
        """The map of tempo `qpm[i]` from quarter note `beats[i]` on (`beats[0] == 0`, increasing)."""
        times = [0.0]
        for i in range(1, len(beats)):
            times.append(times[-1] + (beats[i] - beats[i - 1]) * 60.0 / qpm[i - 1])
        return cls(tuple(times), tuple(float(b) for b in beats), tuple(float(q) for q in qpm))

    def to_beats(self, seconds: float) -> float:
        i = max(0, bisect.bisect_right(self.times, seconds) - 1)
        return self.beats[i] + (seconds - self.times[i]) * self.qpm[i] / 60.0

    def beats_of(self, seconds: Sequence[float] | np.ndarray) -> np.ndarray:
        """`to_beats` of many times at once, as a float64 array (the same values)."""
        t = np.asarray(seconds, dtype=np.float64)
        times = np.asarray(self.times)
        i = np.maximum(np.searchsorted(times, t, side="right") - 1, 0)
        return np.asarray(self.beats)[i] + (t - times[i]) * np.asarray(self.qpm)[i] / 60.0

    def to_seconds(self, beats: float) -> float:
        i = max(0, bisect.bisect_right(self.beats, beats) - 1)
        return self.times[i] + (beats - self.beats[i]) * 60.0 / self.qpm[i]


@dataclass(slots=True)
class Score:
    """A whole MIDI file: its tracks, tempo map and time signatures (seconds, num, den).

    `dropped_notes` counts zero-length notes the reader left out. `ticks_per_beat` is the
    resolution of the file it was read from (None: not read from one, or an SMPTE file): the
    writer keeps it, so notes passed through unchanged land on their own ticks again.
    """

    tracks: list[Track]
    tempo_map: TempoMap = field(default_factory=TempoMap)
    time_signatures: list[tuple[float, int, int]] = field(default_factory=list)
    end_time: float = 0.0
    source: str = ""
    dropped_notes: int = 0
    ticks_per_beat: int | None = None

    def note_count(self) -> int:
        return sum(len(t.notes) for t in self.tracks)

    def after(self, seconds: float) -> Score:
        """The music from `seconds` on, moved to start at 0: notes starting there or later,
        the tempo and meter in force there and their later changes."""
        def moved(t: float) -> float:
            return max(0.0, t - seconds)

        tracks = self._tracks_retimed(moved, since=seconds)
        tempo = self.tempo_map
        first = max(0, bisect.bisect_right(tempo.times, seconds) - 1)
        tempo_map = TempoMap.from_changes([0.0, *map(moved, tempo.times[first + 1:])], tempo.qpm[first:])
        signatures = sorted(self.time_signatures)
        at = [s for s in signatures if s[0] <= seconds][-1:] + [s for s in signatures if s[0] > seconds]
        return Score(tracks, tempo_map, [(moved(t), n, d) for t, n, d in at], moved(self.end_time),
                     self.source, self.dropped_notes, self.ticks_per_beat)

    def with_tempo_scaled(self, factor: float) -> Score:
        """The same music with every tempo times `factor` (beats unchanged, seconds / factor)."""
        def at(seconds: float) -> float:
            return seconds / factor

        tracks = self._tracks_retimed(at)
        tempo = self.tempo_map
        return Score(tracks, TempoMap(tuple(map(at, tempo.times)), tempo.beats, tuple(q * factor for q in tempo.qpm)),
                     [(at(t), num, den) for t, num, den in self.time_signatures], at(self.end_time),
                     self.source, self.dropped_notes, self.ticks_per_beat)

    def transposed(self, semitones: int) -> Score:
        """The same music `semitones` higher (lower when negative), drums unchanged; a note
        the shift would take outside MIDI's 0..127 moves back by whole octaves."""
        def moved(pitch: int) -> int:
            pitch += semitones
            if pitch > 127:
                return pitch - 12 * math.ceil((pitch - 127) / 12)
            return pitch + 12 * math.ceil(-pitch / 12) if pitch < 0 else pitch

        tracks = [t if t.is_drum else Track(t.name, t.program, t.is_drum,
                                            [Note(moved(n.pitch), n.velocity, n.start, n.end) for n in t.notes],
                                            list(t.pedals)) for t in self.tracks]
        return Score(tracks, self.tempo_map, list(self.time_signatures), self.end_time, self.source,
                     self.dropped_notes, self.ticks_per_beat)

    def _tracks_retimed(self, at, since: float = -math.inf) -> list[Track]:
        """New tracks with every note and pedal time `t` as `at(t)`: the notes starting at `since`
        or later, the pedals still down after it."""
        return [Track(t.name, t.program, t.is_drum,
                      [Note(n.pitch, n.velocity, at(n.start), at(n.end)) for n in t.notes if n.start >= since],
                      [(at(down), at(up)) for down, up in t.pedals if up > since]) for t in self.tracks]
