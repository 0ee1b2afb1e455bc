"""Magenta Melody RNN's monophonic encoding on a step grid that follows the tempo map.

Events, one per grid step (default 4 steps per quarter note): NOTE_ON(pitch) for each pitch
in [min_pitch, max_pitch] (a note starts), NO_EVENT (the previous state continues) and
NOTE_OFF (silence starts): 36 + 2 = 38 events + PAD/BOS/EOS = 41 ids with the defaults.

Melody extraction (`MelodyEncoding.extract_melody`), so no music is dropped silently:
1. the melody track: `preprocess.pick_melody_track` (settings `track` / `program` win, else its
   documented rule);
2. the highest sounding note where notes overlap (`preprocess.skyline`), then notes folded into
   [min_pitch, max_pitch] by octaves (`preprocess.fold_into_range`);
3. onsets and offsets rounded to the nearest step in quarter notes through the file's tempo
   map; a note shorter than one step gets one step; of notes starting on the same step the
   highest is kept; a note still sounding at the next onset is cut there;
4. leading silence trimmed to the start of the bar holding the first note (Magenta does the
   same), then the optional `max_steps` cap; fewer than `min_notes` notes left ->
   `NoUsableMusicError`.
A NOTE_OFF follows the last note, so its length survives the round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from melodygen.encodings.base import BEATS, Encoding, TimePerId
from melodygen.encodings.vocab import EOS_ID, EventRange, Vocabulary
from melodygen.errors import NoUsableMusicError
from melodygen.notes import Note, Score, TempoMap
from melodygen.settings import check


@dataclass(frozen=True)
class MelodySettings:
    """`track` / `program` pick the melody track by index / General MIDI program (0-based)."""

    min_pitch: int = 48
    max_pitch: int = 83
    steps_per_quarter: int = 4
    track: int | None = None
    program: int | None = None
    min_notes: int = 4
    max_steps: int | None = None

    def __post_init__(self):
        check(self, {
            "need 0 <= min_pitch, min_pitch + 11 <= max_pitch <= 127 (an octave to fold into)":
                lambda: 0 <= self.min_pitch and self.min_pitch + 11 <= self.max_pitch <= 127,
            "steps_per_quarter must be >= 1": lambda: self.steps_per_quarter >= 1,
            "min_notes must be >= 1": lambda: self.min_notes >= 1,
            "max_steps must be >= 1 or None": lambda: self.max_steps is None or self.max_steps >= 1,
        })


class MelodyEncoding(Encoding):
    """One monophonic melody per file as NOTE_ON / NO_EVENT / NOTE_OFF grid steps."""

    name = "melody"
    settings_type = MelodySettings
    stream_version = 1  # bump when encode's ids change (see Encoding.stream_version)

    def _build_vocab(self) -> Vocabulary:
        s = self.settings
        return Vocabulary([EventRange.flag("NO_EVENT"), EventRange.flag("NOTE_OFF"),
                           EventRange("NOTE_ON", s.min_pitch, s.max_pitch)])

    def extract_melody(self, score: Score) -> list[Note]:
        """The melody exactly as `encode` keeps it, with start/end in grid STEPS (whole numbers
        as floats; step 0 = the first bar line of the melody), source velocities kept.

        `decode(encode(score), qpm)` returns these notes with times multiplied by
        60 / qpm / steps_per_quarter seconds and velocity 100. Raises `NoUsableMusicError(reason)`.
        """
        pitch, start, end, velocity = self._quantized(score)
        return [Note(int(p), int(v), float(s), float(e))
                for p, s, e, v in zip(pitch, start, end, velocity)]

    def encode(self, score: Score) -> np.ndarray:
        pitch, start, end, _ = self._quantized(score)
        v = self.vocab
        ids = np.full(end[-1] + 1, v.id_of("NO_EVENT"), dtype=np.int64)
        ids[end] = v.id_of("NOTE_OFF")
        ids[start] = v.offset("NOTE_ON") + pitch - self.settings.min_pitch
        return ids[:self.settings.max_steps].astype(np.uint16)

    def _decode(self, ids: Sequence[int], qpm: float) -> tuple[list[Note], int]:
        """Notes at `qpm` quarter notes per minute, velocity 100, sorted by start.

        Every non-special id is one step. NOTE_ON ends the sounding note and starts one;
        NOTE_OFF ends it (ignored, and counted as dropped, when none sounds); a note open at
        the end closes there.
        """
        step_seconds = 60.0 / qpm / self.settings.steps_per_quarter
        notes, sounding, dropped = [], None, 0  # sounding: (pitch, start step)
        events = self.vocab.events(ids)
        for step, (name, value) in enumerate(events + [("END", None)]):  # END closes an open note
            if name == "NOTE_OFF" and sounding is None:
                dropped += 1
            if name != "NO_EVENT" and sounding is not None:
                pitch, begin = sounding
                notes.append(Note(pitch, 100, begin * step_seconds, step * step_seconds))
                sounding = None
            if name == "NOTE_ON":
                sounding = (value, step)
        return notes, dropped

    def grammar(self, primer_ids: Sequence[int], rows: int, device="cpu") -> MelodyGrammar:
        return MelodyGrammar(self, primer_ids, rows, device)

    def time_per_id(self) -> TimePerId:
        """Every event is one grid step: 1 / steps_per_quarter beats."""
        amounts = np.zeros(self.vocab.size)
        amounts[EOS_ID + 1:] = 1.0 / self.settings.steps_per_quarter
        return TimePerId(amounts, BEATS)

    def pitch_shift_table(self, shift: int) -> np.ndarray:
        s = self.settings
        table = np.arange(self.vocab.size, dtype=np.int64)
        first = self.vocab.offset("NOTE_ON")
        pitches = np.arange(s.min_pitch, s.max_pitch + 1) + shift
        inside = (pitches >= s.min_pitch) & (pitches <= s.max_pitch)
        table[first:first + len(pitches)] = np.where(inside, first + pitches - s.min_pitch, -1)
        return table

    def _quantized(self, score: Score) -> tuple[np.ndarray, ...]:
        """(pitch, start step, end step, velocity) of the extracted melody; see module doc."""
        from melodygen.encodings import preprocess

        s = self.settings
        track = preprocess.pick_melody_track(score, track=s.track, program=s.program)
        notes = preprocess.fold_into_range(preprocess.skyline(track.notes), s.min_pitch, s.max_pitch)
        if not notes:
            raise NoUsableMusicError("the melody track has no notes")
        pitch = np.array([n.pitch for n in notes], dtype=np.int64)
        velocity = np.array([n.velocity for n in notes], dtype=np.int64)
        start = self._steps(score.tempo_map, [n.start for n in notes])
        end = np.maximum(self._steps(score.tempo_map, [n.end for n in notes]), start + 1)
        order = np.lexsort((-pitch, start))  # by onset, highest pitch first
        pitch, start, end, velocity = pitch[order], start[order], end[order], velocity[order]
        keep = np.append(True, start[1:] != start[:-1])  # the highest of equal onsets
        pitch, start, end, velocity = pitch[keep], start[keep], end[keep], velocity[keep]
        end[:-1] = np.minimum(end[:-1], start[1:])
        origin = self._bar_start(score, int(start[0]))
        return self._capped(pitch, start - origin, end - origin, velocity)

    def _capped(self, pitch, start, end, velocity) -> tuple[np.ndarray, ...]:
        cap = self.settings.max_steps
        if cap is not None:
            keep = start < cap
            pitch, start, end, velocity = pitch[keep], start[keep], end[keep], velocity[keep]
            end = np.minimum(end, cap)
        least = self.settings.min_notes
        if len(pitch) < least:
            raise NoUsableMusicError(
                f"the melody has {len(pitch)} note(s), fewer than min_notes={least}")
        return pitch, start, end, velocity

    def _steps(self, tempo_map: TempoMap, seconds: list[float]) -> np.ndarray:
        """Nearest grid step of each time."""
        return np.rint(tempo_map.beats_of(seconds) * self.settings.steps_per_quarter).astype(np.int64)

    def _bar_start(self, score: Score, first_step: int) -> int:
        """The step of the bar line at or before the first note (the note itself if the bar is
        not a whole number of steps)."""
        signatures = score.time_signatures or [(0.0, 4, 4)]
        at = self._steps(score.tempo_map, [ts[0] for ts in signatures])
        i = max(0, int(np.searchsorted(at, first_step, side="right")) - 1)
        _, num, den = signatures[i]
        bar_steps = num * 4 * self.settings.steps_per_quarter / den
        if bar_steps != int(bar_steps) or bar_steps <= 0:
            return first_step
        return int(at[i]) + (first_step - int(at[i])) // int(bar_steps) * int(bar_steps)


class MelodyGrammar:
    """Bans NOTE_OFF in the rows where no note sounds (the decoder would ignore it). A row's
    state is whether a note sounds, from the primer and each id it drew since."""

    def __init__(self, encoding: MelodyEncoding, primer_ids: Sequence[int], rows: int, device):
        import torch

        vocab = encoding.vocab
        self.note_off = vocab.offset("NOTE_OFF")
        self.first_on, self.last_on = vocab.offset("NOTE_ON"), vocab.offset("NOTE_ON") + vocab.range("NOTE_ON").size
        sounding = False
        for name, _ in vocab.events(primer_ids):
            sounding = name == "NOTE_ON" or (sounding and name == "NO_EVENT")
        self.sounding = torch.full((rows,), sounding, dtype=torch.bool, device=device)

    def __call__(self, logits, last_ids):
        if last_ids is not None:
            started = (last_ids >= self.first_on) & (last_ids < self.last_on)
            self.sounding = started | (self.sounding & ~(last_ids == self.note_off))
        banned = logits.new_zeros(logits.shape, dtype=bool)
        banned[:, self.note_off] = ~self.sounding
        return logits.masked_fill(banned, float("-inf"))

    def select_rows(self, rows) -> None:
        self.sounding = self.sounding.index_select(0, rows)
