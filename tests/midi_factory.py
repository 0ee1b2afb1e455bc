"""Builders of small MIDI files for tests, written with mido into a folder (use `tmp_path`).

Two layers:
- generic: `midi_file(path, tracks)` writes tracks given as lists of (absolute tick, mido
  message); `note_events(...)`, `message(...)`, `meta(...)` make those lists.
- named files for the edge cases real MIDI throws at a reader (tempo changes, type 0,
  velocity-0 note-offs, same-pitch overlaps, zero-length and unclosed notes, pedal, drums,
  empty, odd resolutions, a long piece) and corrupt files (zero bytes, random bytes,
  truncated, text). Each docstring says exactly what is in the file, in ticks and seconds,
  so tests can assert on it. Every builder returns the path it wrote.

Times: unless a docstring says otherwise, ticks_per_beat is 480 and the tempo 120 qpm, so
480 ticks = 0.5 s.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path

import mido

TPB = 480
Timed = tuple[int, mido.Message | mido.MetaMessage]


def message(tick: int, kind: str, **fields) -> Timed:
    """A channel message at an absolute tick, e.g. `message(0, "program_change", program=40)`."""
    return tick, mido.Message(kind, **fields)


def meta(tick: int, kind: str, **fields) -> Timed:
    """A meta message at an absolute tick, e.g. `meta(0, "set_tempo", tempo=500000)`."""
    return tick, mido.MetaMessage(kind, **fields)


def note_events(notes: Iterable[Sequence[int]], *, channel: int = 0,
                velocity_zero_off: bool = False) -> list[Timed]:
    """note_on/off pairs for (pitch, start_tick, end_tick[, velocity=80]) tuples, in order given.

    With `velocity_zero_off` the offs are note_on messages with velocity 0.
    """
    events: list[Timed] = []
    for pitch, start, end, *rest in notes:
        velocity = rest[0] if rest else 80
        events.append(message(start, "note_on", note=pitch, velocity=velocity, channel=channel))
        if velocity_zero_off:
            events.append(message(end, "note_on", note=pitch, velocity=0, channel=channel))
        else:
            events.append(message(end, "note_off", note=pitch, channel=channel))
    return events


def midi_file(path: Path, tracks: Sequence[Sequence[Timed]], *, ticks_per_beat: int = TPB,
              midi_type: int = 1) -> Path:
    """Writes tracks of (absolute tick, message) as a MIDI file; returns `path`.

    Events are sorted by tick, keeping the given order within a tick (so list a note-off
    before a note-on at the same tick when that is what you mean).
    """
    midi = mido.MidiFile(type=midi_type, ticks_per_beat=ticks_per_beat)
    for events in tracks:
        track = mido.MidiTrack()
        now = 0
        for tick, msg in sorted(events, key=lambda timed: timed[0]):
            track.append(msg.copy(time=tick - now))
            now = tick
        midi.tracks.append(track)
    midi.save(path)
    return path


def melody_notes(count: int, *, step: int = TPB, low: int = 60) -> list[tuple[int, int, int]]:
    """`count` back-to-back notes of `step` ticks climbing a C major scale from `low`."""
    scale = [0, 2, 4, 5, 7, 9, 11, 12]
    return [(low + scale[i % 8], i * step, (i + 1) * step) for i in range(count)]


# ----------------------------------------------------------------------------- valid, odd files


def simple_file(folder: Path, name: str = "simple.mid") -> Path:
    """Type 1, tempo track + one track "Melody" (program 0): 8 quarter notes, 60 62 64 65 67
    69 71 72, velocity 80, note i from i*0.5 s to (i+1)*0.5 s."""
    return midi_file(folder / name, [[meta(0, "set_tempo", tempo=500000)],
                                     [meta(0, "track_name", name="Melody"),
                                      *note_events(melody_notes(8))]])


def tempo_changes_file(folder: Path) -> Path:
    """Tempo and time-signature changes, the tempo events split over two tracks.

    Track 0: 120 qpm and 4/4 at tick 0; 3/4 at tick 1920; 240 qpm and 6/8 at tick 2880.
    Track 1 ("Melody", program 5): a 60 qpm tempo event at tick 960 and 8 quarter notes (as
    `simple_file`). Notes 0-1 last 0.5 s each (0..1 s); from tick 960 quarters last 1 s
    (note i spans (i-1)..i s for i = 2..5); from tick 2880 (5 s) 0.25 s: note 6 spans
    5..5.25 s, note 7 5.25..5.5 s. Tempo map: times (0, 1, 5) s, beats (0, 2, 6), qpm (120,
    60, 240). Time signatures: (0 s, 4, 4), (3 s, 3, 4), (5 s, 6, 8).
    """
    conductor = [meta(0, "set_tempo", tempo=500000), meta(0, "time_signature", numerator=4,
                                                           denominator=4),
                 meta(1920, "time_signature", numerator=3, denominator=4),
                 meta(2880, "set_tempo", tempo=250000),
                 meta(2880, "time_signature", numerator=6, denominator=8)]
    melody = [meta(0, "track_name", name="Melody"), message(0, "program_change", program=5),
              meta(960, "set_tempo", tempo=1000000), *note_events(melody_notes(8))]
    return midi_file(folder / "tempo_changes.mid", [conductor, melody])


def type0_file(folder: Path) -> Path:
    """Type 0, one track named "Band": channel 0 program 73 plays `melody_notes(4)` (pitches
    60 62 64 65, 0.5 s each), channel 1 program 33 plays pitch 36 from 0 to 2 s, channel 9
    (drums) plays pitch 42 at 0 and 1 s (0.25 s each)."""
    events = [meta(0, "track_name", name="Band"), meta(0, "set_tempo", tempo=500000),
              message(0, "program_change", program=73, channel=0),
              message(0, "program_change", program=33, channel=1),
              *note_events(melody_notes(4), channel=0),
              *note_events([(36, 0, 4 * TPB)], channel=1),
              *note_events([(42, 0, 240), (42, 960, 1200)], channel=9)]
    return midi_file(folder / "type0.mid", [events], midi_type=0)


def velocity_zero_file(folder: Path) -> Path:
    """Like `simple_file` but every note-off is a note_on with velocity 0."""
    return midi_file(folder / "velocity0.mid",
                     [[meta(0, "track_name", name="Melody"),
                       *note_events(melody_notes(8), velocity_zero_off=True)]])


def same_pitch_overlap_file(folder: Path) -> Path:
    """Pitch 60 struck at tick 0 (velocity 70) and again at tick 480 (velocity 90) before any
    note-off; note-offs at 960 and 1440. Read as 60 from 0 to 0.5 s (v70) and 60 from 0.5 to
    1 s (v90); the second note-off is stray."""
    events = [message(0, "note_on", note=60, velocity=70), message(480, "note_on", note=60,
                                                                   velocity=90),
              message(960, "note_off", note=60), message(1440, "note_off", note=60)]
    return midi_file(folder / "overlap.mid", [events])


def repeated_note_file(folder: Path) -> Path:
    """Pitch 64 at tick 0; at tick 480 a new note_on of 64 comes BEFORE the old note's off at
    the same tick; final off at 960. Read as 64 0..0.5 s and 64 0.5..1 s (as pretty_midi)."""
    events = [message(0, "note_on", note=64, velocity=80), message(480, "note_on", note=64,
                                                                   velocity=81),
              message(480, "note_off", note=64), message(960, "note_off", note=64)]
    return midi_file(folder / "repeated.mid", [events])


def zero_length_file(folder: Path) -> Path:
    """Three notes: 60 0..0.5 s, a zero-length 62 at tick 480 (on and off together), 64
    0.5..1 s. Read as 2 notes with 1 dropped."""
    return midi_file(folder / "zero_length.mid",
                     [note_events([(60, 0, 480), (62, 480, 480), (64, 480, 960)])])


def unclosed_note_file(folder: Path) -> Path:
    """Pitch 60 from 0 to 0.5 s; pitch 67 struck at 0.5 s and never released; the track ends
    (end_of_track) at tick 1920 = 2 s. Read as 67 closed at 2 s."""
    events = [*note_events([(60, 0, 480)]), message(480, "note_on", note=67, velocity=80),
              meta(1920, "end_of_track")]
    return midi_file(folder / "unclosed.mid", [events])


def pedal_file(folder: Path) -> Path:
    """One piano track ("Piano"): 60 0..0.5 s, 64 0.25..0.75 s, 67 1.5..2 s; sustain pedal
    (CC64) down at 0.5 s (value 100), a repeated down (127) at 0.75 s, up at 1 s (value 0);
    down at 1.75 s and never released (closed at track end, 3 s).
    Pedals: [(0.5, 1.0), (1.75, 3.0)]."""
    events = [meta(0, "track_name", name="Piano"),
              *note_events([(60, 0, 480), (64, 240, 720), (67, 1440, 1920)]),
              message(480, "control_change", control=64, value=100),
              message(720, "control_change", control=64, value=127),
              message(960, "control_change", control=64, value=0),
              message(1680, "control_change", control=64, value=127),
              meta(2880, "end_of_track")]
    return midi_file(folder / "pedal.mid", [events])


def melody_with_chords_file(folder: Path, name: str = "melody_with_chords.mid", notes: int = 16) -> Path:
    """Type 1, like a folk tune with its accompaniment: track "Melody" plays `melody_notes(notes)`
    (quarter notes up C major from 60) over track "Chords" on channel 1: held C major triads
    (48 52 55), two beats each, `notes // 2` of them."""
    triads = [(p, i * 2 * TPB, (i + 1) * 2 * TPB) for i in range(notes // 2) for p in (48, 52, 55)]
    return midi_file(folder / name, [[meta(0, "set_tempo", tempo=500000)],
                                     [meta(0, "track_name", name="Melody"), *note_events(melody_notes(notes))],
                                     [meta(0, "track_name", name="Chords"), *note_events(triads, channel=1)]])


def drums_file(folder: Path) -> Path:
    """Type 1: track "Drums" on channel 9 (pitches 36, 38, 42 at 0, 0.5, 1 s, 0.25 s each)
    and track "Bass" on channel 1 (pitch 40 from 0 to 1 s)."""
    drums = [meta(0, "track_name", name="Drums"),
             *note_events([(36, 0, 240), (38, 480, 720), (42, 960, 1200)], channel=9)]
    bass = [meta(0, "track_name", name="Bass"), *note_events([(40, 0, 960)], channel=1)]
    return midi_file(folder / "drums.mid", [drums, bass])


def drums_only_file(folder: Path) -> Path:
    """Type 1, one track: the drum notes of `drums_file` and nothing else."""
    return midi_file(folder / "drums_only.mid",
                     [note_events([(36, 0, 240), (38, 480, 720)], channel=9)])


def empty_file(folder: Path) -> Path:
    """A valid type-1 file with a tempo, a time signature and a named track, but no notes."""
    return midi_file(folder / "empty.mid",
                     [[meta(0, "set_tempo", tempo=600000),
                       meta(0, "time_signature", numerator=3, denominator=4)],
                      [meta(0, "track_name", name="Nothing"), meta(960, "end_of_track")]])


def resolution_file(folder: Path, ticks_per_beat: int) -> Path:
    """`simple_file`'s 8 notes (0.5 s each) at the given ticks_per_beat (1..32767)."""
    scale = ticks_per_beat / TPB
    notes = [(p, round(s * scale), round(e * scale)) for p, s, e in melody_notes(8)]
    path = folder / f"tpb{ticks_per_beat}.mid"
    return midi_file(path, [[meta(0, "set_tempo", tempo=500000), *note_events(notes)]],
                     ticks_per_beat=ticks_per_beat)


