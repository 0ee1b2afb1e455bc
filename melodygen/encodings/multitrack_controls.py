"""Controls of the multitrack encoding: the piece's key, a chord and a note count, in every bar.

A model trained on an encoding with `controls` learns the music *given* these values, so a user
can set them at sampling time (`sample --key Bm --chords "D G A7 D" --density 8`; the request,
`encodings.controls.ControlRequest`, is the same for any encoding that carries controls):

    PROGRAM(flute) PROGRAM(piano)
    BAR TIMESIG(6/8) KEY(D) CHORD(D) DENSITY(7) POS(0) ...   each bar opens with the piece's key,
    BAR KEY(D) CHORD(A7) DENSITY(9) POS(0) ...               its own chord and its note count

Why tokens in the stream (as MidiTok's attribute controls and MIDI-GPT do) rather than side
inputs: every model kind reads them unchanged (RNN, LSTM, Transformer, their fast paths and
caches); the grammar forces a requested value exactly where the token goes, as it forces given
music; and dropping a control in training is deleting its tokens (`dataset.windows`), so the
same model samples with any subset of controls or none.

The key is the piece's, yet it opens every bar: a training window rarely starts at a piece's
header, and a key said once there was not learned (measured, docs/benchmarks.md: a model trained
with the key in the header only wrote the requested key no more often than by chance).

The values are measured from the notes, the same way for training data and for generated music
(so what a sample achieved is read by the function that labelled the training data):
- **key**: Krumhansl-Kessler key of the piece's pitched notes, weighted by duration.
- **chord**: per bar, template matching on how long each pitch class sounds in the bar's first
  half (`harmony.detect_chords`; a bar of two chords is labelled with the first, not with the
  seventh chord their notes make together), in the tracks under the first (the melody) where
  they play there: the chord track of a folk tune, the lower voices of a chorale; else in every
  pitched track; else in the whole bar. A bar where nothing pitched sounds has no chord.
- **density**: per bar, the number of notes that start in it, every track. Counts up to 16
  are exact; above, bins 12.5% apart (`DENSITY_COUNTS`), so a binned count is within 6%.

All three transpose with the music (`MultitrackEncoding.pitch_shift_table`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from melodygen import harmony, meter
from melodygen.encodings.controls import CONTROL_KINDS, DENSITY_COUNTS
from melodygen.encodings.vocab import EventRange

TOKEN_OF = {"key": "KEY", "chord": "CHORD", "density": "DENSITY"}


def density_bins(counts: np.ndarray) -> np.ndarray:
    """The DENSITY value (index into `DENSITY_COUNTS`) of each note count: nearest in ratio."""
    counts = np.asarray(counts, dtype=np.float64)
    table = np.asarray(DENSITY_COUNTS, dtype=np.float64)
    distance = np.abs(np.log((counts[..., None] + 0.5) / (table + 0.5)))
    return distance.argmin(axis=-1)


def control_ranges(kinds: Sequence[str]) -> list[EventRange]:
    """The vocabulary rows of the enabled kinds, in `CONTROL_KINDS` order."""
    rows = {
        "key": EventRange("KEY", 0, harmony.NUM_KEYS - 1,
                          labels=tuple(harmony.key_name(k) for k in range(harmony.NUM_KEYS))),
        "chord": EventRange("CHORD", 0, harmony.NUM_CHORDS - 1,
                            labels=tuple(harmony.chord_name(c) for c in range(harmony.NUM_CHORDS))),
        "density": EventRange("DENSITY", 0, len(DENSITY_COUNTS) - 1, labels=tuple(map(str, DENSITY_COUNTS))),
    }
    return [rows[kind] for kind in CONTROL_KINDS if kind in kinds]


@dataclass(frozen=True)
class PieceControls:
    """The measured controls of a piece: its key (-1 with no pitched note), and per bar its chord
    (-1 where nothing pitched sounds) and how many notes start in it."""

    key: int
    chords: np.ndarray   # int64 (bars,)
    density: np.ndarray  # int64 (bars,)
    melody_bar: np.ndarray    # int64: the bar of each note of the first track (the melody) ...
    melody_pitch: np.ndarray  # ... and its pitch


def measure(notes: dict[str, np.ndarray], bars: list[meter.Bar]) -> PieceControls:
    """The controls of the multitrack encoder's note table (grid steps; see `_note_table`)."""
    n_bars = len(bars)
    density = np.bincount(meter.bar_index(bars, notes["start"]), minlength=n_bars)[:n_bars]
    pitched = ~notes["drum"].astype(bool)
    accompaniment = pitched & (notes["track"] > 0)
    weights, bass = _sounding(notes, pitched, bars, 1.0)
    key = harmony.detect_key(weights.sum(axis=0)) if pitched.any() else -1
    # The bar's chord: what sounds in its first half, under the melody where something does.
    for chosen, share in ((pitched, 0.5), (accompaniment, 1.0), (accompaniment, 0.5)):
        if chosen.any():
            found, found_bass = _sounding(notes, chosen, bars, share)
            playing = found.sum(axis=1) > 0
            weights[playing], bass[playing] = found[playing], found_bass[playing]
    melody = pitched & (notes["track"] == 0)
    return PieceControls(int(key), harmony.detect_chords(weights, bass), density.astype(np.int64),
                         meter.bar_index(bars, notes["start"][melody]), notes["pitch"][melody])


def melody_chords(notes: dict[str, np.ndarray], bars: list[meter.Bar], key: int | None = None,
                  **weights: float) -> np.ndarray:
    """Per bar, a chord for music that is a melody alone (accompaniment's given tune), by
    `harmony.harmonize` (`weights`: its keywords) in `key` (None: the music's key, as `measure`
    finds it): the labels `measure` would give it name its passing notes as chords."""
    pitched = ~notes["drum"].astype(bool)
    first, _ = _sounding(notes, pitched, bars, 0.5)
    whole, _ = _sounding(notes, pitched, bars, 1.0)
    key = harmony.detect_key(whole.sum(axis=0)) if key is None else key
    return harmony.harmonize(first, whole - first, key, **weights)


def _sounding(notes: dict[str, np.ndarray], chosen: np.ndarray, bars: list[meter.Bar], share: float
              ) -> tuple[np.ndarray, np.ndarray]:
    """Per bar, how long each pitch class of the `chosen` notes sounds in the bar's first `share`
    (bars, 12), and the pitch class of the lowest of them sounding there (bars,), -1 where none."""
    n_bars = len(bars)
    starts = np.fromiter((b.start for b in bars), np.int64, n_bars)
    ends = starts + np.fromiter((max(1, round(b.length * share)) for b in bars), np.int64, n_bars)
    start, pitch = notes["start"][chosen], notes["pitch"][chosen]
    end = start + notes["duration"][chosen]
    weights = np.zeros((n_bars, 12))
    lowest = np.full(n_bars, 128)
    first, last = meter.bar_index(bars, start), np.minimum(meter.bar_index(bars, end - 1), n_bars - 1)
    for k in range(int((last - first).max(initial=-1)) + 1):  # a note counts in every bar it sounds in
        bar = first + k
        inside = np.minimum(bar, n_bars - 1)
        overlap = np.minimum(end, ends[inside]) - np.maximum(start, starts[inside])
        on = (bar <= last) & (overlap > 0)
        np.add.at(weights, (bar[on], pitch[on] % 12), overlap[on])
        np.minimum.at(lowest, bar[on], pitch[on])
    return weights, np.where(lowest < 128, lowest % 12, -1)
