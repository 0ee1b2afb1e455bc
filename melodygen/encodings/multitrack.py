"""Whole arrangements on bars and beats: a REMI-style encoding that keeps tracks apart.

A piece is a header, then its bars:

    PROGRAM(flute) PROGRAM(acoustic-grand-piano)   track 1 is a flute, track 2 a piano (header)
    BAR TIMESIG(6/8) POS(0) TEMPO(120)             a bar; its meter and tempo where they change
      TRACK(1:flute) PITCH(72) VEL(85) DUR(3/2)    a note of track 1 at position 0 ...
      TRACK(2:acoustic-grand-piano) PITCH(48) VEL(69) DUR(3) PITCH(55) VEL(69) DUR(3)
    POS(18) TRACK(1:flute) PITCH(74) VEL(85) DUR(1/2)
    BAR ...                                        (as `melodygen tokens` prints them)

- **Tracks stay tracks.** The header lists each track's instrument (a GM program, or
  `PROGRAM(drums)`) in the file's track order; `TRACK(i)` names the i-th. Two tracks with the same
  program (SATB on one program, POP909's three piano tracks) stay two tracks. A file with more
  than `max_tracks` tracks with notes is not used (its manifest entry says how many it has).
- **Grid.** Positions count `steps_per_quarter` steps per quarter note (12: sixteenths and
  eighth-note triplets are exact) from the bar line, through the file's tempo map; bars follow
  its time signatures (`melodygen.meter`; a meter change inside a bar cuts it short, or waits
  for the bar line when the cut bar's length has no TIMESIG). Meters are n/d with d in 1, 2,
  4, 8, 16, whose bar fits the grid and lasts at most `max_bar_quarters` quarters; a file with
  another is not used.
- **Notes.** At a position, notes sorted by track then pitch; `TRACK(i)` only where the track
  changes (each bar starts with none). Pitched notes are `PITCH(p)`, drum notes `DRUM(p)` (so
  transposing never moves a drum). `VEL` is binned (`velocity_bins` equal bins, decoded to the
  bin's middle). `DUR` counts steps, at least 1; a note longer than `max_duration_quarters` is
  cut to that length. Onsets and ends round to the nearest step; a note of one pitch still
  sounding when the same track strikes that pitch again is cut there; of notes with the same
  track, pitch and onset the longest is kept.
- **Tempo and meter.** `TEMPO(b)` after the position where the tempo changes to another bin:
  bins are `tempo_steps_per_octave` per doubling around 120 qpm, from `min_qpm` to `max_qpm`
  (tempos outside are clipped; 8 per octave: within 4.4% of the file's). The first bar always
  gives `TIMESIG` and `POS(0) TEMPO`; later bars give `TIMESIG` only when the meter changes.
- **Drums** (channel 10) are kept unless `drums = false`. An empty bar is just `BAR` (a long
  silence costs one id per bar).
- **Controls** (`controls`, any of "key", "chord", "density"; none by default): `KEY`, `CHORD`
  and `DENSITY` follow each bar's `BAR [TIMESIG]`, each measured from the notes
  (`multitrack_controls`, which says why they are tokens). Decoding skips them.
- **Repeats** (`repeats = K`, 0 = off by default): a bar whose body (what follows its head
  `BAR [TIMESIG] [KEY] [CHORD] [DENSITY]`) is an earlier bar's, at most K bars back, is written
  as its head and `REPEAT(-k)`, with `SHIFT(+s)` after it when the copy is transposed by s
  semitones (1..12 up or down; drums never move): `BAR REPEAT(-8)` is bar i-8 again. Their ids
  come last in the vocabulary, so without repeats every id stays as it was
  (`multitrack_repeats`, which says how the bar is chosen and what decoding does). With
  `varied_repeats` too, a bar that opens as an earlier bar and then changes is `REPEAT(-k)
  POS(p)` and its notes from p on: bar i-k up to position p, then new music.
- **One meter** (`meter = "4/4"`, empty by default: the files' own): every piece is laid out in
  that meter, whatever its time signatures say. For corpora whose time signatures are wrong:
  617 of POP909's 909 files say 1/4 throughout, which made every beat a bar.

Decoding is lenient and counts what it drops (see `_decode_score`); `grammar` bans every id
decoding would drop (and a few it would accept, such as pitches out of order at a position),
so sampled pieces always decode whole. One `BAR` counts one unit of time
(`BARS`), so `sample --bars N` gives N new bars whatever the meter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np

from melodygen import harmony, meter
from melodygen.encodings.base import BARS, Encoding, TimePerId, sort_notes
from melodygen.encodings.controls import CONTROL_KINDS, ControlRequest
from melodygen.encodings.multitrack_controls import (
    TOKEN_OF,
    PieceControls,
    control_ranges,
    density_bins,
    measure,
    melody_chords,
)
from melodygen.encodings.multitrack_repeats import BarBodies, fold_repeats, repeat_ranges
from melodygen.encodings.vocab import EventRange, Vocabulary
from melodygen.errors import NoUsableMusicError
from melodygen.instruments import DRUMS, instrument_name
from melodygen.notes import Note, Score, TempoMap, Track
from melodygen.settings import check

_DENOMINATORS = (1, 2, 4, 8, 16)
_CONTROL_TOKENS = frozenset(TOKEN_OF.values())
# Kinds of item in the sorted event table; at one (bar, position) a position's tempo comes
# before its notes.
_BAR_ITEM, _POS_ITEM, _NOTE_ITEM = 0, 1, 2


@dataclass(frozen=True)
class MultitrackSettings:
    """See the module docstring for what each setting does."""

    steps_per_quarter: int = 12
    max_bar_quarters: int = 8
    max_duration_quarters: int = 8
    velocity_bins: int = 16
    tempo_steps_per_octave: int = 8
    min_qpm: float = 40.0
    max_qpm: float = 250.0
    max_tracks: int = 16
    drums: bool = True
    controls: tuple[str, ...] = ()
    repeats: int = 0
    varied_repeats: bool = False
    meter: str = ""

    def __post_init__(self):
        check(self, {
            "steps_per_quarter must be in 1..96": lambda: 1 <= self.steps_per_quarter <= 96,
            "max_bar_quarters must be in 1..32": lambda: 1 <= self.max_bar_quarters <= 32,
            "max_duration_quarters must be in 1..64": lambda: 1 <= self.max_duration_quarters <= 64,
            "velocity_bins must be in 1..127 and give bins that are all used (e.g. 8, 16, 32)":
                lambda: 1 <= self.velocity_bins <= 127
                and self.velocity_bin_size * (self.velocity_bins - 1) < 127,
            "tempo_steps_per_octave must be in 1..48": lambda: 1 <= self.tempo_steps_per_octave <= 48,
            "need 1 <= min_qpm < max_qpm <= 1000": lambda: 1 <= self.min_qpm < self.max_qpm <= 1000,
            "max_tracks must be in 1..64": lambda: 1 <= self.max_tracks <= 64,
            f"controls must name each of {', '.join(CONTROL_KINDS)} at most once":
                lambda: set(self.controls) <= set(CONTROL_KINDS) and len(set(self.controls)) == len(self.controls),
            "repeats must be in 0..64 (bars back; 0: off)": lambda: 0 <= self.repeats <= 64,
            "varied_repeats needs repeats (> 0)": lambda: not self.varied_repeats or self.repeats > 0,
            "meter must be empty (the files' own) or one with a token, e.g. '4/4'":
                lambda: not self.meter or self.fixed_meter() in self.meters(),
        })

    def fixed_meter(self) -> tuple[int, int] | None:
        """The `meter` setting as (numerator, denominator); None when the files' own are kept."""
        if not self.meter:
            return None
        numerator, _, denominator = self.meter.partition("/")
        return (int(numerator), int(denominator)) if numerator.isdigit() and denominator.isdigit() else (0, 0)

    def meters(self) -> list[tuple[int, int]]:
        """Every meter with a token: n/d, d in 1..16 dividing the grid, at most max_bar_quarters."""
        whole = 4 * self.steps_per_quarter
        return [(n, d) for d in _DENOMINATORS if whole % d == 0
                for n in range(1, self.max_bar_quarters * d // 4 + 1)]

    @property
    def velocity_bin_size(self) -> int:
        """Velocities per bin: bin b (1-based) holds 1 + (b - 1) * size .. b * size."""
        return math.ceil(127 / self.velocity_bins)

    def tempos(self) -> list[float]:
        """The qpm of each TEMPO bin, slowest first."""
        return [120.0 * 2 ** (k / self.tempo_steps_per_octave) for k in self.tempo_exponents()]

    def tempo_exponents(self) -> range:
        """k for each tempo bin 120 * 2 ** (k / tempo_steps_per_octave), min_qpm..max_qpm."""
        k = self.tempo_steps_per_octave
        return range(math.floor(k * math.log2(self.min_qpm / 120)),
                     math.ceil(k * math.log2(self.max_qpm / 120)) + 1)


class MultitrackEncoding(Encoding):
    """Arrangements: a header of track instruments, then bars of positions and notes per track."""

    name = "multitrack"
    settings_type = MultitrackSettings
    stream_version = 1  # bump when encode's ids change (see Encoding.stream_version)
    keeps_instruments = True

    def __init__(self, settings: MultitrackSettings | None = None):
        super().__init__(settings)
        s = self.settings
        self.meters = s.meters()
        self.meter_index = {m: i for i, m in enumerate(self.meters)}
        self.tempos = np.array(s.tempos())
        self.max_duration_steps = s.max_duration_quarters * s.steps_per_quarter

    def _build_vocab(self) -> Vocabulary:
        s = self.settings
        spq = s.steps_per_quarter
        tempos, meters, bin_size = s.tempos(), s.meters(), s.velocity_bin_size
        return Vocabulary([
            EventRange("PROGRAM", 0, DRUMS, labels=tuple(map(str, range(DRUMS))) + ("drums",)),
            EventRange("BAR", valued=False),
            EventRange("TIMESIG", 0, len(meters) - 1, labels=tuple(f"{n}/{d}" for n, d in meters)),
            EventRange("POS", 0, s.max_bar_quarters * spq - 1),
            EventRange("TEMPO", 0, len(tempos) - 1, labels=tuple(f"{q:.4g}" for q in tempos)),
            EventRange("TRACK", 0, s.max_tracks - 1, offset=1),
            EventRange("PITCH", 0, 127),
            EventRange("DRUM", 0, 127),
            EventRange("VEL", 1, s.velocity_bins,
                       labels=tuple(str(_bin_velocity(b, bin_size)) for b in range(1, s.velocity_bins + 1))),
            EventRange("DUR", 1, s.max_duration_quarters * spq,
                       labels=tuple(str(Fraction(d, spq)) for d in range(1, s.max_duration_quarters * spq + 1))),
            *control_ranges(s.controls),
            *repeat_ranges(s.repeats),  # last: without repeats every other id stays where it was
        ])

    @property
    def reads_drums(self) -> bool:
        return self.settings.drums

    # ------------------------------------------------------------------------------ encoding

    def encode(self, score: Score) -> np.ndarray:
        return self.encode_with(score, repeats=True)

    def encode_with(self, score: Score, *, track_at_every_position: bool = False,
                    controls: bool = True, repeats: bool = False, asked: ControlRequest | None = None) -> np.ndarray:
        """`encode`; with `track_at_every_position`, each position's first note names its track
        even when the track carries over (what given music needs, `multitrack_given`: notes the
        model inserts between two given positions must not change the track a given note is on).
        `controls=False` leaves the control tokens out (given music is not labelled); `asked`'s
        key and chords (one per bar, the list repeating) are written instead of the measured ones
        (music given to be accompanied over chords of the user's). `repeats=True` (what `encode`
        does) writes repeated bars as REPEAT under the `repeats` setting; off by default, since
        given music is forced note by note."""
        v = self.vocab
        tracks, notes, bars = self._laid_out(score)
        measured = measure(notes, bars) if self.settings.controls and controls else None
        if measured is not None and asked is not None:
            measured = replace(measured, key=measured.key if asked.key is None else asked.key,
                               chords=measured.chords if asked.chords is None else
                               np.resize(np.asarray(asked.chords, dtype=np.int64), len(bars)))
        header = [v.id_of("PROGRAM", DRUMS if t.is_drum else t.program) for t in tracks]
        ids = np.concatenate([np.array(header, dtype=np.int64),
                              self._body_ids(notes, bars, self._tempo_changes(score),
                                             track_at_every_position, measured)])
        if repeats and self.settings.repeats:
            ids = fold_repeats(ids, v, self.settings.repeats, self.settings.varied_repeats)
        return ids.astype(np.uint16)

    def controls_of(self, score: Score) -> PieceControls:
        """The key, per-bar chords and per-bar note counts of `score`, measured as `encode`
        labels training data (`multitrack_controls`), whatever controls this encoding has."""
        _, notes, bars = self._laid_out(score)
        return measure(notes, bars)

    def melody_chords(self, score: Score, key: int | None = None, **weights: float) -> np.ndarray:
        """A chord for each bar of `score`, a melody alone, in `key` (None: its measured key)
        (`multitrack_controls.melody_chords`)."""
        _, notes, bars = self._laid_out(score)
        return melody_chords(notes, bars, key, **weights)

    def _laid_out(self, score: Score) -> tuple[list[Track], dict[str, np.ndarray], list[meter.Bar]]:
        """(the tracks encoded, their note table, the bars up to the last onset)."""
        s = self.settings
        tracks = [t for t in score.tracks if t.notes and (s.drums or not t.is_drum)]
        if not tracks:
            raise NoUsableMusicError("no notes" if not score.note_count() else "only drum tracks (drums = false)")
        if len(tracks) > s.max_tracks:
            raise NoUsableMusicError(f"{len(tracks)} tracks with notes, more than the encoding's "
                                     f"max_tracks = {s.max_tracks}")
        notes = self._note_table(score, tracks)
        return tracks, notes, self.bars_of(score, int(notes["start"].max()))

    def bars_of(self, score: Score, last_onset: int) -> list[meter.Bar]:
        """The bars `encode` lays out for `score` (steps), up to the one holding grid step
        `last_onset`: under its meter changes up to there, cut bars only where a TIMESIG holds
        them. A meter with no token -> `NoUsableMusicError`."""
        spq = self.settings.steps_per_quarter
        fixed = self.settings.fixed_meter()
        changes = ([(0, fixed)] if fixed else
                   [c for c in meter.signature_steps(score, spq) if c[0] <= last_onset])
        unknown = next((m for _, m in changes if m not in self.meter_index), None)
        if unknown is not None:
            raise NoUsableMusicError(f"time signature {unknown[0]}/{unknown[1]} has no token (meters "
                                     f"up to {self.settings.max_bar_quarters} quarters, denominators 1-16)")
        return meter.lay_out_bars(changes, last_onset, spq, self.meter_index)

    def grid_step(self, tempo_map, seconds: float) -> int:
        """The grid step `encode` puts a time in seconds on (through `tempo_map`)."""
        return round(tempo_map.to_beats(seconds) * self.settings.steps_per_quarter)

    def _note_table(self, score: Score, tracks: list[Track]) -> dict[str, np.ndarray]:
        """Every note on the grid (track, drum, pitch, start, duration, velocity bin), sorted by
        (start, track, pitch), after the rules of the module docstring."""
        s = self.settings
        columns = {key: [] for key in ("track", "drum", "pitch", "start", "end", "velocity")}
        for i, track in enumerate(tracks):
            n = len(track.notes)
            columns["track"].append(np.full(n, i))
            columns["drum"].append(np.full(n, track.is_drum))
            columns["pitch"].append(np.fromiter((x.pitch for x in track.notes), np.int64, n))
            columns["start"].append(score.tempo_map.beats_of([x.start for x in track.notes]))
            columns["end"].append(score.tempo_map.beats_of([x.end for x in track.notes]))
            columns["velocity"].append(np.fromiter((x.velocity for x in track.notes), np.int64, n))
        t = {key: np.concatenate(value) for key, value in columns.items()}
        start = np.rint(t["start"] * s.steps_per_quarter).astype(np.int64)
        end = np.rint(t["end"] * s.steps_per_quarter).astype(np.int64)
        duration = np.clip(end - start, 1, self.max_duration_steps)
        # Per (track, pitch), by onset, longest last: keep the last of equal onsets, and cut a
        # note still sounding at the next onset of its pitch.
        order = np.lexsort((duration, start, t["pitch"], t["track"]))
        track, pitch, start, duration = t["track"][order], t["pitch"][order], start[order], duration[order]
        same_next = np.append((track[1:] == track[:-1]) & (pitch[1:] == pitch[:-1]), False)
        next_start = np.append(start[1:], 0)
        keep = ~(same_next & (next_start == start))
        duration = np.where(same_next & keep, np.minimum(duration, next_start - start), duration)
        vbin = (np.clip(t["velocity"][order], 1, 127) - 1) // s.velocity_bin_size + 1
        table = {"track": track, "drum": t["drum"][order], "pitch": pitch, "start": start,
                 "duration": duration, "vbin": vbin}
        table = {key: value[keep] for key, value in table.items()}
        final = np.lexsort((table["pitch"], table["track"], table["start"]))
        return {key: value[final] for key, value in table.items()}

    def _tempo_changes(self, score: Score) -> tuple[np.ndarray, np.ndarray]:
        """(step, tempo bin) where the tempo moves to another bin; always one at step 0."""
        tempo_map = score.tempo_map
        steps = np.rint(np.asarray(tempo_map.beats) * self.settings.steps_per_quarter).astype(np.int64)
        bins = self._tempo_bins(np.asarray(tempo_map.qpm))
        steps, last = np.append(steps, np.iinfo(np.int64).max), []
        for i in range(len(bins)):  # at one step the last change wins; repeats of a bin are dropped
            if steps[i] == steps[i + 1]:
                continue
            if not last or last[-1][1] != bins[i]:
                last.append((int(steps[i]), int(bins[i])))
        return np.array([x for x, _ in last], dtype=np.int64), np.array([b for _, b in last], dtype=np.int64)

    def _tempo_bins(self, qpm: np.ndarray) -> np.ndarray:
        k = self.settings.tempo_steps_per_octave
        exponents = self.settings.tempo_exponents()
        wanted = np.rint(k * np.log2(np.maximum(qpm, 1e-9) / 120.0)).astype(np.int64)
        return np.clip(wanted, exponents.start, exponents.stop - 1) - exponents.start

    def _body_ids(self, notes: dict[str, np.ndarray], bars: list[meter.Bar],
                  tempos: tuple[np.ndarray, np.ndarray], track_at_every_position: bool = False,
                  measured: PieceControls | None = None) -> np.ndarray:
        """The ids after the header, built as one sorted table of items (bars, positions, notes),
        each with up to 5 ids (-1 where absent)."""
        v = self.vocab
        starts = np.fromiter((b.start for b in bars), np.int64, len(bars))
        tempo_steps, tempo_bins = tempos
        inside = tempo_steps < starts[-1] + bars[-1].length  # changes after the last bar: nothing to play
        tempo_steps, tempo_bins = tempo_steps[inside], tempo_bins[inside]
        note_bar = meter.bar_index(bars, notes["start"])
        tempo_bar = meter.bar_index(bars, tempo_steps)
        # Positions: every (bar, pos) with a note or a tempo change, once.
        keys = np.unique(np.concatenate([note_bar * (1 << 20) + notes["start"] - starts[note_bar],
                                         tempo_bar * (1 << 20) + tempo_steps - starts[tempo_bar]]))
        pos_bar, pos = keys >> 20, keys & ((1 << 20) - 1)
        tempo_at = dict(zip((tempo_bar * (1 << 20) + tempo_steps - starts[tempo_bar]).tolist(), tempo_bins.tolist()))
        n_bars, n_pos, n_notes = len(bars), len(keys), len(notes["start"])
        # Bars: BAR, TIMESIG where the meter changes (always in the first bar).
        bar_ids = np.full((n_bars, 5), -1, dtype=np.int64)
        bar_ids[:, 0] = v.id_of("BAR")
        meter_ids = np.array([v.offset("TIMESIG") + self.meter_index[b.meter] for b in bars])
        changed = np.array([i == 0 or bars[i].meter != bars[i - 1].meter for i in range(n_bars)], dtype=bool)
        bar_ids[changed, 1] = meter_ids[changed]
        if measured is not None:  # then KEY, CHORD (where something pitched sounds), DENSITY
            if "key" in self.settings.controls and measured.key >= 0:
                bar_ids[:, 2] = v.offset("KEY") + measured.key
            if "chord" in self.settings.controls:
                chorded = measured.chords >= 0
                bar_ids[chorded, 3] = v.offset("CHORD") + measured.chords[chorded]
            if "density" in self.settings.controls:
                bar_ids[:, 4] = v.offset("DENSITY") + density_bins(measured.density)
        # Positions: POS, TEMPO where it changes.
        pos_ids = np.full((n_pos, 5), -1, dtype=np.int64)
        pos_ids[:, 0] = v.offset("POS") + pos
        tempo_of = np.array([tempo_at.get(k, -1) for k in keys.tolist()], dtype=np.int64)
        pos_ids[tempo_of >= 0, 1] = v.offset("TEMPO") + tempo_of[tempo_of >= 0]
        # Notes: TRACK where the track changes within the bar, then PITCH/DRUM, VEL, DUR.
        note_ids = np.full((n_notes, 5), -1, dtype=np.int64)
        new_track = np.ones(n_notes, dtype=bool)
        new_track[1:] = (notes["track"][1:] != notes["track"][:-1]) | (note_bar[1:] != note_bar[:-1])
        if track_at_every_position:
            new_track[1:] |= notes["start"][1:] != notes["start"][:-1]
        note_ids[new_track, 0] = v.offset("TRACK") + notes["track"][new_track]
        note_ids[:, 1] = np.where(notes["drum"], v.offset("DRUM"), v.offset("PITCH")) + notes["pitch"]
        note_ids[:, 2] = v.offset("VEL") + notes["vbin"] - 1
        note_ids[:, 3] = v.offset("DUR") + notes["duration"] - 1
        # One table, sorted by (bar, position, kind); notes already come in (start, track, pitch).
        bar_of = np.concatenate([np.arange(n_bars), pos_bar, note_bar])
        pos_of = np.concatenate([np.full(n_bars, -1), pos, notes["start"] - starts[note_bar]])
        kind = np.concatenate([np.full(n_bars, _BAR_ITEM), np.full(n_pos, _POS_ITEM), np.full(n_notes, _NOTE_ITEM)])
        order = np.lexsort((np.arange(len(kind)), kind, pos_of, bar_of))  # stable in the notes' order
        ids = np.concatenate([bar_ids, pos_ids, note_ids])[order].reshape(-1)
        return ids[ids >= 0]

    # ------------------------------------------------------------------------------ decoding

    def _decode(self, ids: Sequence[int], qpm: float) -> tuple[list[Note], int]:
        score, dropped = self._decode_score(ids, qpm)
        return sort_notes(n for t in score.tracks for n in t.notes), dropped

    def decode_score(self, ids: Sequence[int], qpm: float = 120.0) -> Score:
        """Tracks in header order, named after their instruments; `qpm` is the tempo until
        the first TEMPO. Ids that end on a bar line (what `sample --bars` makes) end the piece
        there, notes still sounding cut at it; others end with their last note."""
        return self._decode_score(ids, qpm)[0]

    def _decode_score(self, ids: Sequence[int], qpm: float) -> tuple[Score, int]:
        """(Score, ids dropped). Lenient, so any in-vocabulary ids decode: PROGRAM after the
        first BAR or past max_tracks, TIMESIG not right after BAR, POS not after the bar's last
        position or outside the bar, TEMPO before any BAR, TRACK of no header track, PITCH on a
        drum track or DRUM on a pitched one, a note without TRACK/POS/VEL/DUR in order, and a
        note repeating track, pitch and onset are each dropped and counted (a note's VEL and
        DUR go with it); so are a REPEAT not right after the bar head or pointing before the
        first bar, a SHIFT not right after a REPEAT, and what follows a REPEAT in its bar other
        than a varied repeat's cut and new part (`multitrack_repeats`). A note the ids stop in
        the middle of is left out, not counted: the stream just stopped."""
        s, spq = self.settings, self.settings.steps_per_quarter
        programs: list[int] = []
        notes: list[tuple[int, int, int, int, int]] = []  # (track, pitch, start, duration, velocity bin)
        seen: set[tuple[int, int, int]] = set()
        tempos: dict[int, float] = {0: qpm}
        meters: dict[int, tuple[int, int]] = {}
        bar_start, bar_length, bar_meter, bars = 0, 4 * spq, meter.DEFAULT_METER, 0
        pos, track, pending, dropped, just_opened = -1, -1, [], 0, False
        bodies = BarBodies(s.varied_repeats)  # what each bar holds, for REPEAT
        for name, value in self.vocab.events(ids):
            if name in _CONTROL_TOKENS:
                continue  # a control carries no notes
            if name != "SHIFT":
                bodies.shiftable = False
            if pending and name not in ("VEL", "DUR"):
                dropped += len(pending)  # a note left unfinished
                pending = []
            if name == "PROGRAM":
                if bars or len(programs) >= s.max_tracks:
                    dropped += 1
                else:
                    programs.append(value)
            elif name == "BAR":
                if bars:
                    bodies.close(bar_start, bar_length, notes, seen, tempos)
                    bar_start += bar_length
                bars, pos, track, just_opened = bars + 1, -1, -1, True
                bodies.open_bar()
                meters.setdefault(bar_start, bar_meter)
                continue
            elif name == "TIMESIG":
                if bars and pos < 0 and just_opened:
                    bar_meter = self.meters[value]
                    bar_length = meter.bar_steps(bar_meter, spq)
                    meters[bar_start] = bar_meter
                else:
                    dropped += 1
            elif name == "POS":
                if bars and pos < value < bar_length and (bodies.writable or bodies.take_cut(value)):
                    pos = value
                else:
                    dropped += 1
            elif name == "TEMPO":
                if bars and bodies.writable:
                    tempos[bar_start + max(pos, 0)] = float(self.tempos[value])
                    bodies.bodies[-1].tempos.append((max(pos, 0), float(self.tempos[value])))
                else:
                    dropped += 1
            elif name == "TRACK":
                if value < len(programs) and bars and bodies.writable:
                    track = value
                else:
                    dropped += 1
            elif name in ("PITCH", "DRUM"):
                drum_track = 0 <= track < len(programs) and programs[track] == DRUMS
                if pos >= 0 and track >= 0 and drum_track == (name == "DRUM"):
                    pending = [value]
                else:
                    dropped += 1
            elif name == "VEL":
                if len(pending) == 1:
                    pending.append(value)
                else:
                    dropped += 1 + len(pending)
                    pending = []
            elif name == "DUR":
                if len(pending) == 2:
                    key = (track, pending[0], bar_start + pos)
                    if key in seen:
                        dropped += 3
                    else:
                        seen.add(key)
                        notes.append((track, pending[0], bar_start + pos, value, pending[1]))
                        bodies.bodies[-1].notes.append((track, pending[0], pos, value, pending[1],
                                                        programs[track] == DRUMS))
                else:
                    dropped += 1 + len(pending)
                pending = []
            elif name == "REPEAT":
                if not (bars and pos < 0 and track < 0 and not bodies.started and bodies.take_repeat(value)):
                    dropped += 1
            elif name == "SHIFT":
                if not bodies.take_shift(value):
                    dropped += 1
            just_opened = False
        if bars:
            bodies.close(bar_start, bar_length, notes, seen, tempos)
        # ended on a bar line (no position, no REPEAT in the last bar): the piece ends there
        end_step = bar_start if bars and pos < 0 and bodies.copying is None else None
        return self._score(programs, notes, tempos, meters, end_step), dropped

    def _score(self, programs: list[int], notes: list[tuple], tempos: dict[int, float],
               meters: dict[int, tuple[int, int]], end_step: int | None) -> Score:
        spq = self.settings.steps_per_quarter
        bin_size = self.settings.velocity_bin_size
        tempo_steps = sorted(tempos)
        tempo_map = TempoMap.from_beats([step / spq for step in tempo_steps], [tempos[k] for k in tempo_steps])
        tracks = [Track(instrument_name(p), 0 if p == DRUMS else p, p == DRUMS, []) for p in programs]
        by_track: list[list[tuple[int, int, int, int]]] = [[] for _ in programs]
        for track, pitch, start, duration, vbin in notes:
            end = start + duration if end_step is None else min(start + duration, end_step)
            by_track[track].append((pitch, start, end, vbin))
        for track, found in zip(tracks, by_track):
            found.sort()
            for i, (pitch, start, end, vbin) in enumerate(found):
                if i + 1 < len(found) and found[i + 1][0] == pitch:
                    end = min(end, found[i + 1][1])  # cut where this track strikes the pitch again
                track.notes.append(Note(pitch, _bin_velocity(vbin, bin_size),
                                        tempo_map.to_seconds(start / spq), tempo_map.to_seconds(end / spq)))
            track.notes.sort(key=lambda n: (n.start, n.pitch))
        signatures, last = [], None
        for step in sorted(meters):
            if meters[step] != last:
                signatures.append((tempo_map.to_seconds(step / spq), *meters[step]))
                last = meters[step]
        end = (tempo_map.to_seconds(end_step / spq) if end_step is not None
               else max((n.end for t in tracks for n in t.notes), default=0.0))
        return Score(tracks, tempo_map, signatures, end_time=end)

    # ------------------------------------------------------------------------------ contracts

    def to_dict(self) -> dict:
        """`Encoding.to_dict`, without `repeats` while it is 0, `varied_repeats` while off and
        `meter` while it is empty: an encoding stored before those settings existed then
        compares equal (datasets and checkpoints check the settings)."""
        stored = super().to_dict()
        if not self.settings.repeats:
            del stored["settings"]["repeats"]
        if not self.settings.varied_repeats:
            del stored["settings"]["varied_repeats"]
        if not self.settings.meter:
            del stored["settings"]["meter"]
        return stored

    def readable(self, ids: Sequence[int]) -> list[str]:
        """Tokens, with each TRACK and PROGRAM naming its instrument in one word:
        `TRACK(1:violin)`, `PROGRAM(acoustic-grand-piano)`."""
        programs: list[int] = []
        out = []
        for i in ids:
            name, value = self.vocab.event_of(int(i))
            token = self.vocab.tokens[int(i)]
            if name == "PROGRAM":
                programs.append(value)
                token = f"PROGRAM({_one_word(instrument_name(value))})"
            elif name == "TRACK" and value < len(programs):
                token = f"TRACK({value + 1}:{_one_word(instrument_name(programs[value]))})"
            out.append(token)
        return out

    def control_ids(self) -> dict[str, np.ndarray]:
        v = self.vocab
        return {kind: np.arange(v.offset(TOKEN_OF[kind]), v.offset(TOKEN_OF[kind]) + v.range(TOKEN_OF[kind]).size)
                for kind in CONTROL_KINDS if kind in self.settings.controls}

    def time_per_id(self) -> TimePerId:
        """BAR counts one bar; nothing else moves the bar count."""
        amounts = np.zeros(self.vocab.size)
        amounts[self.vocab.id_of("BAR")] = 1.0
        return TimePerId(amounts, BARS)

    def pitch_shift_table(self, shift: int) -> np.ndarray:
        """PITCH ids move by `shift` (-1 where they leave 0..127); DRUM ids never move."""
        table = np.arange(self.vocab.size, dtype=np.int64)
        first = self.vocab.offset("PITCH")
        pitches = np.arange(128) + shift
        table[first:first + 128] = np.where((pitches >= 0) & (pitches <= 127), first + pitches, -1)
        if "key" in self.settings.controls:
            first = self.vocab.offset("KEY")
            table[first:first + harmony.NUM_KEYS] = first + np.array([harmony.transpose_key(k, shift)
                                                                      for k in range(harmony.NUM_KEYS)])
        if "chord" in self.settings.controls:
            first = self.vocab.offset("CHORD")
            table[first:first + harmony.NUM_CHORDS] = first + np.array([harmony.transpose_chord(c, shift)
                                                                        for c in range(harmony.NUM_CHORDS)])
        return table

    def conditioning(self, request, profile=None):
        from melodygen.encodings.multitrack_conditioning import MultitrackConditioning

        return MultitrackConditioning(self, request, profile)

    @property
    def refers_back(self) -> bool:
        return bool(self.settings.repeats)

    def written_out(self, ids: Sequence[int]) -> np.ndarray:
        """Every REPEAT bar written out (`multitrack_repeats.unfold_repeats`)."""
        from melodygen.encodings.multitrack_repeats import unfold_repeats

        return unfold_repeats(ids, self.vocab) if self.refers_back else np.asarray(ids, dtype=np.int64)

    def given_source(self, ids: Sequence[int], given_tracks: int) -> np.ndarray:
        from melodygen.encodings.multitrack_given import given_source

        return given_source(self, ids, given_tracks)

    def given_notes(self, ids, given_tracks: int) -> np.ndarray:
        from melodygen.encodings.multitrack_given import given_notes

        return given_notes(self, ids, given_tracks)

    def program_ids(self) -> np.ndarray:
        first = self.vocab.offset("PROGRAM")
        return np.arange(first, first + self.vocab.range("PROGRAM").size)

    def grammar(self, primer_ids: Sequence[int], rows: int, device="cpu", instruments=None, given=None,
                controls=None, form=None, ranges=None, meter=None):
        from melodygen.encodings.multitrack_grammar import MultitrackGrammar, parts_for

        parts = parts_for(self, primer_ids, rows, device, instruments, given, controls, form, ranges, meter)
        return MultitrackGrammar(self, primer_ids, rows, device, parts)


def _one_word(name: str) -> str:
    return name.replace(" ", "-")


def _bin_velocity(vbin: int, bin_size: int) -> int:
    """The middle of velocity bin `vbin` (1-based, bins of `bin_size` from velocity 1)."""
    return min(127, 1 + (vbin - 1) * bin_size + bin_size // 2)
