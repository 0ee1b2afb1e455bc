"""Reading: a MIDI file -> `Score`, with notes and pedals in seconds.

The scanner (`midi_io.scan`) gives each track's kept events; here note-ons are paired with
note-offs per (track, channel), and ticks become seconds through a tempo map built over all
tracks. The notes equal pretty_midi's on real corpora (tests/test_midi_io.py), with two
documented differences where pretty_midi loses or duplicates music: a note still open when its
track ends is closed there (pretty_midi drops it), and a second note-on of a sounding pitch on
the same channel ends the earlier note at the new onset (pretty_midi lets both run to the next
note-off).
"""

from __future__ import annotations

import os
from bisect import bisect_right
from pathlib import Path

from melodygen.errors import MusicTooLongError
from melodygen.limits import ReadLimits
from melodygen.midi_io.scan import DRUM_CHANNEL, NAME, NOTE_OFF, NOTE_ON, PEDAL, PROGRAM, TEMPO, TIME_SIG, scan_file
from melodygen.notes import Note, Score, TempoMap, Track

# ----------------------------------------------------------------------------- notes per channel


class _Channel:
    """Pairs note-ons with note-offs and pedal downs with ups on one channel of one track.

    Ticks throughout. A note-on of a pitch already sounding ends the earlier note there. As in
    pretty_midi, a note-off at the very tick its note started keeps that note open when this
    note-on just ended an earlier note (the off is that note's); otherwise the note has zero
    length and is dropped (counted in `dropped`).
    """

    __slots__ = ("open", "notes", "pedals", "pedal_down", "program", "dropped")

    def __init__(self) -> None:
        self.open: dict[int, tuple[int, int, bool]] = {}  # pitch -> (start, velocity, replaced)
        self.notes: list[tuple[int, int, int, int]] = []  # (start, end, pitch, velocity)
        self.pedals: list[tuple[int, int]] = []
        self.pedal_down: int | None = None
        self.program: int | None = None
        self.dropped = 0

    def note_on(self, tick: int, pitch: int, velocity: int) -> None:
        earlier = self.open.get(pitch)
        replaced = False
        if earlier is not None:
            if earlier[0] < tick:
                self.notes.append((earlier[0], tick, pitch, earlier[1]))
                replaced = True
            else:
                self.dropped += 1
        self.open[pitch] = (tick, velocity, replaced)

    def note_off(self, tick: int, pitch: int) -> None:
        sounding = self.open.pop(pitch, None)
        if sounding is None:
            return  # a stray note-off
        start, velocity, replaced = sounding
        if start < tick:
            self.notes.append((start, tick, pitch, velocity))
        elif replaced:
            self.open[pitch] = (start, velocity, False)
        else:
            self.dropped += 1

    def pedal(self, tick: int, value: int) -> None:
        if value >= 64 and self.pedal_down is None:
            self.pedal_down = tick
        elif value < 64 and self.pedal_down is not None:
            if tick > self.pedal_down:
                self.pedals.append((self.pedal_down, tick))
            self.pedal_down = None

    def finish(self, end_tick: int) -> None:
        """Closes notes and pedals still open when the track ends."""
        for pitch in list(self.open):
            self.note_off(end_tick, pitch)
        self.pedal(end_tick, 0)


def _channels(events: list[tuple], end_tick: int) -> dict[int, _Channel]:
    channels: dict[int, _Channel] = {}
    for tick, kind, channel, a, b in events:
        if kind > PROGRAM:
            continue
        state = channels.get(channel)
        if state is None:
            state = channels[channel] = _Channel()
        if kind == NOTE_ON:
            state.note_on(tick, a, b)
        elif kind == NOTE_OFF:
            state.note_off(tick, a)
        elif kind == PEDAL:
            state.pedal(tick, a)
        elif state.program is None:
            state.program = a
    for state in channels.values():
        state.finish(end_tick)
    return channels


# ----------------------------------------------------------------------------- time


def _tempo_changes(tracks: list[list[tuple]]) -> list[tuple[int, float]]:
    """(tick, qpm) from every track's set_tempo events; 120 qpm until the first one.

    At one tick the last event wins; a change to the tempo already in force is dropped.
    """
    found = sorted(((e[0], 6e7 / e[3]) for events in tracks for e in events if e[1] == TEMPO),
                   key=lambda change: change[0])
    changes = [(0, 120.0)]
    for tick, qpm in found:
        if tick == changes[-1][0]:
            changes[-1] = (tick, qpm)
        elif qpm != changes[-1][1]:
            changes.append((tick, qpm))
    return changes


