"""Voices on a grid: a few monophonic parts, cell by cell, as Coconet sees a chorale.

A piece is its bars; a bar is `BAR` and then, for each grid step (`steps_per_quarter` per
quarter note), one cell per voice in voice order:

    BAR  V1(72) V2(67) V3(64) V4(48)   V1(hold) V2(hold) V3(hold) V4(hold)   V1(74) ...

A cell is `Vn(pitch)` (voice n starts a note), `Vn(hold)` (its note goes on) or `Vn(rest)`.

- **Voices** are the first `voices` tracks with notes (drums left out) in the file's order:
  soprano, alto, tenor, bass in the bundled chorales. A piece with fewer has resting voices;
  tracks past them (a horn doubling the soprano, a continuo) are left out. A track that plays
  chords keeps, at each step, the note that started last, the highest of those starting
  together. Pitches outside [min_pitch, max_pitch] are folded in by octaves.
- **Bars** follow the file's time signatures (`meter.score_bars`). A bar's length is the number
  of its steps, so no meter token is needed: decoding gives each bar the meter of its length.
- **Blanks.** `BLANK(n)` is a cell of voice n that is not known yet: what the masked model
  (`models.masked`) fills. `encode` never writes one, decoding reads it as a rest (and counts
  it dropped), and the grammar bans it.

Why a grid: every cell is one id of a known voice at a known step, so an encoder-only model can
be asked for any set of erased cells (a bar of every voice, one voice throughout, scattered
notes) and fill them from both sides, which is what infilling wants (Huang et al. 2017,
"Counterpoint by Convolution"). A decoder-only model can learn the same stream, cell by cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from melodygen import meter
from melodygen.encodings.base import BEATS, Encoding, TimePerId
from melodygen.encodings.conditioning import Conditioning
from melodygen.encodings.vocab import EOS_ID, EventRange, Vocabulary
from melodygen.errors import ConfigError, NoUsableMusicError
from melodygen.notes import Note, Score, TempoMap, Track
from melodygen.settings import check

REST, HOLD = 0, 1  # cell values; a pitch p is 2 + p - min_pitch


@dataclass(frozen=True)
class VoicesSettings:
    """See the module docstring."""

    voices: int = 4
    steps_per_quarter: int = 4
    min_pitch: int = 28
    max_pitch: int = 96

    def __post_init__(self):
        check(self, {
            "voices must be in 1..16": lambda: 1 <= self.voices <= 16,
            "steps_per_quarter must be in 1..24": lambda: 1 <= self.steps_per_quarter <= 24,
            "need 0 <= min_pitch, min_pitch + 11 <= max_pitch <= 127 (an octave to fold into)":
                lambda: 0 <= self.min_pitch and self.min_pitch + 11 <= self.max_pitch <= 127,
        })


@dataclass(frozen=True)
class CellTable:
    """Per id of the vocabulary (V,): its voice (-1: not a cell), and whether it is a blank, a
    rest or a hold (a cell neither is starts a note)."""

    voice: np.ndarray
    blank: np.ndarray
    rest: np.ndarray
    hold: np.ndarray


@dataclass
class VoiceGrid:
    """Decoded cells: per voice its notes in steps ((pitch, start, end)), the bars' lengths in
    steps, and the ids decoding could not use."""

    notes: list[list[tuple[int, int, int]]]
    bars: list[int]
    dropped: int


class VoicesEncoding(Encoding):
    """Monophonic voices, one cell per voice per grid step (module docstring)."""

    name = "voices"
    settings_type = VoicesSettings
    stream_version = 1  # bump when encode's ids change (see Encoding.stream_version)

    def _build_vocab(self) -> Vocabulary:
        s = self.settings
        labels = ("rest", "hold", *map(str, range(s.min_pitch, s.max_pitch + 1)))
        cells = [EventRange(f"V{n + 1}", 0, len(labels) - 1, labels=labels) for n in range(s.voices)]
        return Vocabulary([EventRange.flag("BAR"), *cells, EventRange("BLANK", 1, s.voices)])

    # ------------------------------------------------------------------------------ the cells

    def cell_id(self, voice: int, value: int) -> int:
        """The id of voice `voice` (0-based) holding cell value `value` (REST, HOLD, 2 + pitch index)."""
        return self.vocab.offset(f"V{voice + 1}") + value

    def cells(self) -> CellTable:
        """What each id of the vocabulary is, as a cell (what the grammar and sampling read)."""
        every = np.arange(self.vocab.size)
        voice = self.voice_of(every)
        blank = (every >= self.vocab.offset("BLANK")) & (voice >= 0)
        values = self.vocab.split(every)[1]
        cell = (voice >= 0) & ~blank
        return CellTable(voice, blank, cell & (values == REST), cell & (values == HOLD))

    def blank_of(self, ids) -> np.ndarray:
        """For each id, the `BLANK` of its voice (-1 for a bar line or special): what the masked
        model reads in place of an erased cell."""
        ids = np.asarray(ids, dtype=np.int64)
        voice = self.voice_of(ids)
        return np.where(voice >= 0, self.vocab.offset("BLANK") + voice, -1)

    def voice_of(self, ids) -> np.ndarray:
        """The voice (0-based) of each cell id, blanks included; -1 for anything else."""
        ids = np.asarray(ids, dtype=np.int64)
        size = self.vocab.range("V1").size
        first, blank = self.vocab.offset("V1"), self.vocab.offset("BLANK")
        cells = (ids >= first) & (ids < blank)
        blanks = (ids >= blank) & (ids < blank + self.settings.voices)
        return np.where(cells, (ids - first) // size, np.where(blanks, ids - blank, -1))

    # ------------------------------------------------------------------------------ encoding

    def encode(self, score: Score) -> np.ndarray:
        s = self.settings
        tracks = [t for t in score.tracks if t.notes and not t.is_drum][:s.voices]
        if not tracks:
            raise NoUsableMusicError("no notes" if not score.note_count() else "only drum tracks")
        painted = [self._cells(score.tempo_map, t.notes) for t in tracks]
        end = max(len(p) for p in painted)
        grid = np.full((end, s.voices), REST, dtype=np.int64)
        for voice, cells in enumerate(painted):
            grid[:len(cells), voice] = cells
        bars = meter.score_bars(score, s.steps_per_quarter, end_step=end - 1)
        ids = []
        bar = self.vocab.id_of("BAR")
        offsets = np.array([self.cell_id(v, 0) for v in range(s.voices)])
        for b in bars:
            rows = np.full((b.length, s.voices), REST, dtype=np.int64)
            inside = grid[b.start:b.start + b.length]
            rows[:len(inside)] = inside
            ids.append(np.concatenate([[bar], (rows + offsets).reshape(-1)]))
        return np.concatenate(ids).astype(np.uint16)

    def _cells(self, tempo: TempoMap, notes: Sequence[Note]) -> np.ndarray:
        """One voice's cell values per step: a note starting later cuts the one sounding; of
        notes starting together the highest is kept."""
        from melodygen.encodings.preprocess import fold_into_range

        s = self.settings
        notes = fold_into_range(notes, s.min_pitch, s.max_pitch)
        spq = s.steps_per_quarter
        start = np.rint(tempo.beats_of([n.start for n in notes]) * spq).astype(np.int64)
        end = np.maximum(np.rint(tempo.beats_of([n.end for n in notes]) * spq).astype(np.int64), start + 1)
        pitch = np.array([n.pitch for n in notes], dtype=np.int64)
        cells = np.full(int(end.max()), REST, dtype=np.int64)
        for i in np.lexsort((pitch, start)):  # by onset, the highest of equal onsets last (it wins)
            cells[start[i]:end[i]] = HOLD
            cells[start[i]] = 2 + pitch[i] - s.min_pitch
        return cells

    # ------------------------------------------------------------------------------ decoding

    def grid(self, ids: Sequence[int]) -> VoiceGrid:
        """The voices' notes in steps and the bars' lengths of any in-vocabulary ids. A cell of
        a voice out of turn, a hold with nothing sounding, a blank and a bar line inside a step
        are dropped (a blank still takes its cell, as a rest)."""
        s = self.settings
        kinds, values = self.vocab.split(ids)
        names = [r.name for r in self.vocab.ranges]
        voices = self.voice_of(ids).tolist()
        notes: list[list[tuple[int, int, int]]] = [[] for _ in range(s.voices)]
        sounding: list[tuple[int, int] | None] = [None] * s.voices
        bars: list[int] = []
        step, turn, dropped = -1, 0, 0
        for kind, value, voice in zip(kinds.tolist(), values.tolist(), voices):
            name = names[kind]
            if name == "BAR":
                if turn:
                    dropped += 1
                else:
                    bars.append(step + 1)
                continue
            if voice < 0:
                continue  # PAD, BOS, EOS
            if voice != turn:
                dropped += 1
                continue
            step += turn == 0
            turn = (turn + 1) % s.voices
            if name == "BLANK" or (value == HOLD and sounding[voice] is None):
                dropped += 1
                value = REST
            if value == HOLD:
                continue
            if sounding[voice] is not None:
                notes[voice].append((*sounding[voice], step))
                sounding[voice] = None
            if value != REST:
                sounding[voice] = (s.min_pitch + value - 2, step)
        end = step + 1
        if not bars or bars[0] > 0:  # cells before the first bar line make a bar of their own
            bars.insert(0, 0)
        for voice, open_note in enumerate(sounding):
            if open_note is not None:
                notes[voice].append((*open_note, end))
        lengths = [b - a for a, b in zip(bars, bars[1:] + [end])]
        return VoiceGrid(notes, [n for n in lengths if n > 0], dropped)

    def _decode(self, ids: Sequence[int], qpm: float) -> tuple[list[Note], int]:
        grid = self.grid(ids)
        step = 60.0 / qpm / self.settings.steps_per_quarter
        notes = [Note(p, 100, a * step, b * step) for voice in grid.notes for p, a, b in voice]
        return sorted(notes, key=lambda n: (n.start, -n.pitch)), grid.dropped

    def decode_score(self, ids: Sequence[int], qpm: float = 120.0) -> Score:
        """One track per voice ("Voice 1" first), at a constant `qpm`, each bar in the meter of
        its length (n/4, or n/8 when quarters do not fit)."""
        grid = self.grid(ids)
        spq = self.settings.steps_per_quarter
        seconds = 60.0 / qpm / spq
        tracks = [Track(f"Voice {v + 1}", 0, False, [Note(p, 100, a * seconds, b * seconds) for p, a, b in notes])
                  for v, notes in enumerate(grid.notes)]
        signatures, at = [], 0
        for length in grid.bars:
            numerator, denominator = meter.meter_of_length(length, spq, 4)
            if not signatures or signatures[-1][1:] != (numerator, denominator):
                signatures.append((at * seconds, numerator, denominator))
            at += length
        ends = [n.end for t in tracks for n in t.notes]
        return Score(tracks, TempoMap(qpm=(qpm,)), signatures or [(0.0, 4, 4)], end_time=max(ends, default=0.0))

    # ------------------------------------------------------------------------------ contracts

    def grammar(self, primer_ids: Sequence[int], rows: int, device="cpu") -> VoicesGrammar:
        return VoicesGrammar(self, primer_ids, rows, device)

    def conditioning(self, request, profile=None):
        return VoicesConditioning(self, request, profile)

    def time_per_id(self) -> TimePerId:
        """A cell is 1 / voices of a grid step; a bar line takes no time."""
        amounts = np.zeros(self.vocab.size)
        amounts[self.voice_of(np.arange(self.vocab.size)) >= 0] = 1.0 / (self.settings.steps_per_quarter
                                                                         * self.settings.voices)
        return TimePerId(amounts, BEATS)

    def pitch_shift_table(self, shift: int) -> np.ndarray:
        s = self.settings
        table = np.arange(self.vocab.size, dtype=np.int64)
        pitches = np.arange(s.min_pitch, s.max_pitch + 1)
        moved = pitches + shift
        inside = (moved >= s.min_pitch) & (moved <= s.max_pitch)
        for voice in range(s.voices):
            first = self.cell_id(voice, 2)
            table[first:first + len(pitches)] = np.where(inside, first + moved - s.min_pitch, -1)
        return table


class VoicesGrammar:
    """Opens the piece with a bar line, then keeps the cells in voice order, bar lines (and the
    end) between steps of a bar that has one, holds only where the voice sounds, and blanks
    out. A row's state: whether a bar is open, the voice whose cell comes next, whether the
    open bar has a step, and which voices sound."""

    def __init__(self, encoding: VoicesEncoding, primer_ids: Sequence[int], rows: int, device):
        import torch

        self.encoding, self.voices = encoding, encoding.settings.voices
        cells = encoding.cells()
        self.voice = torch.as_tensor(cells.voice, device=device)
        self.blank = torch.as_tensor(cells.blank, device=device)
        self.hold = torch.as_tensor(cells.hold, device=device)
        self.starts = torch.as_tensor((cells.voice >= 0) & ~cells.blank & ~cells.rest & ~cells.hold, device=device)
        self.bar, self.eos = encoding.vocab.id_of("BAR"), EOS_ID
        turn, stepped, sounding = 0, False, [False] * self.voices
        for i in (int(i) for i in primer_ids):
            turn, stepped, sounding = self._follow(i, turn, stepped, sounding)
        opened = self.bar in {int(i) for i in primer_ids}
        self.opened = torch.full((rows,), opened, dtype=torch.bool, device=device)
        self.turn = torch.full((rows,), turn, dtype=torch.long, device=device)
        self.stepped = torch.full((rows,), stepped, dtype=torch.bool, device=device)
        self.sounding = torch.tensor([sounding] * rows, dtype=torch.bool, device=device)

    def _follow(self, i: int, turn: int, stepped: bool, sounding: list[bool]) -> tuple:
        if i == self.bar:
            return turn, False, sounding
        voice = int(self.voice[i])
        if voice < 0 or voice != turn:
            return turn, stepped, sounding
        sounding = list(sounding)
        sounding[voice] = bool(self.starts[i]) or (bool(self.hold[i]) and sounding[voice])
        return (turn + 1) % self.voices, True, sounding

    def __call__(self, logits, last_ids):
        import torch

        if last_ids is not None:
            self._advance(last_ids)
        allowed = (self.voice[None, :] == self.turn[:, None]) & ~self.blank[None, :] & self.opened[:, None]
        sounds = self.sounding.gather(1, self.turn[:, None])  # (B, 1) the voice whose turn it is
        allowed &= ~self.hold[None, :] | sounds
        between = (self.turn == 0) & self.stepped  # a bar line or the end: between steps, in a bar with a step
        columns = torch.zeros_like(allowed)
        columns[:, self.bar] = between | ~self.opened
        columns[:, self.eos] = between
        return logits.masked_fill(~(allowed | columns), float("-inf"))

    def _advance(self, ids) -> None:
        import torch

        bar = ids == self.bar
        voice = self.voice[ids]
        cell = voice >= 0
        rows = torch.arange(len(ids), device=ids.device)
        column = voice.clamp(min=0)
        sounds = self.starts[ids] | (self.hold[ids] & self.sounding[rows, column])
        self.sounding[rows[cell], column[cell]] = sounds[cell]
        self.turn = torch.where(cell, (self.turn + 1) % self.voices, self.turn)
        self.stepped = (self.stepped | cell) & ~bar
        self.opened |= bar

    def select_rows(self, rows) -> None:
        self.turn, self.stepped = self.turn.index_select(0, rows), self.stepped.index_select(0, rows)
        self.opened = self.opened.index_select(0, rows)
        self.sounding = self.sounding.index_select(0, rows)


@dataclass
class BlankPlan:
    """Music with blanks for a masked model (`sampling.blanks`): `ids`, the whole piece with the
    cells to write as blanks, and how the filled piece goes back into the file: infilling
    (`bars` A..B, 1-based, rewritten in every voice), accompaniment (`given_voices` kept), or
    music from nothing (no `original`; a primer's bars kept, `primer_bars`)."""

    blanks = True  # what `sampling.files` routes to a masked model
    ids: np.ndarray
    encoding: VoicesEncoding
    original: Score | None = None
    bars: tuple[int, int] | None = None
    given_voices: tuple[int, ...] = ()
    primer_bars: int = 0

    def assemble(self, decoded: Score) -> Score:
        """The piece to write: the file's own notes where they were given, the written ones
        laid onto its tempo map through their beats (`decoded` at 60 qpm: seconds are beats)."""
        if self.original is None:
            return decoded
        tempo, voices = self.original.tempo_map, self.encoding.settings.voices
        tracks = [t for t in self.original.tracks if t.notes and not t.is_drum]
        others = [t for t in self.original.tracks if t not in tracks[:voices]]

        def laid(notes):
            return [Note(n.pitch, n.velocity, tempo.to_seconds(n.start), tempo.to_seconds(n.end)) for n in notes]

        lo, hi = self._region_steps() if self.bars is not None else (0, 0)
        spq = self.encoding.settings.steps_per_quarter
        written = []
        for v, new in enumerate(decoded.tracks):
            old = tracks[v] if v < len(tracks) else Track(new.name, 0, False, [])
            if self.bars is not None:  # the file's notes outside bars A..B, the written ones inside, by grid step
                kept = [n for n in old.notes if not lo <= round(tempo.to_beats(n.start) * spq) < hi]
                inside = laid([n for n in new.notes if lo <= round(n.start * spq) < hi])
                notes = sorted(kept + inside, key=lambda n: (n.start, n.pitch))
            else:
                notes = old.notes if v in self.given_voices else laid(new.notes)
            written.append(Track(old.name, old.program, False, notes, list(old.pedals)))
        tracks_out = written + others
        ends = [n.end for t in tracks_out for n in t.notes] + [self.original.end_time]
        return Score(tracks_out, tempo, list(self.original.time_signatures), max(ends), self.original.source,
                     ticks_per_beat=self.original.ticks_per_beat)

    def _region_steps(self) -> tuple[int, int]:
        """Bars A..B in grid steps [start, end), as the grid lays them out."""
        starts = np.concatenate([[0], np.cumsum(self.encoding.grid(self.ids).bars)])
        a, b = self.bars
        return int(starts[a - 1]), int(starts[b])

    def given_mask(self, ids) -> np.ndarray:
        """Which of `ids` (a written piece as the encoding reads it back) are the user's: when
        infilling, every id outside bars A..B; when accompanying, the given voices' cells; a
        primer's bars. Bool (len(ids),)."""
        ids = np.asarray(ids, dtype=np.int64)
        bar = np.cumsum(ids == self.encoding.vocab.id_of("BAR"))  # the bar each id is in, from 1
        if self.bars is not None:
            return (bar < self.bars[0]) | (bar > self.bars[1])
        return np.isin(self.encoding.voice_of(ids), self.given_voices) | (bar <= self.primer_bars)


def _tied_into(ids: np.ndarray, region: np.ndarray, encoding: VoicesEncoding) -> np.ndarray:
    """Per id, whether it is a hold that goes on, in the first bar of `region` (bool per id), with
    a note begun before it: a tie into the gap stays given (the file's note keeps its length)."""
    cells = encoding.cells()
    voice = encoding.voice_of(ids)
    tied = np.zeros(len(ids), dtype=bool)
    for v in range(encoding.settings.voices):
        at = np.flatnonzero(region & (voice == v))
        run = np.cumprod(cells.hold[ids[at]]).astype(bool)  # the bar's leading holds of this voice
        tied[at[run]] = True
    return tied


class VoicesConditioning(Conditioning):
    """A request on the voices grid: the single-stream request (one program for every voice), but
    infilling and accompaniment write blanks for a masked model (`BlankPlan`), and the finished
    piece keeps its voices apart."""

    def check(self, instruments_seen) -> None:
        request = self.request
        if request.accompany is None and request.infill is None:
            return super().check(instruments_seen)
        if request.instruments:
            raise ConfigError("the voices encoding writes its own voices: no --instruments (give --program)")
        if request.controls is not None or request.form is not None:
            raise ConfigError("the voices encoding has no controls or form plans")

    def given(self, score: Score, rows: int, device):
        """The blanks to fill: bars A..B of every voice (`infill`), or every voice but
        `given_tracks` (`accompany`); no processors (the masked model keeps to each blank's voice)."""
        request, encoding = self.request, self.encoding
        ids = encoding.encode(score).astype(np.int64)
        voices = encoding.voice_of(ids)
        if request.infill is not None:
            first, last = request.infill
            bar = np.cumsum(ids == encoding.vocab.id_of("BAR"))
            if not 1 <= first <= last <= int(bar[-1]):
                raise ConfigError(f"{score.source}: --infill {first}-{last} is outside its bars 1-{int(bar[-1])}")
            erased = (voices >= 0) & (bar >= first) & (bar <= last) & ~_tied_into(ids, bar == first, encoding)
            plan = BlankPlan(np.where(erased, encoding.blank_of(ids), ids), encoding, score, (first, last))
        else:
            given = tuple(t - 1 for t in request.given_tracks) if request.given_tracks else (0,)
            heard = len([t for t in score.tracks if t.notes and not t.is_drum])
            bad = [g + 1 for g in given if not 0 <= g < min(heard, encoding.settings.voices)]
            if bad:
                raise ConfigError(f"{score.source}: no voice {bad} to give (it has {heard} track(s) with notes; "
                                  f"the model has {encoding.settings.voices} voices)")
            erased = (voices >= 0) & ~np.isin(voices, given)
            plan = BlankPlan(np.where(erased, encoding.blank_of(ids), ids), encoding, score, given_voices=given)
        return plan, [], len(plan.ids)

    def blank_bars(self, primer: list[int], bars: int) -> BlankPlan:
        """Music from nothing, or after a primer: `bars` bars of 4/4 whose every cell is a blank."""
        encoding = self.encoding
        steps = 4 * encoding.settings.steps_per_quarter
        blanks = [encoding.vocab.offset("BLANK") + v for v in range(encoding.settings.voices)]
        bar = [encoding.vocab.id_of("BAR")] + blanks * steps
        primer_bars = int(np.sum(np.asarray(primer, dtype=np.int64) == encoding.vocab.id_of("BAR")))
        return BlankPlan(np.array(list(primer) + bar * bars, dtype=np.int64), encoding, primer_bars=primer_bars)

    def finish(self, row: list[int], primer: list[int], qpm: float, given=None) -> Score:
        request = self.request
        if given is not None and given.original is not None:  # the file's tracks, named as it names them
            score = given.assemble(self.encoding.decode_score(row, qpm=60.0))
        else:
            ids = row if given is not None or request.continuation_only else primer + row
            score = self.encoding.decode_score(ids, qpm=qpm)
            for track in score.tracks:
                track.name = f"melodygen {self.encoding.name} t={request.temperature:g} {track.name.lower()}"
        for track in score.tracks[:self.encoding.settings.voices]:
            track.program = request.program or track.program
        return score
