"""Given music for the multitrack encoding: accompaniment and infilling by constrained decoding.

- **Accompaniment** (`sample --accompany FILE`): some tracks of a piece are given (a melody); the
  model writes new tracks (chords, lower voices) in time with them.
- **Infilling** (`sample --primer FILE --infill A-B`): bars A..B of a piece are written again,
  every track, between the bars before and after them.

How: the given music is encoded (`GivenPlan.ids`: header, bars, a closing `BAR`), and the
grammar forces its ids (`GivenRules`, a part of `multitrack_grammar`) where they come in the stream; between two given
positions, and after the given notes of a position, the model may write notes of the tracks it
is free to write (`free_from`: the new tracks when accompanying, every track inside bars A..B
when infilling). The given tracks come first in the track order, so at every position the model
has heard the given notes of that position before it writes its own. It is the model `sample`
uses, trained left to right, so nothing is retrained; the price is that it does not see the
given music ahead of the position it writes (anticipation, Thickstun et al. 2023, or MIDI-GPT's
infilling order would let it plan for what comes; both need another training stream). Infilled
bars are conditioned on the bars before them; the bars after are forced back in unchanged.

Given notes come back as the file has them: `assemble` puts the file's own tracks (its `Note`s,
tempo map and meter, and its resolution, so the writer puts them on their own ticks) into the
result, and lays only the written notes onto its tempo map. `given_mask` tells the copy check
which ids of the result are the file's, so it judges only what the model wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from melodygen.encodings.controls import ControlRequest
from melodygen.encodings.multitrack_grammar import BIG, TRACK_FIELD, GrammarPart
from melodygen.errors import ConfigError
from melodygen.notes import Note, Score, Track

NOTHING_FREE = 1 << 20  # a `free_from` larger than any track index: no track may be written


@dataclass
class GivenPlan:
    """The given ids, and per given id the lowest track the model may write before it."""

    ids: np.ndarray          # int64 (L,): header, bars, closing BAR
    free_from: np.ndarray    # int64 (L,)
    original: Score          # the file as read: what comes back unchanged
    tracks: list[Track]      # the file's tracks the encoding keeps, in its track order
    given_tracks: int        # accompaniment: the first k tracks are given (their tracks: `tracks`)
    encoding: object         # the multitrack encoding the plan is for
    region: tuple[int, int] | None = None  # infilling: grid steps [start, end) written again
    bars: tuple[int, int] | None = None    # infilling: the same as bars A..B (1-based, inclusive)

    def assemble(self, decoded: Score) -> Score:
        """The piece to write: the given notes as the file has them, plus the written notes laid
        onto the file's tempo map through their beats."""
        tempo = self.original.tempo_map

        def laid(note: Note) -> Note:
            start = tempo.to_seconds(decoded.tempo_map.to_beats(note.start))
            end = tempo.to_seconds(decoded.tempo_map.to_beats(note.end))
            return Note(note.pitch, note.velocity, start, end)

        if self.region is None:  # accompaniment: given tracks, then the new ones
            new = [Track(t.name, t.program, t.is_drum, [laid(n) for n in t.notes])
                   for t in decoded.tracks[self.given_tracks:]]
            tracks = [*self.tracks, *new]
        else:  # infilling: each track outside the region as it was, inside as written
            lo, hi = self.region
            step = self.encoding.grid_step  # where the encoder puts a note: its bar is by its step
            spq = self.encoding.settings.steps_per_quarter
            a, b = tempo.to_seconds(lo / spq), tempo.to_seconds(hi / spq)
            tracks = []
            for original, written in zip(self.tracks, decoded.tracks):
                inside = [laid(n) for n in written.notes if lo <= step(decoded.tempo_map, n.start) < hi]
                kept = [n for n in original.notes if not lo <= step(tempo, n.start) < hi]
                notes = sorted(kept + inside, key=lambda n: (n.start, n.pitch))
                pedals = [(down, up) for down, up in original.pedals if up <= a or down >= b]  # none inside
                tracks.append(Track(original.name, original.program, original.is_drum, notes, pedals))
        ends = [n.end for t in tracks for n in t.notes] + [self.original.end_time]
        return Score(tracks, tempo, list(self.original.time_signatures), max(ends), self.original.source,
                     ticks_per_beat=self.original.ticks_per_beat)

    def source(self) -> np.ndarray | None:
        """What an encoder-decoder reads of this plan (`given_source`): the given tracks when
        accompanying; None when infilling (the bars to write would be in it)."""
        return given_source(self.encoding, self.ids, self.given_tracks) if self.region is None else None

    def given_mask(self, ids) -> np.ndarray:
        """Which of `ids` (an assembled piece as the encoding reads it back) are the file's: when
        infilling, the header and every bar outside A..B; when accompanying, the given tracks'
        programs and notes. Bar lines, meters, tempos and controls of the bars the model writes
        in are not: they frame (and label) its own notes. Bool (len(ids),)."""
        v = self.encoding.vocab
        kinds, _ = v.split(ids)
        names = np.array([r.name for r in v.ranges])[kinds]
        if self.bars is not None:
            bar = np.cumsum(names == "BAR")  # the bar each id is in; 0: the header
            return (bar < self.bars[0]) | (bar > self.bars[1])
        programs = np.cumsum(names == "PROGRAM")  # the header lists the given tracks first
        return ((names == "PROGRAM") & (programs <= self.given_tracks)) | given_notes(self.encoding, ids,
                                                                                      self.given_tracks)


