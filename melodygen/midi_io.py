"""Reading and writing MIDI files: the only module that knows the MIDI format (and mido).

`read_score` parses Standard MIDI Files with a small scanner written for speed: it decodes
only the events melodygen uses (notes, program changes, sustain pedal, tempo, time
signatures, track names) straight from the bytes, 3-4x faster than building mido
messages. Ticks become seconds through a tempo map built over all tracks. The notes equal
pretty_midi's on real corpora (tests/test_midi_io.py), with two documented differences where
pretty_midi loses or duplicates music: a note still open when its track ends is closed there
(pretty_midi drops it), and a second note-on of a sounding pitch on the same channel ends
the earlier note at the new onset (pretty_midi lets both run to the next note-off).

`write_midi` / `write_score` write type-1 files with mido, atomically.
"""

from __future__ import annotations

import os
import struct
from bisect import bisect_right
from collections.abc import Sequence
from pathlib import Path

from melodygen.atomic import atomic_write
from melodygen.errors import MidiReadError, OutputError
from melodygen.notes import Note, Score, TempoMap, Track

DRUM_CHANNEL = 9  # MIDI channel 10, counted from 0
WRITE_TICKS_PER_BEAT = 960

# Event kinds kept by the scanner, as (tick, kind, channel, a, b) tuples.
_NOTE_ON, _NOTE_OFF, _PEDAL, _PROGRAM, _TEMPO, _TIME_SIG, _NAME = range(7)
# Data bytes of system common / real-time messages (invalid in files, but skippable).
_SYSTEM_LENGTH = {0xF1: 1, 0xF2: 2, 0xF3: 1, 0xF6: 0, 0xF8: 0, 0xFA: 0, 0xFB: 0, 0xFC: 0, 0xFE: 0}


class _Corrupt(Exception):
    """Raised inside the scanner; `read_score` turns it into `MidiReadError` naming the file."""


# ----------------------------------------------------------------------------- scanning


def _chunks(data: bytes) -> tuple[int, list[tuple[int, int]]]:
    """(division, [(start, end) of each MTrk chunk]) of a whole file's bytes."""
    if not data:
        raise _Corrupt("empty file (0 bytes)")
    # The header may follow a wrapper: RIFF (.rmi) or a MacBinary header.
    offset = data.find(b"MThd", 0, 1024)
    if offset < 0:
        raise _Corrupt("not a MIDI file (no MThd header)")
    if len(data) < offset + 14:
        raise _Corrupt("truncated MIDI header")
    header_size, fmt, n_tracks, division = struct.unpack(">IHHH", data[offset + 4:offset + 14])
    if fmt > 2:
        raise _Corrupt(f"unknown MIDI format {fmt}")
    if division == 0 or division & 0x80FF == 0x8000:
        raise _Corrupt("time division of 0 ticks per beat (or per SMPTE frame)")
    pos, tracks = offset + 8 + header_size, []
    while len(tracks) < n_tracks:
        if pos + 8 > len(data):
            raise _Corrupt(f"truncated: header announces {n_tracks} tracks, found {len(tracks)}")
        size = int.from_bytes(data[pos + 4:pos + 8], "big")
        start, end = pos + 8, pos + 8 + size
        if end > len(data):
            raise _Corrupt(f"truncated inside track {len(tracks)}")
        if data[pos:pos + 4] == b"MTrk":  # other chunk types are skipped, as the standard says
            tracks.append((start, end))
        pos = end
    return division, tracks


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    while True:
        byte = data[pos]
        pos += 1
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, pos


