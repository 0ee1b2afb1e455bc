"""How well a piece obeys the controls it was sampled with: requested vs achieved, bar by bar.

The achieved values are measured the way the training data was labelled
(`MultitrackEncoding.controls_of`), so "achieved" means what the model would have been told
had this piece been in its training data:
- **density**: the bar's note count within `DENSITY_TOLERANCE` (15%) of the request;
- **chord**: the bar's measured chord is the requested one; and, what a listener hears, the
  share of the melody's notes (first track) whose pitch class is a tone of the requested chord;
- **key**: the piece's measured key is the requested one, and the share of its pitched notes'
  duration on the requested key's scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from melodygen import harmony
from melodygen.encodings.controls import DENSITY_TOLERANCE, ControlRequest
from melodygen.encodings.multitrack_controls import PieceControls


@dataclass
class Adherence:
    """Per steered bar: the requested and achieved values (None where not requested); per
    piece: the summary figures (`summary`), each None when its control was not requested."""

    bars: list[dict] = field(default_factory=list)
    key: dict | None = None
    summary: dict = field(default_factory=dict)


def density_within(achieved: int, wanted: int) -> bool:
    """Whether a bar's note count is within `DENSITY_TOLERANCE` of the requested one."""
    return abs(achieved - wanted) <= DENSITY_TOLERANCE * wanted


def measure_adherence(measured: PieceControls, request: ControlRequest, first_bar: int = 0,
                      bars: int | None = None, key_weights: np.ndarray | None = None) -> Adherence:
    """Compare `measured` (the piece's `controls_of`) with `request` over its steered bars:
    `bars` of them from `first_bar` (None: every measured bar from there; bars past the last
    note count as empty). `key_weights` (12,), the piece's duration per pitch class, gives the
    key's scale share."""
    count = bars if bars is not None else max(0, len(measured.density) - first_bar)
    rows, within, chord_hits, tones, onsets = [], [], [], 0, 0
    for j in range(count):
        i = first_bar + j
        achieved_density = int(measured.density[i]) if i < len(measured.density) else 0
        achieved_chord = int(measured.chords[i]) if i < len(measured.chords) else -1
        row = {"bar": i + 1, "density": None, "achieved_density": achieved_density,
               "chord": None, "achieved_chord": harmony.chord_name(achieved_chord) if achieved_chord >= 0 else "-",
               "chord_tone_rate": None}
        if request.density is not None:
            wanted = request.density[j % len(request.density)]
            row["density"] = wanted
            within.append(density_within(achieved_density, wanted))
        if request.chords is not None:
            wanted = request.chords[j % len(request.chords)]
            row["chord"] = harmony.chord_name(wanted)
            chord_hits.append(achieved_chord == wanted)
            pitches = measured.melody_pitch[measured.melody_bar == i]
            on = int(np.isin(pitches % 12, harmony.chord_tones(wanted)).sum())
            row["chord_tone_rate"] = on / len(pitches) if len(pitches) else None
            tones, onsets = tones + on, onsets + len(pitches)
        rows.append(row)
    summary = {
        "bars": count,
        "density_within": float(np.mean(within)) if within else None,
        "chord_match": float(np.mean(chord_hits)) if chord_hits else None,
        "chord_tone_rate": tones / onsets if onsets else None,
    }
    key = None
    if request.key is not None:
        fit = harmony.key_fit(key_weights, request.key) if key_weights is not None else None
        key = {"key": harmony.key_name(request.key),
               "achieved_key": harmony.key_name(measured.key) if measured.key >= 0 else "-",
               "scale_share": fit}
        summary["key_match"] = float(measured.key == request.key)
        summary["key_scale_share"] = fit
    return Adherence(rows, key, summary)


def pitch_class_time(score) -> np.ndarray:
    """(12,) seconds of note time per pitch class over the pitched tracks of `score`: what a
    piece's key and scale share are measured on."""
    weights = np.zeros(12)
    for track in score.tracks:
        if not track.is_drum:
            for note in track.notes:
                weights[note.pitch % 12] += note.end - note.start
    return weights


def piece_adherence(encoding, score, request: ControlRequest, first_bar: int = 0,
                    bars: int | None = None) -> Adherence:
    """`measure_adherence` of a `Score` under a multitrack `encoding` (any controls setting).
    A piece asked for chords that has one pitched track says so (`summary["missing"]`): its
    chords were then read from the melody alone, as no accompaniment played them."""
    adherence = measure_adherence(encoding.controls_of(score), request, first_bar, bars, pitch_class_time(score))
    pitched = sum(1 for track in score.tracks if track.notes and not track.is_drum)
    if request.chords is not None and pitched < 2:
        adherence.summary["missing"] = "no chord track: the model wrote one pitched track, the chords are its melody's"
    return adherence


def describe_adherence(adherence: Adherence) -> str:
    """One line: what was asked and how much of it the piece does."""
    s, parts = adherence.summary, []
    if s.get("density_within") is not None:
        parts.append(f"notes per bar within {DENSITY_TOLERANCE:.0%} of the request in {s['density_within']:.0%} "
                     f"of {s['bars']} bars")
    if s.get("chord_match") is not None:
        tones = f", melody on its tones {s['chord_tone_rate']:.0%}" if s.get("chord_tone_rate") is not None else ""
        parts.append(f"chord as asked in {s['chord_match']:.0%} of bars{tones}")
    if adherence.key is not None:
        share = adherence.key["scale_share"]
        parts.append(f"key {adherence.key['achieved_key']} (asked {adherence.key['key']}"
                     + (f", {share:.0%} of it on that scale)" if share is not None else ")"))
    if s.get("missing"):
        parts.append(s["missing"])
    return "; ".join(parts) or "no controls measured"