class _Clock:
    """Ticks -> seconds. Computed as pretty_midi does, so that times agree to the last bit."""

    def __init__(self, division: int, changes: list[tuple[int, float]]) -> None:
        if division & 0x8000:  # SMPTE: frames per second and ticks per frame; tempo-free
            fps = 256 - (division >> 8)
            fps = 29.97 if fps == 29 else fps
            self.ticks, self.seconds, self.scales = [0], [0.0], [1.0 / (fps * (division & 0xFF))]
            return
        self.ticks, self.seconds, self.scales = [], [], []
        for tick, qpm in changes:
            seconds = self(tick) if self.ticks else 0.0
            self.ticks.append(tick)
            self.seconds.append(seconds)
            self.scales.append(60.0 / (qpm * division))

    def __call__(self, tick: int) -> float:
        i = bisect_right(self.ticks, tick) - 1
        return self.seconds[i] + self.scales[i] * (tick - self.ticks[i])

    def convert(self, ticks: list[int]) -> list[float]:
        """Many ticks at once; the common single-tempo case skips the search."""
        if len(self.ticks) == 1:
            scale = self.scales[0]
            return [scale * tick for tick in ticks]
        return [self(tick) for tick in ticks]


def _tempo_map(changes: list[tuple[int, float]], clock: _Clock) -> TempoMap:
    return TempoMap.from_changes([clock(tick) for tick, _ in changes], [q for _, q in changes])


def _time_signatures(tracks: list[list[tuple]], clock: _Clock) -> list[tuple[float, int, int]]:
    """(seconds, numerator, denominator) from all tracks; at one tick the last one wins."""
    found = sorted(((e[0], e[3], e[4]) for events in tracks for e in events if e[1] == TIME_SIG),
                   key=lambda signature: signature[0])
    by_tick: dict[int, tuple[int, int]] = {tick: (num, den) for tick, num, den in found}
    signatures: list[tuple[float, int, int]] = []
    for tick, (num, den) in by_tick.items():
        if not signatures or signatures[-1][1:] != (num, den):
            signatures.append((clock(tick), num, den))
    return signatures


# ----------------------------------------------------------------------------- reading


def _track_name(events: list[tuple]) -> str:
    return next((e[3] for e in events if e[1] == NAME), "")


def _make_track(name: str, channel: int, state: _Channel, clock: _Clock) -> Track:
    state.notes.sort(key=lambda n: (n[0], n[2]))
    starts = clock.convert([n[0] for n in state.notes])
    ends = clock.convert([n[1] for n in state.notes])
    notes = [Note(n[2], n[3], start, end) for n, start, end in zip(state.notes, starts, ends)]
    pedals = [(clock(down), clock(up)) for down, up in state.pedals]
    return Track(name, state.program or 0, channel == DRUM_CHANNEL, notes, pedals)


def read_score(path: str | os.PathLike, *, include_drums: bool = False,
               limits: ReadLimits | None = None) -> Score:
    """Reads a MIDI file (type 0, 1 or 2; type 2 is read like type 1) into a `Score`.

    Each (MIDI track, channel) pair with notes becomes one `Track`, in track then channel
    order, named after the MIDI track, with the channel's first program change (default 0).
    Drum tracks (channel 10) are left out unless `include_drums`. Zero-length notes are
    dropped and counted in `Score.dropped_notes`. `end_time` is the end of the last note or
    pedal of the tracks returned, or the last tempo / time-signature change if later. A file
    without notes gives a Score without tracks. Unreadable files raise `MidiReadError("<path>: <reason>")`;
    a file over `limits` (default: `ReadLimits.from_env()`) raises `MusicTooLongError`, a subclass.
    """
    path = Path(path)
    limits = limits or ReadLimits.from_env()
    division, tracks, last_ticks = scan_file(path, limits)
    changes = _tempo_changes(tracks)
    clock = _Clock(division, changes)
    score = Score([], _tempo_map(changes, clock), _time_signatures(tracks, clock),
                  source=str(path), ticks_per_beat=None if division & 0x8000 else division)
    ends = [score.tempo_map.times[-1]] + [t for t, _, _ in score.time_signatures]
    for events, last_tick in zip(tracks, last_ticks):
        name = _track_name(events)
        for channel, state in sorted(_channels(events, last_tick).items()):
            if not state.notes or (channel == DRUM_CHANNEL and not include_drums):
                continue
            track = _make_track(name, channel, state, clock)
            score.tracks.append(track)
            score.dropped_notes += state.dropped
            ends.extend([max(n.end for n in track.notes)] + [up for _, up in track.pedals])
    score.end_time = max(ends)
    problem = limits.minutes_problem(score.end_time, score.tempo_map.to_beats(score.end_time))
    if problem:
        raise MusicTooLongError(f"{path}: {problem}")
    return score
