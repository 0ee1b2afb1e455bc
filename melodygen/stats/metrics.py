"""Musical statistics of one score: pitch, rhythm and texture metrics over its non-drum notes.

Pure functions over `melodygen.notes` types; no MIDI parsing here (`midi_io` does that).
Times are measured in quarter notes (beats) through the score's tempo map, so the same
music written at another tempo gets the same statistics. Sustain pedals are ignored: a note
lasts as written.

Definitions (all over the non-drum notes of every track):
- `pitch_class` histogram: note *counts* per pitch class C..B (not duration-weighted, as in
  Yang & Lerch 2020); `pitch_class_entropy` is its Shannon entropy in bits (0..log2 12).
- `pitch_range`: highest minus lowest pitch (semitones); `used_pitches`: distinct pitches.
- `note_density`: notes per quarter note, from the first onset to the last note end.
- `polyphony`: mean number of notes sounding, averaged over the time when at least one sounds.
- `note_length` / `ioi` histograms: note durations and inter-onset intervals (between
  distinct onsets) in quarter notes, each put in the nearest bin on a log2 scale among
  1/16 .. 4 quarter notes; the first bin also takes shorter values, the last longer ones.
- `scale_consistency`: the largest share of notes inside one diatonic scale (any of the 12
  major scales; natural minor scales hold the same pitch classes), as in Mogren's C-RNN-GAN.
- `repetition`: share of 4-grams of onset groups (the sorted pitches starting together, so a
  melody gives its pitch 4-grams) that repeat an earlier 4-gram of the piece; 0 under 4 onsets.
- `empty_beat_rate`: share of the whole beats (quarter-note grid) from the first onset to the
  last note end in which no note sounds.
- `mean_velocity`: mean MIDI velocity.
- Bars (laid out by `melodygen.meter`: the file's meters and their changes, 4/4 without one),
  from the first bar to the one holding the last onset: `empty_bar_rate`, the share of bars in
  which no note starts; `groove_consistency` (Wu & Yang 2020), 1 minus the mean Hamming
  distance between the onset patterns (positions on a 12-per-quarter grid) of adjacent bars,
  divided by the longer bar's positions: 1 = every bar has the same rhythm.
- `tracks`: tracks with non-drum notes. Per track (`ScoreStats.tracks`): name, program, notes,
  lowest and highest pitch, pitch range and polyphony as above.
- structure (repeats at the scale of phrases and bars): see `structure.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from melodygen import meter
from melodygen.errors import NoUsableMusicError
from melodygen.notes import Score
from melodygen.stats.structure import (
    GRID_PER_BEAT,
    STRUCTURE_METRICS,
    bar_contents,
    beats_per_bar,
    self_similarity,
    structure_scalars,
)

PITCH_CLASS_LABELS = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
# Bin centres in quarter notes are 2**-4 .. 2**2; labels name them.
LENGTH_LABELS = ("1/16", "1/8", "1/4", "1/2", "1", "2", "4+")
_LOG2_FIRST_BIN = -4
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
NGRAM = 4
# Times in quarter notes are rounded to this many decimals, so that notes starting together
# (up to float noise in the tempo map) share one onset.
_BEAT_DECIMALS = 6

SCALAR_METRICS = {
    "pitch_class_entropy": "entropy of the pitch-class histogram (bits)",
    "pitch_range": "highest - lowest pitch (semitones)",
    "used_pitches": "distinct pitches",
    "note_density": "notes per quarter note",
    "polyphony": "mean notes sounding while any sounds",
    "scale_consistency": "best share of notes in one major/minor scale",
    "repetition": f"share of repeated {NGRAM}-grams of onsets",
    "empty_beat_rate": "share of beats with no sounding note",
    "mean_velocity": "mean MIDI velocity",
    "empty_bar_rate": "share of bars in which no note starts",
    "groove_consistency": "1 - mean rhythm distance of adjacent bars",
    "tracks": "tracks with non-drum notes",
    **STRUCTURE_METRICS,
}
HISTOGRAM_METRICS = {
    "pitch_class": PITCH_CLASS_LABELS,
    "note_length": LENGTH_LABELS,
    "ioi": LENGTH_LABELS,
}


@dataclass(frozen=True)
class ScoreStats:
    """Statistics of one score: scalar metrics, raw histogram counts (keys as above) and a
    JSON-ready dict per track with non-drum notes."""

    scalars: dict[str, float]
    histograms: dict[str, np.ndarray]
    tracks: list[dict] = ()


@dataclass(frozen=True)
class _NoteArrays:
    pitches: np.ndarray  # int (N,)
    velocities: np.ndarray  # int (N,)
    starts: np.ndarray  # quarter notes (N,)
    ends: np.ndarray  # quarter notes (N,)


def score_stats(score: Score) -> ScoreStats:
    """All metrics of `score`; raises NoUsableMusicError when it has no non-drum notes."""
    notes = _note_arrays(score)
    pc_counts = pitch_class_histogram(notes.pitches)
    scalars = {
        "pitch_class_entropy": entropy_bits(pc_counts),
        "pitch_range": float(notes.pitches.max() - notes.pitches.min()),
        "used_pitches": float(len(np.unique(notes.pitches))),
        "note_density": len(notes.pitches) / float(notes.ends.max() - notes.starts.min()),
        "polyphony": polyphony(notes.starts, notes.ends),
        "scale_consistency": scale_consistency(pc_counts),
        "repetition": repetition(notes.starts, notes.pitches),
        "empty_beat_rate": empty_beat_rate(notes.starts, notes.ends),
        "mean_velocity": float(notes.velocities.mean()),
        **bar_scalars(score, notes.starts),
        "tracks": float(sum(1 for t in score.tracks if t.notes and not t.is_drum)),
        **structure_scalars(notes.starts, notes.pitches, beats_per_bar(score.time_signatures), repetition),
    }
    histograms = {
        "pitch_class": pc_counts,
        "note_length": length_histogram(notes.ends - notes.starts),
        "ioi": length_histogram(np.diff(np.unique(notes.starts))),
    }
    return ScoreStats(scalars=scalars, histograms=histograms, tracks=track_stats(score))


def bar_scalars(score: Score, starts: np.ndarray) -> dict[str, float]:
    """`empty_bar_rate` and `groove_consistency` of onsets `starts` (quarter notes)."""
    grid = GRID_PER_BEAT
    steps = np.rint(starts * grid).astype(np.int64)
    bars = meter.score_bars(score, grid, int(steps.max()))
    bars = bars[int(meter.bar_index(bars, steps.min())):]
    index = meter.bar_index(bars, steps)
    patterns = [set() for _ in bars]
    for i, step in zip(index.tolist(), steps.tolist()):
        patterns[i].add(step - bars[i].start)
    empty = sum(1 for p in patterns if not p) / len(patterns)
    distances = [len(a ^ b) / max(x.length, y.length)
                 for a, b, x, y in zip(patterns, patterns[1:], bars, bars[1:])]
    return {"empty_bar_rate": float(empty),
            "groove_consistency": float(1.0 - np.mean(distances)) if distances else 1.0}


def track_stats(score: Score) -> list[dict]:
    """Per track with non-drum notes: name, program, notes, lowest, highest, pitch_range, polyphony."""
    rows = []
    for track in score.tracks:
        if track.is_drum or not track.notes:
            continue
        pitches = [n.pitch for n in track.notes]
        starts = score.tempo_map.beats_of([n.start for n in track.notes])
        ends = np.maximum(score.tempo_map.beats_of([n.end for n in track.notes]), starts + 1e-6)
        rows.append({"name": track.name, "program": track.program, "notes": len(pitches),
                     "lowest": min(pitches), "highest": max(pitches), "pitch_range": max(pitches) - min(pitches),
                     "polyphony": polyphony(starts, ends)})
    return rows


def bar_self_similarity(score: Score) -> np.ndarray:
    """(bars, bars) self-similarity of the score's non-drum notes (`structure.self_similarity`),
    bars of its first time signature; NoUsableMusicError without notes."""
    notes = _note_arrays(score)
    return self_similarity(bar_contents(notes.starts, notes.pitches, beats_per_bar(score.time_signatures)))


def _note_arrays(score: Score) -> _NoteArrays:
    notes = [n for track in score.tracks if not track.is_drum for n in track.notes]
    if not notes:
        raise NoUsableMusicError(f"{score.source or 'score'}: no non-drum notes")
    starts = np.round(score.tempo_map.beats_of([n.start for n in notes]), _BEAT_DECIMALS)
    ends = np.round(score.tempo_map.beats_of([n.end for n in notes]), _BEAT_DECIMALS)
    return _NoteArrays(
        pitches=np.array([n.pitch for n in notes]),
        velocities=np.array([n.velocity for n in notes]),
        starts=starts,
        ends=np.maximum(ends, starts + 10.0**-_BEAT_DECIMALS),  # keep `end > start` after rounding
    )


def pitch_class_histogram(pitches: np.ndarray) -> np.ndarray:
    """Note counts per pitch class, shape (12,)."""
    return np.bincount(np.asarray(pitches) % 12, minlength=12).astype(np.float64)


def entropy_bits(counts: np.ndarray) -> float:
    """Shannon entropy (bits) of a histogram of counts; 0 for an empty histogram."""
    total = counts.sum()
    if total <= 0:
        return 0.0
    probs = counts[counts > 0] / total
    return float(-(probs * np.log2(probs)).sum() + 0.0)  # + 0.0 turns -0.0 into 0.0


def length_histogram(lengths: np.ndarray) -> np.ndarray:
    """Counts of `lengths` (quarter notes, > 0) in the nearest LENGTH_LABELS bin (log2 scale)."""
    lengths = np.asarray(lengths, dtype=np.float64)
    lengths = lengths[lengths > 0]
    bins = np.clip(np.rint(np.log2(lengths)) - _LOG2_FIRST_BIN, 0, len(LENGTH_LABELS) - 1)
    return np.bincount(bins.astype(np.int64), minlength=len(LENGTH_LABELS)).astype(np.float64)


def polyphony(starts: np.ndarray, ends: np.ndarray) -> float:
    """Mean count of sounding notes over the time when at least one note sounds."""
    times = np.concatenate([starts, ends])
    deltas = np.concatenate([np.ones(len(starts)), -np.ones(len(ends))])
    # Events at equal times leave zero-length spans, which weigh nothing: a note ending where
    # the next starts (legato) does not count as overlap, whatever order they sort in.
    order = np.argsort(times, kind="stable")
    sounding = np.cumsum(deltas[order])[:-1]
    spans = np.diff(times[order])
    busy = sounding > 0
    return float((sounding[busy] * spans[busy]).sum() / spans[busy].sum())


def scale_consistency(pc_counts: np.ndarray) -> float:
    """Largest share of the counted notes that fall inside one major (= natural minor) scale."""
    total = pc_counts.sum()
    if total <= 0:
        return 0.0
    in_scale = [pc_counts[[(root + step) % 12 for step in MAJOR_SCALE]].sum() for root in range(12)]
    return float(max(in_scale) / total)


def repetition(starts: np.ndarray, pitches: np.ndarray, n: int = NGRAM) -> float:
    """Share of n-grams of onset groups that already occurred earlier in the piece."""
    groups: dict[float, list[int]] = {}
    for start, pitch in zip(starts, pitches):
        groups.setdefault(float(start), []).append(int(pitch))
    sequence = [tuple(sorted(groups[t])) for t in sorted(groups)]
    ngrams = [tuple(sequence[i : i + n]) for i in range(len(sequence) - n + 1)]
    if not ngrams:
        return 0.0
    return 1.0 - len(set(ngrams)) / len(ngrams)


def empty_beat_rate(starts: np.ndarray, ends: np.ndarray) -> float:
    """Share of whole beats between the first onset and the last end with no sounding note."""
    first = int(np.floor(starts.min()))
    lo = np.floor(starts).astype(np.int64) - first
    hi = np.ceil(ends).astype(np.int64) - first  # exclusive: a note ending on a beat leaves it
    cover = np.zeros(int(hi.max()) + 1)
    np.add.at(cover, lo, 1)
    np.add.at(cover, hi, -1)
    sounding = np.cumsum(cover)[:-1] > 0
    return float(1.0 - sounding.mean())
