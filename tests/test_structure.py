"""stats.structure: repeats by n-grams and by bars, the longest repeated section, self-similarity."""

import numpy as np
import pytest

from melodygen.notes import Note, Score, TempoMap, Track
from melodygen.stats.metrics import repetition, score_stats
from melodygen.stats.structure import (bar_contents, bar_repeats, bar_variations, beats_per_bar, longest_repeat,
                                       self_similarity)


def phrase(bars: int, seed: int, shift: int = 0) -> list[tuple[float, int]]:
    """(beat, pitch) quarter notes over `bars` 4/4 bars, random but fixed by `seed`."""
    pitches = np.random.default_rng(seed).integers(60, 72, size=4 * bars)
    return [(float(i), int(p) + shift) for i, p in enumerate(pitches)]


def tune(*sections: list[tuple[float, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Sections played one after another (each starts where the previous one's bars end)."""
    starts, pitches, offset = [], [], 0.0
    for section in sections:
        starts += [offset + beat for beat, _ in section]
        pitches += [pitch for _, pitch in section]
        offset += 4 * np.ceil((section[-1][0] + 1) / 4)
    return np.array(starts), np.array(pitches)


def test_aabb_tune_repeats_half_its_bars_and_its_8_bar_sections():
    a, b = phrase(8, seed=1), phrase(8, seed=2)
    contents = bar_contents(*tune(a, a, b, b), bar_beats=4.0)
    assert len(contents) == 32
    assert bar_repeats(contents) == (0.5, 0.5)
    assert longest_repeat(contents) == 8


def test_a_transposed_repeat_counts_only_as_transposed():
    a = phrase(4, seed=3)
    contents = bar_contents(*tune(a, phrase(4, seed=3, shift=5)), bar_beats=4.0)
    exact, transposed = bar_repeats(contents)
    assert exact == 0.0 and transposed == 0.5
    assert longest_repeat(contents) == 0


def test_music_that_never_repeats_scores_zero():
    contents = bar_contents(*tune(phrase(12, seed=4)), bar_beats=4.0)
    assert bar_repeats(contents)[0] == 0.0 and longest_repeat(contents) == 0


def test_a_bar_with_a_changed_ending_varies_its_model_and_an_exact_repeat_does_not():
    a = phrase(2, seed=6)
    changed_end = a[:6] + [(6.0, 50), (7.0, 51)]  # bar 2 as bar 0; bar 3 ends anew: 2 of 4 kept (Jaccard 1/3)
    one_note = a[:7] + [(7.0, 50)]  # bar 3's last note only: 3 of 4 kept (Jaccard 3/5)
    assert bar_variations(bar_contents(*tune(a, changed_end), bar_beats=4.0)) == 0.0
    assert bar_variations(bar_contents(*tune(a, one_note), bar_beats=4.0)) == 1 / 4
    assert bar_variations(bar_contents(*tune(a, a, one_note), bar_beats=4.0)) == 1 / 6


def test_empty_bars_are_kept_in_place_but_never_count_as_repeats():
    starts, pitches = np.array([0.0, 12.0, 16.0]), np.array([60, 60, 60])  # bars 0, 3 and 4; 1, 2 empty
    contents = bar_contents(starts, pitches, bar_beats=4.0)
    assert [bool(c) for c in contents] == [True, False, False, True, True]
    assert bar_repeats(contents) == (2 / 3, 2 / 3)
    assert longest_repeat(contents) == 1  # bar 3 and bar 4 each repeat bar 0: runs of one bar
    matrix = self_similarity(contents)
    assert matrix.shape == (5, 5) and matrix[0, 3] == 1.0 and matrix[1, 1] == 0.0
    np.testing.assert_array_equal(matrix, matrix.T)


def test_an_onset_rounding_onto_a_downbeat_belongs_to_that_bar():
    contents = bar_contents(np.array([0.0, 3.999999, 4.0]), np.array([60, 62, 64]), bar_beats=4.0)
    assert contents == [frozenset({(0, 60)}), frozenset({(0, 62), (0, 64)})]


@pytest.mark.parametrize("signatures, expected", [([], 4.0), ([(0.0, 3, 4)], 3.0), ([(0.0, 6, 8)], 3.0),
                                                  ([(0.0, 2, 2), (10.0, 3, 4)], 4.0)])
def test_bars_follow_the_first_time_signature(signatures, expected):
    assert beats_per_bar(signatures) == expected


def test_score_stats_report_structure_in_bars_of_the_scores_meter():
    a = phrase(6, seed=5)[:18]  # 18 beats: 6 bars of 3/4, played twice
    starts = np.array([beat for beat, _ in a] + [18 + beat for beat, _ in a])
    pitches = np.array([pitch for _, pitch in a] * 2)
    notes = [Note(int(p), 80, s * 0.5, s * 0.5 + 0.4) for s, p in zip(starts, pitches)]  # 120 qpm
    score = Score([Track("melody", 0, False, notes)], TempoMap(), time_signatures=[(0.0, 3, 4)], source="x")
    scalars = score_stats(score).scalars
    assert scalars["bar_repeat_exact"] == 0.5 and scalars["longest_repeat_bars"] == 6
    assert scalars["repetition_8"] == repetition(starts, pitches, 8) == 11 / 29  # the 2nd half's 8-grams