def multi_voice_file(folder: Path, names: Sequence[str] = ("Soprano", "Alto", "Tenor", "Bass"),
                     ) -> Path:
    """Bach-chorale layout: one track per voice, all on channel 0 and program 0.

    Voice i (named `names[i]`) holds pitch 72 - 7*i from 0 to 2 s, in 4 half-second notes.
    """
    tracks = [[meta(0, "track_name", name=name),
               *note_events([(72 - 7 * i, k * TPB, (k + 1) * TPB) for k in range(4)])]
              for i, name in enumerate(names)]
    return midi_file(folder / "voices.mid", tracks)


def long_file(folder: Path, n_notes: int = 30_000) -> Path:
    """An hour-long piece: `n_notes` back-to-back notes of 120 ticks (0.125 s): 30,000 notes
    last 3,750 s. Pitches cycle through a C major scale from 48, velocity 80.

    Written as raw bytes (type 0, one track): mido needs seconds to build 60,000 messages.
    """
    body = bytearray()
    for pitch, _, _ in melody_notes(n_notes, step=120, low=48):
        body += bytes([0, 0x90, pitch, 80, 120, 0x80, pitch, 0])  # delta, status, data...
    return one_track_file(folder / "long.mid", body)


def one_track_file(path: Path, body: bytes, *, ticks_per_beat: int = TPB) -> Path:
    """A type-0 file of one track whose events are the raw bytes `body` (end of track added)."""
    body = bytes(body) + b"\x00\xff\x2f\x00"
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, ticks_per_beat)
    path.write_bytes(header + b"MTrk" + struct.pack(">I", len(body)) + body)
    return path