def _text(body: bytes) -> str:
    """MIDI text has no declared encoding: UTF-8 when it decodes, else latin-1 (never fails)."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("latin-1")


def _scan_meta(data: bytes, pos: int, tick: int, events: list) -> int:
    """Keeps tempo, time-signature and track-name meta events; returns the next position."""
    meta_type = data[pos]
    length, pos = _varint(data, pos + 1)
    body = data[pos:pos + length]
    if meta_type == 0x51 and length >= 3:
        tempo = (body[0] << 16) | (body[1] << 8) | body[2]
        if tempo:  # a zero tempo would mean infinitely fast; ignore it
            events.append((tick, _TEMPO, 0, tempo, 0))
    elif meta_type == 0x58 and length >= 2:
        events.append((tick, _TIME_SIG, 0, body[0], 2 ** body[1]))
    elif meta_type == 0x03:
        events.append((tick, _NAME, 0, _text(body), 0))
    return pos + length


def _scan_track(data: bytes, pos: int, end: int) -> tuple[list[tuple], int]:
    """The kept events of one MTrk chunk, in file order, and the track's last tick.

    One flat loop for speed (this is the hot path of `prepare`). Running status is kept
    across meta and sysex events; data bytes above 127 are clipped to 127.
    """
    events: list[tuple] = []
    append = events.append
    tick = status = 0
    while pos < end:
        byte = data[pos]
        pos += 1
        delta = byte & 0x7F
        while byte & 0x80:
            byte = data[pos]
            pos += 1
            delta = (delta << 7) | (byte & 0x7F)
        tick += delta
        byte = data[pos]
        if byte & 0x80:
            pos += 1
            if byte < 0xF0:
                status = byte
        elif status:
            byte = status
        else:
            raise _Corrupt("running status without a status byte")
        if byte < 0xF0:
            kind = byte & 0xF0
            if kind == 0xC0 or kind == 0xD0:
                if kind == 0xC0:
                    append((tick, _PROGRAM, byte & 0x0F, min(data[pos], 127), 0))
                pos += 1
                continue
            a, b = data[pos], data[pos + 1]
            pos += 2
            if (a | b) > 127:
                a, b = min(a, 127), min(b, 127)
            if kind == 0x90:
                append((tick, _NOTE_ON if b else _NOTE_OFF, byte & 0x0F, a, b))
            elif kind == 0x80:
                append((tick, _NOTE_OFF, byte & 0x0F, a, 0))
            elif kind == 0xB0 and a == 64:
                append((tick, _PEDAL, byte & 0x0F, b, 0))
        elif byte == 0xFF:
            pos = _scan_meta(data, pos, tick, events)
        elif byte == 0xF0 or byte == 0xF7:
            length, pos = _varint(data, pos)
            pos += length
        elif byte in _SYSTEM_LENGTH:
            pos += _SYSTEM_LENGTH[byte]
        else:
            raise _Corrupt(f"undefined status byte 0x{byte:02x}")
    if pos != end:
        raise _Corrupt("an event runs past the end of its track")
    return events, tick


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
        if kind > _PROGRAM:
            continue
        state = channels.get(channel)
        if state is None:
            state = channels[channel] = _Channel()
        if kind == _NOTE_ON:
            state.note_on(tick, a, b)
        elif kind == _NOTE_OFF:
            state.note_off(tick, a)
        elif kind == _PEDAL:
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
    found = sorted(((e[0], 6e7 / e[3]) for events in tracks for e in events if e[1] == _TEMPO),
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
    times = [clock(tick) for tick, _ in changes]
    qpm = [q for _, q in changes]
    beats = [0.0]
    for i in range(1, len(changes)):
        beats.append(beats[-1] + (times[i] - times[i - 1]) * qpm[i - 1] / 60.0)
    return TempoMap(tuple(times), tuple(beats), tuple(qpm))


def _time_signatures(tracks: list[list[tuple]], clock: _Clock) -> list[tuple[float, int, int]]:
    """(seconds, numerator, denominator) from all tracks; at one tick the last one wins."""
    found = sorted(((e[0], e[3], e[4]) for events in tracks for e in events if e[1] == _TIME_SIG),
                   key=lambda signature: signature[0])
    by_tick: dict[int, tuple[int, int]] = {tick: (num, den) for tick, num, den in found}
    signatures: list[tuple[float, int, int]] = []
    for tick, (num, den) in by_tick.items():
        if not signatures or signatures[-1][1:] != (num, den):
            signatures.append((clock(tick), num, den))
    return signatures


# ----------------------------------------------------------------------------- reading


def _track_name(events: list[tuple]) -> str:
    return next((e[3] for e in events if e[1] == _NAME), "")


def _make_track(name: str, channel: int, state: _Channel, clock: _Clock) -> Track:
    state.notes.sort(key=lambda n: (n[0], n[2]))
    starts = clock.convert([n[0] for n in state.notes])
    ends = clock.convert([n[1] for n in state.notes])
    notes = [Note(n[2], n[3], start, end) for n, start, end in zip(state.notes, starts, ends)]
    pedals = [(clock(down), clock(up)) for down, up in state.pedals]
    return Track(name, state.program or 0, channel == DRUM_CHANNEL, notes, pedals)


def _scan_file(path: Path) -> tuple[int, list[list[tuple]], list[int]]:
    """(division, kept events per track, last tick per track); errors name the file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MidiReadError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        division, chunks = _chunks(data)
        scanned = [_scan_track(data, start, end) for start, end in chunks]
    except _Corrupt as exc:
        raise MidiReadError(f"{path}: {exc}") from None
    except IndexError:
        raise MidiReadError(f"{path}: truncated (the data ends inside an event)") from None
    return division, [events for events, _ in scanned], [tick for _, tick in scanned]


