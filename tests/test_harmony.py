"""harmony: chord and key names, parsing, transposition, and detection from pitch-class weights."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import CORPORA
from melodygen.errors import ConfigError
from melodygen.harmony import (BASS_BONUS, NUM_CHORDS, NUM_KEYS, QUALITIES, chord_name, chord_tones, detect_chords,
                               detect_key, harmonize, key_fit, key_name, key_profile, key_scale, parse_chord, parse_key,
                               transpose_chord, transpose_key)
from melodygen.meter import score_bars
from melodygen.midi_io import read_score

C, D, E, F, G, A, B = 0, 2, 4, 5, 7, 9, 11
QUALITY = {q: i for i, q in enumerate(QUALITIES)}


def chord(root: int, quality: str) -> int:
    return root * len(QUALITIES) + QUALITY[quality]


def weights(*pitch_classes, amounts=None) -> np.ndarray:
    row = np.zeros(12)
    for pc, amount in zip(pitch_classes, amounts or [1.0] * len(pitch_classes)):
        row[pc % 12] += amount
    return row


def detect_one(row, bass=-1) -> int:
    return int(detect_chords(row[None, :], np.array([bass]))[0])


# ----------------------------------------------------------------------------- names


@given(st.integers(0, NUM_CHORDS - 1))
def test_chord_names_round_trip(index):
    assert parse_chord(chord_name(index)) == index


@given(st.integers(0, NUM_KEYS - 1))
def test_key_names_round_trip(index):
    assert parse_key(key_name(index)) == index


def test_names_are_spelled_as_documented():
    assert [chord_name(i) for i in range(3)] == ["C", "Cm", "C7"]
    assert chord_name(chord(6, "m7")) == "F#m7" and chord_name(chord(10, "maj7")) == "Bbmaj7"
    assert key_name(2 * D) == "D" and key_name(2 * B + 1) == "Bm" and key_name(2 * 3 + 1) == "Ebm"
    assert len({chord_name(i) for i in range(NUM_CHORDS)}) == NUM_CHORDS


SPELLINGS = {0: ["C", "B#"], 1: ["C#", "Db"], 2: ["D"], 3: ["D#", "Eb"], 4: ["E", "Fb"], 5: ["F", "E#"],
             6: ["F#", "Gb"], 7: ["G"], 8: ["G#", "Ab"], 9: ["A"], 10: ["A#", "Bb"], 11: ["B", "Cb"]}
ALIASES = {"": ["", "maj", "M", "MAJ"], "m": ["m", "min", "-", "Min"], "7": ["7", "dom7"],
           "m7": ["m7", "min7", "-7"], "maj7": ["maj7", "M7", "Δ7", "Maj7"], "dim": ["dim", "o", "°"],
           "aug": ["aug", "+"], "sus4": ["sus4", "sus"]}


@given(st.integers(0, 11), st.sampled_from(list(QUALITIES)), st.data())
def test_any_spelling_and_alias_parses(root, quality, data):
    spelled = data.draw(st.sampled_from(SPELLINGS[root]))
    spelled = data.draw(st.sampled_from([spelled, spelled[0].lower() + spelled[1:]]))
    text = spelled + data.draw(st.sampled_from(ALIASES[quality]))
    assert parse_chord(text) == chord(root, quality)
    assert parse_chord(f"  {text} ") == chord(root, quality)


def test_flats_sharps_and_aliases():
    assert parse_chord("Db") == parse_chord("C#") == chord(1, "")
    assert parse_chord("Bbmaj7") == parse_chord("A#M7") == chord(10, "maj7")
    assert parse_chord("F#m7") == parse_chord("gbmin7") == chord(6, "m7")
    assert parse_chord("Cb") == chord(B, "") and parse_chord("E#") == chord(F, "")
    assert parse_chord("bbm") == chord(10, "m")  # lower-case b root, then b for flat
    assert parse_chord("CM7") == chord(C, "maj7") and parse_chord("Cm7") == chord(C, "m7")  # M/m case matters


@pytest.mark.parametrize("text, expected", [
    ("D", 2 * D), ("Dm", 2 * D + 1), ("D major", 2 * D), ("d minor", 2 * D + 1), ("Bb", 20), ("F#m", 13),
    ("Bbm", 21), ("A minor", 2 * A + 1), ("A Min", 2 * A + 1), ("Eb maj", 6), ("Gb", 12), ("DM", 2 * D)])
def test_parse_key(text, expected):
    assert parse_key(text) == expected


@pytest.mark.parametrize("text", ["H7", "", "  ", "C9", "Cmm", "C##", "7", "Xm", "C maj 7", "Cm\n7", "Ebb"])
def test_unknown_chord_is_one_line_config_error(text):
    with pytest.raises(ConfigError) as caught:
        parse_chord(text)
    message = str(caught.value)
    assert "\n" not in message and repr(text) in message and "maj7" in message and "sus4" in message


@pytest.mark.parametrize("text", ["H", "", "D dorian", "Dm7", "C##", "minor", "C\nm"])
def test_unknown_key_is_one_line_config_error(text):
    with pytest.raises(ConfigError) as caught:
        parse_key(text)
    assert "\n" not in str(caught.value) and repr(text) in str(caught.value)


def test_indices_out_of_range_are_refused():
    for call, bad in [(chord_name, NUM_CHORDS), (chord_tones, -1), (key_name, NUM_KEYS), (key_scale, -1)]:
        with pytest.raises(ValueError):
            call(bad)


# ----------------------------------------------------------------------------- tones, scales, transposition


def test_tones_and_scales():
    assert chord_tones(parse_chord("F#m7")) == (6, 9, 1, 4)
    assert chord_tones(parse_chord("G7")) == (G, B, D, F)
    assert chord_tones(parse_chord("Bdim")) == (B, D, F)
    assert key_scale(parse_key("D")) == (D, E, 6, G, A, B, 1)
    assert key_scale(parse_key("Am")) == (A, B, C, D, E, F, G)


def test_transposition_wraps():
    assert transpose_chord(parse_chord("Bbm7"), 3) == parse_chord("C#m7")
    assert transpose_chord(parse_chord("C"), -1) == parse_chord("B")
    assert transpose_key(parse_key("Bm"), 2) == parse_key("C#m")
    assert transpose_key(parse_key("C"), -13) == parse_key("B")


@given(st.integers(0, NUM_CHORDS - 1), st.integers(-30, 30), st.integers(-30, 30), st.integers(0, NUM_KEYS - 1))
def test_transposition_moves_every_tone(index, a, b, key):
    moved = transpose_chord(index, a)
    assert chord_tones(moved) == tuple((t + a) % 12 for t in chord_tones(index))
    assert transpose_chord(moved, b) == transpose_chord(index, a + b)
    assert transpose_chord(index, 12 * b) == index
    assert key_scale(transpose_key(key, a)) == tuple((t + a) % 12 for t in key_scale(key))


# ----------------------------------------------------------------------------- chord detection


@pytest.mark.parametrize("tones, bass, expected", [
    ((C, E, G), C, "C"), ((C, E, G), -1, "C"), ((C, E, G, 10), C, "C7"), ((A, C, E), A, "Am"),
    ((A, C, E, G), A, "Am7"), ((G, B, D), G, "G"), ((G, B, D, F), G, "G7"), ((C, E, G), E, "C"),
    ((B, D, F), B, "Bdim"), ((C, F, G), C, "Csus4"), ((D, 6, A, 1), D, "Dmaj7"),
    ((A, C), A, "Am"), ((A, C), -1, "F"),  # a dyad: the bass root, else the simpler chord
    ((B, D, F), -1, "Bdim"), ((D, F, B), D, "Bdim"),  # an exact triad, not a seventh missing its root (G7)
    ((C, E, 8), -1, "Caug"), ((C, E, 8), E, "Eaug"),  # a symmetric chord: the lower root, or the bass
])
def test_detect_chords_on_built_weights(tones, bass, expected):
    assert chord_name(detect_one(weights(*tones), bass)) == expected


def test_empty_rows_are_minus_one():
    rows = np.stack([weights(C, E, G), np.zeros(12), weights(A, C, E)])
    assert detect_chords(rows, np.array([C, -1, A])).tolist() == [chord(C, ""), -1, chord(A, "m")]
    assert detect_chords(np.zeros((0, 12)), np.zeros(0, dtype=int)).shape == (0,)


def test_bass_bonus_settles_an_added_sixth():
    # C E G A with C in the bass: a brief A is an added sixth (C), a full one makes Am7's four tones.
    assert chord_name(detect_one(weights(C, E, G, A, amounts=[4, 4, 4, 0.1]), C)) == "C"
    assert chord_name(detect_one(weights(C, E, G, A, amounts=[4, 4, 4, 4]), C)) == "Am7"


def test_ties_of_one_quality_go_to_the_root_with_most_weight():
    assert chord_name(detect_one(weights(C, E, 8, amounts=[1, 1, 3]))) == "Abaug"
    assert chord_name(detect_one(weights(C, 3, 6, A, amounts=[1, 2, 1, 1]))) == "Ebdim"  # a dim7 chord


def test_an_exact_tie_goes_to_the_simpler_chord_before_the_bass_root():
    # Abm7 (Ab in the bass) scores exactly Bsus4's with its bass bonus (2 of the 40): the triad wins.
    row = weights(D, E, 6, 8, B, amounts=[3, 4, 13, 3, 17])
    assert BASS_BONUS * row.sum() == pytest.approx(2 * (row[[B, E, 6]].sum() - row[[8, B, 3, 6]].sum()))
    assert chord_name(detect_one(row, 8)) == "Bsus4"


def test_louder_notes_win_over_a_passing_tone():
    assert chord_name(detect_one(weights(G, B, D, F, amounts=[3, 3, 3, 0.5]), G)) == "G7"
    assert chord_name(detect_one(weights(D, F, A, B, amounts=[3, 3, 3, 0.2]), D)) == "Dm"


def test_detect_chords_checks_shapes():
    with pytest.raises(ValueError):
        detect_chords(np.zeros((3, 11)), np.zeros(3, dtype=int))
    with pytest.raises(ValueError):
        detect_chords(np.zeros((3, 12)), np.zeros(2, dtype=int))


def reference_chord(row, bass) -> int:
    """The documented rule, row by row in exact arithmetic: score, then fewer tones, QUALITIES order,
    bass root, root weight, lower root."""
    row = [Fraction(int(x)) for x in row]
    total = sum(row)
    if total == 0:
        return -1

    def key(index):
        root, quality = divmod(index, len(QUALITIES))
        tones = set(chord_tones(index))
        on = sum(row[pc] for pc in tones)
        score = 2 * on - total + (Fraction(str(BASS_BONUS)) * total if root == bass else 0)
        return score, -len(tones), -quality, root == bass, row[root], -root

    return max(range(NUM_CHORDS), key=key)


sparse_rows = st.lists(st.one_of(st.just(0), st.just(0), st.integers(1, 12)), min_size=12, max_size=12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(sparse_rows, st.integers(-1, 11)), min_size=1, max_size=20))
def test_vectorised_detection_equals_the_rule_row_by_row(rows):
    matrix = np.array([r for r, _ in rows], dtype=np.float64)
    bass = np.array([b if b < 0 or r[b] > 0 else -1 for r, b in rows])
    together = detect_chords(matrix, bass)
    assert together.dtype == np.int64 and together.shape == (len(rows),)
    assert together.tolist() == [detect_one(m, b) for m, b in zip(matrix, bass)]
    assert together.tolist() == [reference_chord(m, b) for m, b in zip(matrix, bass)]
    # Durations in seconds are not whole numbers: ties must survive float rounding.
    assert detect_chords(matrix * 0.1, bass).tolist() == together.tolist()


# ----------------------------------------------------------------------------- keys


D_MAJOR = weights(D, E, 6, G, A, B, 1, amounts=[6, 2, 4, 3, 5, 2, 2])
A_HARMONIC_MINOR = weights(A, B, C, D, E, F, 8, amounts=[6, 2, 4, 3, 5, 2, 3])


def test_detect_key():
    assert key_name(detect_key(D_MAJOR)) == "D"
    assert key_name(detect_key(A_HARMONIC_MINOR)) == "Am"
    assert detect_key(np.zeros(12)) == 0 and detect_key(np.ones(12)) == 0


@given(st.integers(-11, 11))
def test_detect_key_follows_transposition(shift):
    for profile in (D_MAJOR, A_HARMONIC_MINOR):
        assert detect_key(np.roll(profile, shift)) == transpose_key(detect_key(profile), shift)


def test_kostka_payne_is_a_second_key_finder():
    assert key_name(detect_key(D_MAJOR, "kostka-payne")) == "D"
    assert key_name(detect_key(A_HARMONIC_MINOR, "kostka-payne")) == "Am"
    white_keys = weights(C, D, E, F, G, A, B, amounts=[1, 2, 5, 4, 6, 4, 4])  # little C, much E and G
    assert (key_name(detect_key(white_keys)), key_name(detect_key(white_keys, "kostka-payne"))) == ("Em", "C")


def test_key_profile_is_the_tonic_first_profile_rotated():
    assert key_profile(parse_key("C"))[0] == max(key_profile(parse_key("C")))
    assert np.array_equal(key_profile(parse_key("Em")), np.roll(key_profile(parse_key("Cm")), 4))
    assert key_profile(parse_key("Am"))[0] != key_profile(parse_key("C"))[9]  # modes differ


def test_key_fit():
    c_scale = weights(C, D, E, F, G, A, B)
    assert key_fit(c_scale, parse_key("C")) == key_fit(c_scale, parse_key("Am")) == 1.0
    assert key_fit(c_scale + weights(6), parse_key("C")) == pytest.approx(7 / 8)
    assert key_fit(c_scale, parse_key("F#")) == pytest.approx(2 / 7)  # B and F (E#) only
    assert key_fit(np.zeros(12), parse_key("C")) == 0.0


# ----------------------------------------------------------------------------- real music


def bar_weights(score, track, steps_per_quarter=12):
    """(B, 12) duration per pitch class in each bar of `score` (in grid steps) and (B,) bass pitch class."""
    bars = score_bars(score, steps_per_quarter)
    edges = np.array([b.start for b in bars] + [bars[-1].start + bars[-1].length], dtype=np.float64)
    pitches = np.array([n.pitch for n in track.notes])
    on = score.tempo_map.beats_of([n.start for n in track.notes]) * steps_per_quarter
    off = score.tempo_map.beats_of([n.end for n in track.notes]) * steps_per_quarter
    overlap = np.minimum(off[:, None], edges[None, 1:]) - np.maximum(on[:, None], edges[None, :-1])  # (N, B)
    overlap = np.clip(overlap, 0, None)
    per_bar = np.zeros((12, len(bars)))
    np.add.at(per_bar, pitches % 12, overlap)
    lowest = np.where(overlap > 0, pitches[:, None], 999).min(axis=0)
    return per_bar.T, np.where(lowest < 999, lowest % 12, -1)


def plain_triad(pitch_classes: frozenset) -> int | None:
    """The major or minor triad these pitch classes are exactly, else None."""
    for root in range(12):
        for quality, third in (("", 4), ("m", 3)):
            if pitch_classes == {root, (root + third) % 12, (root + 7) % 12}:
                return chord(root, quality)
    return None


def test_detection_agrees_with_nottingham_chord_tracks():
    files = sorted(CORPORA["nottingham"].glob("*.mid"))[::100]
    truth, detected = [], []
    for path in files:
        score = read_score(path)
        if len(score.tracks) < 2:  # a few tunes have no chord track
            continue
        rows, bass = bar_weights(score, score.tracks[1])  # melody first, then the block chords
        found = detect_chords(rows, bass)
        for row, guess in zip(rows, found):
            triad = plain_triad(frozenset(np.flatnonzero(row).tolist()))
            if triad is not None:
                truth.append(triad)
                detected.append(int(guess))
    assert len(truth) >= 100, f"only {len(truth)} bars of plain triads in {len(files)} files"
    agreement = np.mean(np.array(truth) == np.array(detected))
    assert agreement >= 0.9, f"{agreement:.1%} of {len(truth)} triad bars detected right"


def _halves(*bars):
    """(first halves, second halves) (B, 12) from bars given as ({pc: weight}, {pc: weight})."""
    first, second = np.zeros((len(bars), 12)), np.zeros((len(bars), 12))
    for row, (a, b) in enumerate(bars):
        for pc, w in a.items():
            first[row, pc] = w
        for pc, w in b.items():
            second[row, pc] = w
    return first, second


def test_harmonize_names_the_chords_a_melody_outlines():
    c, f, g = {0: 1, 4: 1, 7: 1}, {5: 1, 9: 1, 0: 1}, {7: 1, 11: 1, 2: 1}
    chords = harmonize(*_halves((c, c), (f, f), (g, g), (c, c)), parse_key("C"))
    assert [chord_name(x) for x in chords] == ["C", "F", "G", "C"]


def test_harmonize_hears_the_key_where_the_notes_fit_two_chords():
    bar = ({4: 2, 7: 1}, {4: 1})  # E and G: C major's tonic or E minor's
    assert chord_name(harmonize(*_halves(bar), parse_key("C"))[0]) == "C"
    assert chord_name(harmonize(*_halves(bar), parse_key("Em"))[0]) == "Em"


def test_harmonize_weighs_a_bar_s_first_half_and_keeps_a_chord_through_an_empty_bar():
    late_change = ({0: 1, 4: 1, 7: 1}, {5: 1, 9: 1})  # C under the first half, F-A after
    first, second = _halves(late_change, ({}, {}), ({0: 1, 4: 1}, {7: 1}))
    assert [chord_name(x) for x in harmonize(first, second, parse_key("C"))] == ["C", "C", "C"]
    assert harmonize(np.zeros((0, 12)), np.zeros((0, 12)), 0).shape == (0,)