def vlq(value: int) -> bytes:
    """`value` as a MIDI variable-length quantity (at most 0x0FFFFFFF: four bytes)."""
    out = [value & 0x7F]
    while value > 0x7F:
        value >>= 7
        out.append(0x80 | (value & 0x7F))
    return bytes(reversed(out))


# ----------------------------------------------------------------------------- resource bombs
# A few bytes describing hours or years of music, or more events than any piece has: the
# reader must refuse them before anything in proportion to their length exists.


def huge_deltas_file(folder: Path, n_notes: int = 200) -> Path:
    """`n_notes` quarter notes of pitch 60, each after a delta of 0x0FFFFFFF ticks (about 77
    hours at 480 ticks per beat and 120 qpm): 2.4 KB describing 15,000 hours."""
    note = bytes([0x90, 60, 80]) + vlq(TPB) + bytes([0x80, 60, 0])
    return one_track_file(folder / "huge_deltas.mid", (vlq(0x0FFFFFFF) + note) * n_notes)


def long_silence_file(folder: Path, minutes: float = 600.0, *, name: str = "long_silence.mid") -> Path:
    """Four quarter notes (60 62 64 65, 2 s), `minutes` of silence, then pitch 67 for a quarter
    note, at 120 qpm: 2 + minutes * 60 + 0.5 seconds in all."""
    body = b"".join(b"\x00" + bytes([0x90, p, 80]) + vlq(TPB) + bytes([0x80, p, 0]) for p in (60, 62, 64, 65))
    gap = round(minutes * 60 * 2 * TPB)  # two beats a second
    while gap > 0x0FFFFFFF:  # a delta holds at most 0x0FFFFFFF ticks: pad with empty text events
        body += vlq(0x0FFFFFFF) + b"\xff\x01\x00"
        gap -= 0x0FFFFFFF
    body += vlq(gap) + bytes([0x90, 67, 80]) + vlq(TPB) + bytes([0x80, 67, 0])
    return one_track_file(folder / name, body)


