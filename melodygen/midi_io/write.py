"""Writing: tracks or notes (times in seconds) -> a type-1 MIDI file, with mido, atomically."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from melodygen.atomic import atomic_write
from melodygen.errors import OutputError
from melodygen.midi_io.scan import DRUM_CHANNEL
from melodygen.notes import Note, Track

WRITE_TICKS_PER_BEAT = 960


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