def read_score(path: str | os.PathLike, *, include_drums: bool = False) -> Score:
    """Reads a MIDI file (type 0, 1 or 2; type 2 is read like type 1) into a `Score`.

    Each (MIDI track, channel) pair with notes becomes one `Track`, in track then channel
    order, named after the MIDI track, with the channel's first program change (default 0).
    Drum tracks (channel 10) are left out unless `include_drums`. Zero-length notes are
    dropped and counted in `Score.dropped_notes`. `end_time` is the end of the last note or
    pedal of the tracks returned, or the last tempo / time-signature change if later. A file without notes gives a
    Score without tracks. Unreadable files raise `MidiReadError("<path>: <reason>")`.
    """
    path = Path(path)
    division, tracks, last_ticks = _scan_file(path)
    changes = _tempo_changes(tracks)
    clock = _Clock(division, changes)
    score = Score([], _tempo_map(changes, clock), _time_signatures(tracks, clock),
                  source=str(path))
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
    return score


# ----------------------------------------------------------------------------- writing


def _channel_for(index: int, is_drum: bool) -> int:
    """Drums on channel 10; other tracks on channels 1..16 in turn, skipping 10."""
    if is_drum:
        return DRUM_CHANNEL
    channel = index % 15
    return channel + 1 if channel >= DRUM_CHANNEL else channel


def _timed_messages(track: Track, channel: int, ticks_per_second: float) -> list[tuple]:
    """(tick, order, message) for a track's notes and pedals, in absolute ticks.

    At one tick, note-offs come first and note-ons last. A note struck again before its
    previous note ended cuts that note at the new onset, as `read_score` would read it.
    """
    import mido

    timed: list[tuple] = []
    last_off: dict[int, int] = {}  # pitch -> index in `timed` of its latest note_off
    for note in sorted(track.notes, key=lambda n: (n.start, n.pitch)):
        if not 0 <= note.pitch <= 127:
            raise ValueError(f"pitch {note.pitch} outside MIDI's 0..127 in {note}")
        start = round(note.start * ticks_per_second)
        end = max(round(note.end * ticks_per_second), start + 1)
        earlier = last_off.get(note.pitch)
        if earlier is not None and timed[earlier][0] > start:
            timed[earlier] = (start, *timed[earlier][1:])
        velocity = min(max(int(note.velocity), 1), 127)
        timed.append((start, 3, mido.Message("note_on", channel=channel, note=note.pitch,
                                             velocity=velocity)))
        last_off[note.pitch] = len(timed)
        timed.append((end, 0, mido.Message("note_off", channel=channel, note=note.pitch)))
    for down, up in track.pedals:
        for seconds, order, value in ((down, 2, 127), (up, 1, 0)):
            timed.append((round(seconds * ticks_per_second), order,
                          mido.Message("control_change", channel=channel, control=64, value=value)))
    timed.sort(key=lambda item: (item[0], item[1]))
    return timed


def _midi_track(track: Track, index: int, ticks_per_second: float):
    import mido

    channel = _channel_for(index, track.is_drum)
    name = track.name.encode("utf-8").decode("latin-1")  # mido writes latin-1: UTF-8 bytes
    out = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0),
                          mido.Message("program_change", channel=channel, program=track.program)])
    now = 0
    for tick, _, message in _timed_messages(track, channel, ticks_per_second):
        out.append(message.copy(time=tick - now))
        now = tick
    return out


def write_score(tracks: Sequence[Track], path: str | os.PathLike, *, qpm: float = 120.0) -> Path:
    """Writes tracks (times in seconds) as a type-1 MIDI file at a constant `qpm`, atomically.

    Track 0 holds the tempo and a 4/4 time signature; each Track gets its own MIDI track with
    its name, a program change and its pedals. Returns the path written.
    """
    import mido

    path = Path(path)
    tempo = round(6e7 / qpm)  # microseconds per quarter note, an integer in the file
    ticks_per_second = WRITE_TICKS_PER_BEAT * 1e6 / tempo
    midi = mido.MidiFile(type=1, ticks_per_beat=WRITE_TICKS_PER_BEAT)
    midi.tracks.append(mido.MidiTrack([
        mido.MetaMessage("set_tempo", tempo=tempo, time=0),
        mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0)]))
    midi.tracks += [_midi_track(t, i, ticks_per_second) for i, t in enumerate(tracks)]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{path.parent}: cannot create the folder ({exc.strerror or exc})") from None
    with atomic_write(path) as file:
        midi.save(file=file)
    return path


def write_midi(notes: Sequence[Note], path: str | os.PathLike, *, qpm: float = 120.0,
               program: int = 0, track_name: str = "melodygen", is_drum: bool = False) -> Path:
    """Writes notes (seconds) as a one-instrument type-1 MIDI file, atomically (see write_score)."""
    return write_score([Track(track_name, program, is_drum, list(notes))], path, qpm=qpm)