def fast_tempo_file(folder: Path, quarters: int = 20_000) -> Path:
    """A tempo of 60,000 qpm (1,000 microseconds a quarter note): pitch 60 for a quarter note,
    `quarters` quarter notes of silence, pitch 64 for a quarter note: by default a 20-second
    piece of 20,002 beats."""
    body = b"\x00\xff\x51\x03" + (1000).to_bytes(3, "big")
    for delta, pitch in ((0, 60), (quarters * TPB, 64)):
        body += vlq(delta) + bytes([0x90, pitch, 80]) + vlq(TPB) + bytes([0x80, pitch, 0])
    return one_track_file(folder / "fast_tempo.mid", body)


def many_events_file(folder: Path, n_notes: int, *, name: str = "many_events.mid") -> Path:
    """`n_notes` notes of one tick each, back to back (2 * `n_notes` MIDI events, 8 bytes a
    note), cycling through 24 pitches from 48."""
    body = b"".join(bytes([1, 0x90, 48 + i % 24, 80, 1, 0x80, 48 + i % 24, 0]) for i in range(n_notes))
    return one_track_file(folder / name, body)


# ----------------------------------------------------------------------------- corrupt files


def zero_byte_file(folder: Path) -> Path:
    """An empty file named .mid."""
    path = folder / "zero.mid"
    path.write_bytes(b"")
    return path


def random_bytes_file(folder: Path, size: int = 2000, seed: int = 0) -> Path:
    """`size` random bytes (seeded) named .mid."""
    path = folder / "random.mid"
    path.write_bytes(random.Random(seed).randbytes(size))
    return path


def truncated_file(folder: Path, source: Path | None = None, keep: float = 0.6) -> Path:
    """The first `keep` fraction of `source` (default: a fresh `simple_file`): cut mid-track."""
    source = source or simple_file(folder, "whole.mid")
    data = source.read_bytes()
    path = folder / "truncated.mid"
    path.write_bytes(data[:int(len(data) * keep)])
    return path


def text_file(folder: Path) -> Path:
    """A plain text file named .mid."""
    path = folder / "readme.mid"
    path.write_text("This is not a MIDI file, just some text.\n")
    return path


def header_only_file(folder: Path) -> Path:
    """A valid MThd header that announces one track, and no track chunk."""
    path = folder / "header_only.mid"
    path.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0")
    return path


def long_delta_file(folder: Path) -> Path:
    """A one-track file whose second event's delta time is a 5-byte variable-length quantity
    (the standard allows 4): mido and pretty_midi read it; it is corrupt."""
    track = (b"\x00\x90\x3c\x40"  # delta 0, note on C4
             + b"\x80\x80\x80\x80\x01\x80\x3c\x00"  # 5-byte delta, note off
             + b"\x00\xff\x2f\x00")  # end of track
    path = folder / "long_delta.mid"
    path.write_bytes(b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0"
                     + b"MTrk" + len(track).to_bytes(4, "big") + track)
    return path


def long_meta_length_file(folder: Path) -> Path:
    """A one-track file with a track-name meta event whose length is a 5-byte quantity."""
    track = b"\x00\xff\x03\x80\x80\x80\x80\x02ab\x00\xff\x2f\x00"
    path = folder / "long_meta_length.mid"
    path.write_bytes(b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0"
                     + b"MTrk" + len(track).to_bytes(4, "big") + track)
    return path


CORRUPT_BUILDERS = (zero_byte_file, random_bytes_file, truncated_file, text_file,
                    header_only_file, long_delta_file, long_meta_length_file)
