"""Magenta Performance RNN's polyphonic encoding with dynamics.

Events: NOTE_ON(0..127), NOTE_OFF(0..127), TIME_SHIFT(1..100 steps of 10 ms), VELOCITY(bin 1..32):
388 events + PAD/BOS/EOS = 391 ids with the default settings. Time is absolute (seconds), so
the tempo map plays no part.

Quantization (what a round trip keeps, `quantize_notes`): onsets and offsets round to the
nearest 10 ms step; a note shorter than one step gets one step; where two notes of one pitch
overlap the earlier one ends at the later onset (the later one wins a tie of onsets);
velocity becomes its bin's lower edge (Magenta: bin b of size 4 holds 4b-3..4b, decodes to 4b-3).

Event order inside one time step: every NOTE_OFF, then NOTE_ONs by pitch, a VELOCITY event
before a NOTE_ON only when the bin changes. Gaps longer than 1 s become several TIME_SHIFTs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from melodygen.encodings.base import SECONDS, Encoding, TimePerId, sort_notes
from melodygen.encodings.vocab import EventRange, Vocabulary
from melodygen.errors import NoUsableMusicError
from melodygen.notes import Note, Score
from melodygen.settings import check

_OFF, _ON = 0, 1  # event kinds in the sorted event table; offs sort first within a step


@dataclass(frozen=True)
class PerformanceSettings:
    """`sustain`: extend notes under the sustain pedal (Magenta does) before encoding."""

    steps_per_second: int = 100
    max_shift_steps: int = 100
    velocity_bins: int = 32
    sustain: bool = True

    def __post_init__(self):
        check(self, {
            "steps_per_second must be >= 1": lambda: self.steps_per_second >= 1,
            "max_shift_steps must be >= 1": lambda: self.max_shift_steps >= 1,
            "velocity_bins must be in 1..127": lambda: 1 <= self.velocity_bins <= 127,
        })

    @property
    def bin_size(self) -> int:
        return math.ceil(127 / self.velocity_bins)


class PerformanceEncoding(Encoding):
    """Polyphonic notes with dynamics as NOTE_ON / NOTE_OFF / TIME_SHIFT / VELOCITY events."""

    name = "performance"
    settings_type = PerformanceSettings
    stream_version = 1  # bump when encode's ids change (see Encoding.stream_version)

    def _build_vocab(self) -> Vocabulary:
        s = self.settings
        in_ms = 1000 % s.steps_per_second == 0  # tokens read TIME_SHIFT(250ms), else in steps
        return Vocabulary([
            EventRange("NOTE_ON", 0, 127),
            EventRange("NOTE_OFF", 0, 127),
            EventRange("TIME_SHIFT", 1, s.max_shift_steps, unit="ms" if in_ms else " steps",
                       scale=1000 // s.steps_per_second if in_ms else 1),
            EventRange("VELOCITY", 1, s.velocity_bins, scale=s.bin_size, offset=1 - s.bin_size),
        ])

    def score_notes(self, score: Score) -> list[Note]:
        """All non-drum notes of `score`, merged, with the sustain pedal applied if set."""
        tracks = [track for track in score.tracks if not track.is_drum]
        if not self.settings.sustain:
            return [note for track in tracks for note in track.notes]
        from melodygen.encodings import preprocess

        return [note for track in tracks for note in preprocess.apply_sustain(track)]

    def encode(self, score: Score) -> np.ndarray:
        pitch, start, end, vbin = self._quantized(self.score_notes(score))
        if len(pitch) == 0:
            raise NoUsableMusicError("no non-drum notes")
        return self._events_to_ids(*_event_table(pitch, start, end, vbin))

    def quantize_notes(self, notes: Sequence[Note]) -> list[Note]:
        """`notes` as a round trip returns them: see the module docstring."""
        pitch, start, end, vbin = self._quantized(notes)
        return sort_notes(self._note(p, s, e, b) for p, s, e, b in zip(
            pitch.tolist(), start.tolist(), end.tolist(), vbin.tolist()))

    def _decode(self, ids: Sequence[int], qpm: float) -> tuple[list[Note], int]:
        """Notes of any in-vocabulary ids, sorted by (start, pitch); `qpm` is ignored (time is
        absolute).

        Lenient by design, so sampled sequences always decode: a NOTE_OFF with no open note is
        ignored; a NOTE_ON for a pitch already sounding ends the old note there and starts a
        new one; notes still open at the end close at the final time; zero-length notes are
        dropped. Before any VELOCITY event notes get velocity 100. Dropped: each ignored
        NOTE_OFF and each NOTE_ON/NOTE_OFF that ends a note where it began (a note left open
        at the very end with no length is not counted: the stream just stopped).
        """
        step, vbin, notes, dropped = 0, None, [], 0
        open_notes: dict[int, tuple[int, int | None]] = {}  # pitch -> (start step, bin)
        for name, value in self.vocab.events(ids):
            if name == "TIME_SHIFT":
                step += value
            elif name == "VELOCITY":
                vbin = value
            elif name in ("NOTE_ON", "NOTE_OFF") and value in open_notes:
                begin, b = open_notes.pop(value)
                if step > begin:
                    notes.append(self._note(value, begin, step, b))
                else:
                    dropped += 1
            elif name == "NOTE_OFF":
                dropped += 1
            if name == "NOTE_ON":
                open_notes[value] = (step, vbin)
        notes += [self._note(p, s, step, b) for p, (s, b) in open_notes.items() if step > s]
        return sort_notes(notes), dropped

    def grammar(self, primer_ids: Sequence[int], rows: int, device="cpu") -> PerformanceGrammar:
        return PerformanceGrammar(self, primer_ids, rows, device)

    def time_per_id(self) -> TimePerId:
        """TIME_SHIFT(n) moves time n / steps_per_second seconds; other events, none."""
        amounts = np.zeros(self.vocab.size)
        shifts, first = self.vocab.range("TIME_SHIFT"), self.vocab.offset("TIME_SHIFT")
        amounts[first:first + shifts.size] = np.arange(shifts.lo, shifts.hi + 1) / self.settings.steps_per_second
        return TimePerId(amounts, SECONDS)

    def pitch_shift_table(self, shift: int) -> np.ndarray:
        table = np.arange(self.vocab.size, dtype=np.int64)
        for name in ("NOTE_ON", "NOTE_OFF"):
            first = self.vocab.offset(name)
            pitches = np.arange(128) + shift
            table[first:first + 128] = np.where(
                (pitches >= 0) & (pitches <= 127), first + pitches, -1)
        return table

    def _note(self, pitch: int, start: int, end: int, vbin: int | None) -> Note:
        velocity = 100 if vbin is None else 1 + (vbin - 1) * self.settings.bin_size
        rate = self.settings.steps_per_second
        return Note(pitch, velocity, start / rate, end / rate)

    def _quantized(self, notes: Sequence[Note]) -> tuple[np.ndarray, ...]:
        """(pitch, start step, end step, velocity bin) arrays after quantization."""
        rate = self.settings.steps_per_second
        if not notes:
            return tuple(np.zeros(0, dtype=np.int64) for _ in range(4))
        pitch = np.fromiter((n.pitch for n in notes), np.int64, len(notes))
        start = np.rint(np.fromiter((n.start for n in notes), float, len(notes)) * rate)
        end = np.rint(np.fromiter((n.end for n in notes), float, len(notes)) * rate)
        velocity = np.clip(np.fromiter((n.velocity for n in notes), np.int64, len(notes)), 1, 127)
        start = start.astype(np.int64)
        end = np.maximum(end.astype(np.int64), start + 1)
        vbin = (velocity - 1) // self.settings.bin_size + 1
        order = np.lexsort((end, start, pitch))  # by pitch, then onset; ties: longest last
        pitch, start, end, vbin = pitch[order], start[order], end[order], vbin[order]
        same_pitch_next = np.append(pitch[1:] == pitch[:-1], False)
        next_start = np.append(start[1:], 0)
        end = np.where(same_pitch_next, np.minimum(end, next_start), end)
        keep = end > start
        return pitch[keep], start[keep], end[keep], vbin[keep]

    def _events_to_ids(self, time, kind, pitch, vbin) -> np.ndarray:
        """Ids of a sorted event table: TIME_SHIFTs, then VELOCITY if needed, then the event."""
        v = self.vocab
        gap = np.diff(time, prepend=0)
        n_shift = -(-gap // self.settings.max_shift_steps)  # ceil division
        is_on = kind == _ON
        on_bins = vbin[is_on]
        new_bin = np.zeros(len(time), dtype=bool)
        new_bin[is_on] = np.append(True, on_bins[1:] != on_bins[:-1])
        length = n_shift + new_bin + 1
        first = np.cumsum(length) - length  # where each event's group of ids begins
        ids = np.empty(int(length.sum()), dtype=np.int64)
        ids[first + length - 1] = np.where(is_on, v.offset("NOTE_ON"), v.offset("NOTE_OFF")) + pitch
        ids[(first + n_shift)[new_bin]] = v.offset("VELOCITY") + vbin[new_bin] - 1
        self._fill_shifts(ids, first, n_shift, gap)
        return ids.astype(np.uint16)

    def _fill_shifts(self, ids: np.ndarray, first, n_shift, gap) -> None:
        """Write each gap as full-length TIME_SHIFTs followed by the remainder."""
        biggest = self.settings.max_shift_steps
        owner = np.repeat(np.arange(len(first)), n_shift)
        rank = np.arange(len(owner)) - np.repeat(np.cumsum(n_shift) - n_shift, n_shift)
        is_last = rank == n_shift[owner] - 1
        steps = np.where(is_last, gap[owner] - (n_shift[owner] - 1) * biggest, biggest)
        ids[first[owner] + rank] = self.vocab.offset("TIME_SHIFT") + steps - 1


def _event_table(pitch, start, end, vbin) -> tuple[np.ndarray, ...]:
    """(time, kind, pitch, bin) of every NOTE_ON/NOTE_OFF, sorted by time, offs first, pitch."""
    time = np.concatenate([start, end])
    kind = np.concatenate([np.full(len(start), _ON), np.full(len(end), _OFF)])
    pitch = np.concatenate([pitch, pitch])
    vbin = np.concatenate([vbin, vbin])
    order = np.lexsort((pitch, kind, time))
    return time[order], kind[order], pitch[order], vbin[order]


class PerformanceGrammar:
    """Bans, row by row, a NOTE_OFF of a pitch that does not sound or that started at this very
    instant, and a NOTE_ON of a pitch that started at this instant: each would be ignored or
    make a note of no length. A row's state: the pitches sounding, and which of them started
    since the last TIME_SHIFT; TIME_SHIFT, VELOCITY and EOS stay allowed, so a row is never stuck."""

    def __init__(self, encoding: PerformanceEncoding, primer_ids: Sequence[int], rows: int, device):
        import torch

        vocab = encoding.vocab
        self.on, self.off = vocab.offset("NOTE_ON"), vocab.offset("NOTE_OFF")
        self.shift_lo = vocab.offset("TIME_SHIFT")
        self.shift_hi = self.shift_lo + vocab.range("TIME_SHIFT").size
        sounding, fresh = set(), set()
        for name, value in vocab.events(primer_ids):
            if name == "TIME_SHIFT":
                fresh.clear()
            elif name == "NOTE_ON":
                sounding.add(value)
                fresh.add(value)
            elif name == "NOTE_OFF":
                sounding.discard(value)
                fresh.discard(value)
        self.sounding = torch.zeros(rows, 128, dtype=torch.bool, device=device)
        self.fresh = torch.zeros(rows, 128, dtype=torch.bool, device=device)
        self.sounding[:, list(sounding)] = True
        self.fresh[:, list(fresh)] = True

    def __call__(self, logits, last_ids):
        if last_ids is not None:
            self._update(last_ids)
        banned = logits.new_zeros(logits.shape, dtype=bool)
        banned[:, self.off:self.off + 128] = ~self.sounding | self.fresh
        banned[:, self.on:self.on + 128] = self.fresh
        return logits.masked_fill(banned, float("-inf"))

    def _update(self, ids) -> None:
        """Takes each row's last id (B,) into its state; whole-tensor ops, no host sync."""
        import torch.nn.functional as F

        def pitches(first: int):  # (B, 128): the pitch of each row's id when it is in first..first+127
            inside = (ids >= first) & (ids < first + 128)
            return F.one_hot((ids - first).clamp(0, 127), 128).bool() & inside[:, None]

        shifted = (ids >= self.shift_lo) & (ids < self.shift_hi)
        started, ended = pitches(self.on), pitches(self.off)
        self.fresh = (self.fresh & ~shifted[:, None]) | started
        self.sounding = (self.sounding | started) & ~ended

    def select_rows(self, rows) -> None:
        self.sounding, self.fresh = self.sounding.index_select(0, rows), self.fresh.index_select(0, rows)