def given_notes(encoding, ids, given_tracks: int) -> np.ndarray:
    """Which of `ids` ((..., L)) are notes (`TRACK`, pitch or drum, `VEL`, `DUR`) of the first
    `given_tracks` tracks: each bar's first note names its track, and a note is of the track
    last named. Ids before a window's first `TRACK` are of no track known: not given."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.ndim > 1:
        return np.stack([given_notes(encoding, row, given_tracks) for row in ids.reshape(-1, ids.shape[-1])]
                        ).reshape(ids.shape)
    kinds, values = encoding.vocab.split(ids)
    names = np.array([r.name for r in encoding.vocab.ranges])[kinds]
    last_track = np.maximum.accumulate(np.where(names == "TRACK", np.arange(len(names)), -1))
    track = np.where(last_track >= 0, values[last_track], -1)
    note = np.isin(names, ["TRACK", "PITCH", "DRUM", "VEL", "DUR"])
    return note & (track >= 0) & (track < given_tracks)


def given_source(encoding, ids, given_tracks: int) -> np.ndarray:
    """The first `given_tracks` tracks of a piece's ids as an encoder-decoder reads them
    (`models.seq2seq`): the same form whether the ids are a training piece (controls, REPEAT
    bars, `TRACK` only where it changes) or given music (`GivenPlan.ids`: a track at every
    position, the new tracks' programs, a closing `BAR`): every bar written out, no control or
    special id; the given tracks' programs, bar lines, meters, tempos and notes; `POS` only
    before notes or a tempo; `TRACK` where the track changes (and at a bar's first note), as
    `encode` writes it; no closing bar lines. Int64 (L,)."""
    v = encoding.vocab
    ids = encoding.written_out(np.asarray(ids, dtype=np.int64))
    kinds, values = v.split(ids)
    names = [r.name for r in v.ranges]
    out: list[int] = []
    programs = 0
    track = pending_pos = named = None  # the notes' track; a POS not written yet; the track last named
    keeping = False  # the current note is kept
    for i, kind, value in zip(ids.tolist(), kinds.tolist(), values.tolist()):
        name = names[kind]
        if name == "PROGRAM":
            programs += 1
            if programs <= given_tracks:
                out.append(i)
            continue
        if name == "POS":  # the track carries over to the next position (not into the next bar)
            pending_pos = i
            continue
        if name in ("BAR", "TIMESIG"):
            out.append(i)
            track = pending_pos = named = None
            continue
        if name == "TRACK":
            track = value
            continue
        if name in ("PITCH", "DRUM"):
            keeping = track is not None and track < given_tracks
            if not keeping:
                continue
        elif name not in ("VEL", "DUR", "TEMPO") or (name != "TEMPO" and not keeping):
            continue  # controls, specials, REPEAT/SHIFT left over, and the other tracks' notes
        if pending_pos is not None:
            out.append(pending_pos)
            pending_pos = None
        if name in ("PITCH", "DRUM") and named != track:
            out.append(v.id_of("TRACK", track))
            named = track
        out.append(i)
    bar = v.id_of("BAR")
    while out and out[-1] == bar:
        out.pop()
    return np.asarray(out, dtype=np.int64)


def _kept_tracks(encoding, score: Score) -> list[Track]:
    return [t for t in score.tracks if t.notes and (encoding.settings.drums or not t.is_drum)]


def _bar_of(ids: np.ndarray, bar_id: int) -> np.ndarray:
    """For each position p: how many BAR ids come before it (the bar being written there)."""
    return np.concatenate([[0], np.cumsum(ids == bar_id)])[:-1]


def accompaniment_plan(encoding, score: Score, given: Sequence[int] | None,
                       instruments: Sequence[int], asked=None) -> GivenPlan:
    """Tracks `given` (0-based, among the tracks with notes; None: all) of `score` are given;
    the model writes one new track per instrument of `instruments`. A model with the key and
    chord controls is given them too, measured from the given tracks as training data is
    labelled (`multitrack_controls`); where one pitched track is given (a melody), its chords come from
    `harmony.harmonize` instead, whose labels agree with the real chords' about twice as often
    as the labels of the melody's notes alone. The chord track then follows the harmony of the
    whole bar's melody, not only of the notes before it (a left-to-right model writes a bar's
    chord having heard its first melody note). `asked` (a `controls.ControlRequest`): a key and
    chords to use instead (the key asked is the harmonizer's too)."""
    tracks = _kept_tracks(encoding, score)
    chosen = list(range(len(tracks))) if given is None else list(given)
    bad = [i + 1 for i in chosen if not 0 <= i < len(tracks)]
    if bad or not chosen:
        raise ConfigError(f"{score.source}: has {len(tracks)} track(s) with notes (counted without tracks "
                          f"that have none); no track {bad} to give")
    if not instruments:
        raise ConfigError("accompaniment needs at least one instrument to write (--instruments)")
    if len(chosen) + len(instruments) > encoding.settings.max_tracks:
        raise ConfigError(f"{len(chosen)} given + {len(instruments)} new tracks, more than the model's "
                          f"max_tracks = {encoding.settings.max_tracks}")
    kept = [tracks[i] for i in chosen]
    part = Score(kept, score.tempo_map, score.time_signatures, score.end_time, score.source)
    if len(kept) == 1 and not kept[0].is_drum and "chord" in encoding.settings.controls \
            and (asked is None or asked.chords is None):
        key = None if asked is None else asked.key
        asked = replace(asked or ControlRequest(), chords=tuple(int(c) for c in encoding.melody_chords(part, key)))
    body = np.asarray(encoding.encode_with(part, track_at_every_position=True, asked=asked), dtype=np.int64)
    v = encoding.vocab
    if "density" in encoding.settings.controls:  # counted over the given tracks alone: not the piece's
        body = body[~np.isin(body, encoding.control_ids()["density"])]
    new = [v.id_of("PROGRAM", i) for i in instruments]
    ids = np.concatenate([body[:len(kept)], new, body[len(kept):], [v.id_of("BAR")]])
    bar_of = _bar_of(ids, v.id_of("BAR"))
    free_from = np.where(bar_of >= 1, len(kept), NOTHING_FREE)  # nothing before the first bar
    return GivenPlan(ids, free_from, score, kept, len(kept), encoding)


def infill_plan(encoding, score: Score, first_bar: int, last_bar: int) -> GivenPlan:
    """Bars `first_bar`..`last_bar` (1-based, inclusive) of `score` are written again."""
    v = encoding.vocab
    tracks = _kept_tracks(encoding, score)
    full = Score(tracks, score.tempo_map, score.time_signatures, score.end_time, score.source)
    body = np.asarray(encoding.encode_with(full, track_at_every_position=True, controls=False), dtype=np.int64)
    ids = np.concatenate([body, [v.id_of("BAR")]])
    bar_of = _bar_of(ids, v.id_of("BAR"))
    bars = int(bar_of[-1])
    if not 1 <= first_bar <= last_bar <= bars:
        raise ConfigError(f"{score.source}: --infill {first_bar}-{last_bar} is outside its bars 1-{bars}")
    names = [v.ranges[k].name for k in v.split(ids)[0]]
    inside = (bar_of >= first_bar) & (bar_of <= last_bar)
    # In the region, only bar lines, meters and tempo changes (with their position) stay given.
    keep = ~inside | np.isin(names, ["BAR", "TIMESIG", "TEMPO"])
    keep |= inside & (np.array(names) == "POS") & np.isin(np.append(names[1:], "END"), ["TEMPO"])
    ids, bar_of = ids[keep], bar_of[keep]
    free_from = np.where((bar_of >= first_bar) & (bar_of <= last_bar), 0, NOTHING_FREE)
    last_onset = max(encoding.grid_step(score.tempo_map, n.start) for t in tracks for n in t.notes)
    layout = encoding.bars_of(full, last_onset)  # the bars the ids above were laid out on
    start, stop = layout[first_bar - 1].start, layout[last_bar - 1].start + layout[last_bar - 1].length
    return GivenPlan(ids, free_from, score, tracks, len(tracks), encoding, (start, stop), (first_bar, last_bar))


class GivenRules(GrammarPart):
    """The grammar part that forces a `GivenPlan` in: where the next given id is a note, tempo,
    meter or header id, that id alone; where it is a position or bar line, it, or notes of the
    tracks the model may write (`free_from`) at the current position or at a free position before
    the given one. Past the end: EOS. Each row keeps its place in the given ids (`given_at`)."""

    def __init__(self, encoding, given: GivenPlan, rows: int, device="cpu"):
        from melodygen.encodings.vocab import EOS_ID

        v = encoding.vocab
        kind_names, values = v.split(range(v.size))
        names = np.array([r.name for r in v.ranges])[kind_names]
        place = torch.as_tensor(values, dtype=torch.long)
        ids = torch.as_tensor(given.ids, dtype=torch.long)
        free_from = torch.as_tensor(given.free_from, dtype=torch.long)
        n, given_names = len(ids), names[given.ids]
        pos, bar = torch.as_tensor(given_names == "POS"), torch.as_tensor(given_names == "BAR")
        zone = (pos | bar) & (free_from < encoding.settings.max_tracks)
        before = torch.where(pos, place[ids], v.range("POS").size)
        # per place j in the given ids (j = n: all written): the next given id (-1: none to allow)
        # and the thresholds of `mask`'s bounds (BIG: closed)
        table = torch.full((n + 1, 7), BIG, dtype=torch.long)
        table[:n, 0] = torch.where(ids == EOS_ID, -1, ids)  # EOS comes only once all is written
        table[n, 0] = -1
        table[:n, 1] = torch.where(zone, -before, BIG)       # POS: before the given one
        table[:n, 2] = torch.where(zone, free_from - 1, BIG)  # TRACK: a free track
        table[:n, 3] = torch.where(zone, -1, BIG)            # VEL, DUR
        table[n, 4] = -1                                     # EOS once all is written
        table[:n, 5] = torch.where(zone, free_from + 1, BIG)  # PITCH, DRUM: minus TRACK + 1 (column 7)
        self.length = n
        self.next_id = torch.cat([ids, torch.tensor([-1])]).to(device)  # what a row that draws moves past
        self.table = table.to(device)
        self.at = torch.zeros(rows, dtype=torch.long, device=device)
        column = torch.full((v.size,), 6, dtype=torch.long)  # closed
        number = torch.zeros(v.size, dtype=torch.long)
        for name, col, num in (("POS", 1, -place), ("TRACK", 2, place), ("VEL", 3, number),
                               ("DUR", 3, number), ("PITCH", 7, number + 1), ("DRUM", 7, number + 1)):
            inside = torch.as_tensor(names == name)
            column[inside], number[inside] = col, num[inside]
        column[EOS_ID] = 4
        self.bounds_of = column.to(device), number.to(device)
        self.vocab_ids = torch.arange(v.size, device=device)

    def mask(self, allowed, state):
        at = self.table.index_select(0, self.at)
        free_track = at[:, 5, None] - state[:, TRACK_FIELD, None]  # below 1 where the current track is free
        column, number = self.bounds_of
        zone = torch.cat([at, free_track], 1).index_select(1, column) < number
        return allowed & (zone | (self.vocab_ids == at[:, :1]))

    def follow(self, ids, state) -> None:
        """A row that drew its next given id moves past it."""
        self.at = self.at + (ids == self.next_id[self.at])

    def done(self):
        """(B,) bool: which rows have written all the given music."""
        return self.at >= self.length

    def select_rows(self, rows) -> None:
        self.at = self.at.index_select(0, rows)
