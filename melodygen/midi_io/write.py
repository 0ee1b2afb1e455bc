"""Writing: a `Score` or notes (times in seconds) -> a type-1 MIDI file, with mido, atomically.

Seconds become ticks through the score's tempo map (seconds -> beats -> ticks), so a score read
from a file, or decoded from an encoding that keeps tempo changes, is written with its tempo
and time-signature changes where they were. A score read from a file is written at that file's
resolution (`Score.ticks_per_beat`), so its notes come back on their own ticks (given music:
`sample --accompany/--infill`); any other at `WRITE_TICKS_PER_BEAT`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from melodygen.atomic import atomic_write, scratch_folder
from melodygen.errors import OutputError
from melodygen.midi_io.scan import DRUM_CHANNEL
from melodygen.notes import Note, Score, TempoMap, Track

WRITE_TICKS_PER_BEAT = 960
_MAX_TEMPO_US = 0xFFFFFF  # microseconds per quarter note: MIDI stores 3 bytes


def _channel_for(index: int, is_drum: bool) -> int:
    """Drums on channel 10; other tracks on channels 1..16 in turn, skipping 10."""
    if is_drum:
        return DRUM_CHANNEL
    channel = index % 15
    return channel + 1 if channel >= DRUM_CHANNEL else channel


def _timed_messages(track: Track, channel: int, tick_of) -> list[tuple]:
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
        start = tick_of(note.start)
        end = max(tick_of(note.end), start + 1)
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
            timed.append((tick_of(seconds), order,
                          mido.Message("control_change", channel=channel, control=64, value=value)))
    timed.sort(key=lambda item: (item[0], item[1]))
    return timed


def _midi_track(track: Track, index: int, tick_of):
    import mido

    channel = _channel_for(index, track.is_drum)
    name = track.name.encode("utf-8").decode("latin-1")  # mido writes latin-1: UTF-8 bytes
    out = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0),
                          mido.Message("program_change", channel=channel, program=track.program)])
    now = 0
    for tick, _, message in _timed_messages(track, channel, tick_of):
        out.append(message.copy(time=tick - now))
        now = tick
    return out


def _conductor_track(score: Score, tick_of):
    """Track 0: every tempo change, every time signature (4/4 when the score has none) and an
    end-of-track at the score's `end_time`, so a piece of N whole bars lasts N bars."""
    import mido

    timed = [(tick_of(seconds), 0, mido.MetaMessage("set_tempo", tempo=round(6e7 / qpm)))
             for seconds, qpm in zip(score.tempo_map.times, score.tempo_map.qpm)]
    signatures = score.time_signatures or [(0.0, 4, 4)]
    timed += [(tick_of(seconds), 1, mido.MetaMessage("time_signature", numerator=num, denominator=den))
              for seconds, num, den in signatures]
    timed.sort(key=lambda item: (item[0], item[1]))
    out, now = mido.MidiTrack(), 0
    for tick, _, message in timed:
        out.append(message.copy(time=tick - now))
        now = tick
    out.append(mido.MetaMessage("end_of_track", time=max(0, tick_of(score.end_time) - now)))
    return out


def write_score(score: Score, path: str | os.PathLike) -> Path:
    """Writes a score (times in seconds) as a type-1 MIDI file, atomically.

    Track 0 holds the tempo map and time signatures; each Track gets its own MIDI track with its
    name, a program change, its channel (drums on 10, others in turn) and its pedals. Ticks come
    from the score's beats: at the resolution of the file it was read from (`ticks_per_beat`), so
    its notes keep their ticks, else at 960 per beat, where beat grids (up to 96 steps) fall on
    whole ticks. Tempos are stored as whole microseconds per quarter note, so a tempo such as
    169.7 qpm plays a few microseconds per beat off the score's seconds. A tempo slower than MIDI
    can store (3.58 qpm) is an `OutputError`. Returns the path written.
    """
    import mido

    path = Path(path)
    slow = [q for q in score.tempo_map.qpm if 6e7 / q > _MAX_TEMPO_US]
    if slow:
        raise OutputError(f"{path}: a tempo of {min(slow):.3g} qpm is slower than a MIDI file can store "
                          f"({6e7 / _MAX_TEMPO_US:.2f} qpm)")

    ticks_per_beat = score.ticks_per_beat or WRITE_TICKS_PER_BEAT

    def tick_of(seconds: float) -> int:  # through the score's own beats: notes stay on the grid
        return round(score.tempo_map.to_beats(seconds) * ticks_per_beat)

    midi = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    midi.tracks.append(_conductor_track(score, tick_of))
    midi.tracks += [_midi_track(t, i, tick_of) for i, t in enumerate(score.tracks)]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{path.parent}: cannot create the folder ({exc.strerror or exc})") from None
    with atomic_write(path) as file:
        midi.save(file=file)
    return path


def write_midi(notes: Sequence[Note], path: str | os.PathLike, *, qpm: float = 120.0,
               program: int = 0, track_name: str = "melodygen", is_drum: bool = False) -> Path:
    """Writes notes (seconds) as a one-instrument type-1 MIDI file at a constant `qpm`, in 4/4,
    atomically (see write_score)."""
    notes = list(notes)
    score = Score([Track(track_name, program, is_drum, notes)], TempoMap(qpm=(qpm,)),
                  [(0.0, 4, 4)], end_time=max((n.end for n in notes), default=0.0))
    return write_score(score, path)


def to_pretty_midi(score: Score):
    """`score` as a `pretty_midi.PrettyMIDI`, read from the bytes `write_score` writes."""
    import pretty_midi

    with scratch_folder("midi") as tmp:
        return pretty_midi.PrettyMIDI(str(write_score(score, tmp / "score.mid")))
