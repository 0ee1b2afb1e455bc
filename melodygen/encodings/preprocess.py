"""What encodings do to notes before encoding them: sustain pedal, the choice of a melody track,
skyline and octave folding. Pure functions: no I/O; inputs are never modified (new lists / Notes
come back).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from melodygen.errors import NoUsableMusicError
from melodygen.notes import Note, Score, Track

MELODY_NAMES = ("melody", "soprano", "lead", "vocal", "voice")  # in order of preference

# Event order at one instant, as in Magenta's `apply_sustain_control_changes`.
_SUSTAIN_ON, _SUSTAIN_OFF, _NOTE_ON, _NOTE_OFF = range(4)


def apply_sustain(track: Track) -> list[Note]:
    """The track's notes lengthened by its sustain pedal, with Magenta's semantics.

    A note released while the pedal is down keeps sounding until the pedal is lifted, or
    until the same pitch is struck again (which also cuts a note of that pitch still held by
    the pedal). Notes left sounding after the last event end there. Events at one instant
    are taken in the order pedal down, pedal up, note-ons, note-offs. Zero-length results
    are dropped. Returns notes sorted by (start, pitch).
    """
    events = [(down, _SUSTAIN_ON, -1) for down, _ in track.pedals]
    events += [(up, _SUSTAIN_OFF, -1) for _, up in track.pedals]
    for i, note in enumerate(track.notes):
        events += [(note.start, _NOTE_ON, i), (note.end, _NOTE_OFF, i)]
    events.sort(key=lambda event: event[:2])
    ends = [note.end for note in track.notes]
    sounding: dict[int, list[int]] = defaultdict(list)  # pitch -> indices of sounding notes
    pedal_down = False
    time = 0.0
    for time, kind, i in events:
        if kind == _SUSTAIN_ON:
            pedal_down = True
        elif kind == _SUSTAIN_OFF:
            pedal_down = False
            for pitch, held in sounding.items():
                for j in held:
                    ends[j] = max(ends[j], time)
                sounding[pitch] = [j for j in held if ends[j] > time]
        elif kind == _NOTE_ON:
            pitch = track.notes[i].pitch
            if pedal_down:
                for j in sounding[pitch]:
                    ends[j] = time
                sounding[pitch] = []
            sounding[pitch].append(i)
        elif not pedal_down and i in sounding[track.notes[i].pitch]:
            sounding[track.notes[i].pitch].remove(i)
    for held in sounding.values():
        for j in held:
            ends[j] = max(ends[j], time)
    return _sorted(Note(n.pitch, n.velocity, n.start, end)
                   for n, end in zip(track.notes, ends) if end > n.start)


def skyline(notes: Sequence[Note]) -> list[Note]:
    """A monophonic line keeping the highest sounding note where notes overlap.

    Sweeping through time: when a note starts, every sounding note at or below its pitch is
    cut there (a higher note interrupting a lower one cuts it; of notes struck together only
    the highest stays; a note struck again cuts its previous sounding). A cut note does not
    come back. A lower note that starts under a higher one waits: it sounds from the moment it
    is the highest note still sounding (so it is shortened at the front), or is dropped if it
    is covered until its end. The result never overlaps; it is sorted by start.
    """
    starting: dict[float, list[Note]] = defaultdict(list)
    for note in sorted(notes, key=lambda n: n.pitch):
        starting[note.start].append(note)
    times = sorted(set(starting) | {n.end for n in notes})
    line: list[Note] = []
    alive: list[Note] = []
    current, since = None, 0.0
    for time in times:
        alive = [n for n in alive if n.end > time]
        for note in starting.get(time, ()):
            alive = [n for n in alive if n.pitch > note.pitch]
            alive.append(note)
        if current is not None and not any(n is current for n in alive):
            line.append(Note(current.pitch, current.velocity, since, time))
            current = None
        if current is None and alive:
            current, since = max(alive, key=lambda n: n.pitch), time
    return line


def fold_into_range(notes: Sequence[Note], lo: int, hi: int) -> list[Note]:
    """Notes outside [lo, hi] moved by the fewest whole octaves that bring them inside.

    The range must span at least an octave (hi - lo >= 11), else ValueError.
    """
    if hi - lo < 11:
        raise ValueError(f"pitch range {lo}..{hi} is narrower than an octave")
    folded = []
    for note in notes:
        pitch = note.pitch
        if pitch < lo:
            pitch += 12 * -((pitch - lo) // 12)
        elif pitch > hi:
            pitch -= 12 * -((hi - pitch) // 12)
        folded.append(note if pitch == note.pitch else
                      Note(pitch, note.velocity, note.start, note.end))
    return folded


def pick_melody_track(score: Score, track: int | None = None,
                      program: int | None = None) -> Track:
    """The track holding the melody, by this rule:

    1. `track` given: `score.tracks[track]` (an index into the Score's tracks, drums
       excluded by `read_score` unless asked for);
    2. else `program` given: the first non-drum track with that General MIDI program (0-127);
    3. else the first non-drum track whose name contains "melody", "soprano", "lead",
       "vocal" or "voice" (case-insensitive, tried in that order);
    4. else, among non-drum tracks with at least a quarter of the notes of the fullest one,
       the one with the highest mean pitch (the first on ties).
    Raises `NoUsableMusicError` naming the file and why when no track fits.
    """
    where = score.source or "score"
    if track is not None:
        if not 0 <= track < len(score.tracks):
            raise NoUsableMusicError(
                f"{where}: track {track} out of range (the file has {len(score.tracks)} tracks)")
        if not score.tracks[track].notes:
            raise NoUsableMusicError(f"{where}: track {track} has no notes")
        return score.tracks[track]
    candidates = [t for t in score.tracks if t.notes and not t.is_drum]
    if not candidates:
        reason = "only drum tracks" if score.note_count() else "no notes"
        raise NoUsableMusicError(f"{where}: {reason}")
    if program is not None:
        chosen = next((t for t in candidates if t.program == program), None)
        if chosen is None:
            raise NoUsableMusicError(f"{where}: no non-drum track with program {program}")
        return chosen
    for name in MELODY_NAMES:
        chosen = next((t for t in candidates if name in t.name.lower()), None)
        if chosen is not None:
            return chosen
    fullest = max(len(t.notes) for t in candidates)
    large = [t for t in candidates if 4 * len(t.notes) >= fullest]
    return max(large, key=lambda t: sum(n.pitch for n in t.notes) / len(t.notes))


def _sorted(notes) -> list[Note]:
    return sorted(notes, key=lambda n: (n.start, n.pitch))
