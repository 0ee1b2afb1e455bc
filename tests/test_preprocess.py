"""encodings.preprocess: sustain pedal, skyline, octave folding, melody-track choice."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import CORPORA
from melodygen.errors import NoUsableMusicError
from melodygen.midi_io import read_score
from melodygen.encodings.preprocess import apply_sustain, fold_into_range, pick_melody_track, skyline
from melodygen.notes import Note, Score, Track


def n(pitch, start, end, velocity=80):
    return Note(pitch, velocity, start, end)


def spans(notes):
    return [(x.pitch, x.start, x.end) for x in notes]


# ----------------------------------------------------------------------------- sustain


def test_sustain_without_pedal_changes_nothing():
    notes = [n(60, 0, 1), n(64, 0.5, 2)]
    assert apply_sustain(Track("p", 0, False, notes)) == notes


def test_sustain_extends_notes_released_under_the_pedal():
    track = Track("p", 0, False, [n(60, 0, 1), n(64, 0.5, 1.5), n(67, 1.8, 3), n(72, 2.5, 4.5)],
                  pedals=[(0.5, 2.0), (2.6, 4.0)])
    # 60 released at 1 with pedal down -> 2; 64 released at 1.5 -> 2; 67 held until 3 while
    # the second pedal is down -> 4; 72 held past the pedal's release -> unchanged.
    assert spans(apply_sustain(track)) == [(60, 0, 2.0), (64, 0.5, 2.0), (67, 1.8, 4.0),
                                           (72, 2.5, 4.5)]


def test_sustain_restrike_cuts_the_held_note():
    track = Track("p", 0, False, [n(60, 0, 0.5, 70), n(60, 1.0, 1.5, 90), n(62, 0.2, 0.4)],
                  pedals=[(0.1, 3.0)])
    assert [(x.pitch, x.velocity, x.start, x.end) for x in apply_sustain(track)] == [
        (60, 70, 0, 1.0), (62, 80, 0.2, 3.0), (60, 90, 1.0, 3.0)]


def test_sustain_note_released_before_pedal_is_unchanged():
    track = Track("p", 0, False, [n(60, 0, 1)], pedals=[(1.5, 2.0)])
    assert spans(apply_sustain(track)) == [(60, 0, 1)]


def test_sustain_restrike_at_note_start_drops_zero_length():
    track = Track("p", 0, False, [n(60, 1.0, 1.5), n(60, 1.0, 2.0)], pedals=[(0.0, 3.0)])
    assert spans(apply_sustain(track)) == [(60, 1.0, 3.0)]


notes_strategy = st.lists(
    st.builds(lambda p, s, d, v: Note(p, v, s / 8, (s + d) / 8), st.integers(55, 67),
              st.integers(0, 40), st.integers(1, 12), st.integers(1, 127)),
    max_size=25)


@settings(max_examples=60, deadline=None)
@given(notes_strategy, st.lists(st.tuples(st.integers(0, 50), st.integers(1, 10)), max_size=4))
def test_sustain_only_lengthens_except_restrikes(notes, pedals):
    pedals = [(s / 8, (s + d) / 8) for s, d in pedals]
    result = apply_sustain(Track("p", 0, False, notes, pedals))
    assert len(result) <= len(notes)
    assert all(x.end > x.start for x in result)
    starts = {(x.pitch, x.start) for x in notes}
    for x in result:
        assert (x.pitch, x.start) in starts
        # a note ends only at its own end, a pedal release, a restrike, or the last event
        last = max([y.end for y in notes] + [up for _, up in pedals])
        assert x.end in ({y.end for y in notes} | {up for _, up in pedals}
                         | {y.start for y in notes if y.pitch == x.pitch} | {last})


# ----------------------------------------------------------------------------- skyline


def test_skyline_keeps_monophonic_input():
    notes = [n(60, 0, 1), n(55, 1, 2), n(72, 2.5, 3)]
    assert skyline(notes) == notes


def test_skyline_higher_note_cuts_lower_one():
    assert spans(skyline([n(60, 0, 2), n(67, 1, 3)])) == [(60, 0, 1), (67, 1, 3)]


def test_skyline_lower_note_cut_at_higher_onset_does_not_come_back():
    assert spans(skyline([n(60, 0, 4), n(67, 1, 2)])) == [(60, 0, 1), (67, 1, 2)]


def test_skyline_lower_note_fully_covered_is_dropped():
    assert spans(skyline([n(67, 0, 4), n(60, 1, 2)])) == [(67, 0, 4)]


def test_skyline_lower_note_starting_under_higher_waits_for_it():
    # legato: a descending step whose onset overlaps the previous note's tail
    assert spans(skyline([n(67, 0, 1.05), n(60, 1.0, 2)])) == [(67, 0, 1.05), (60, 1.05, 2)]


def test_skyline_chord_keeps_top_note_and_its_velocity():
    chord = [n(60, 0, 1, 50), n(64, 0, 1, 60), n(67, 0, 1, 70)]
    assert skyline(chord) == [n(67, 0, 1, 70)]


def test_skyline_same_pitch_restrike():
    assert spans(skyline([n(60, 0, 2), n(60, 1, 3)])) == [(60, 0, 1), (60, 1, 3)]


@settings(max_examples=100, deadline=None)
@given(notes_strategy)
def test_skyline_properties(notes):
    line = skyline(notes)
    # a monophonic line, sorted, of positive-length pieces of input notes
    assert all(a.end <= b.start for a, b in zip(line, line[1:]))
    assert all(x.end > x.start for x in line)
    for x in line:
        assert any(y.pitch == x.pitch and y.velocity == x.velocity and y.start <= x.start
                   and x.end <= y.end for y in notes)
    # at every onset, the line sounds a note at least as high
    for y in notes:
        assert any(x.start <= y.start < x.end and x.pitch >= y.pitch for x in line)


# ----------------------------------------------------------------------------- fold


def test_fold_into_range_moves_by_octaves():
    notes = [n(30, 0, 1), n(48, 1, 2), n(83, 2, 3), n(100, 3, 4), n(47, 4, 5)]
    assert [x.pitch for x in fold_into_range(notes, 48, 83)] == [54, 48, 83, 76, 59]


@given(st.integers(0, 127), st.integers(0, 100), st.integers(11, 40))
def test_fold_into_range_property(pitch, lo, width):
    (folded,) = fold_into_range([n(pitch, 0, 1)], lo, lo + width)
    assert lo <= folded.pitch <= lo + width
    assert (folded.pitch - pitch) % 12 == 0
    assert abs(folded.pitch - pitch) < 12 + max(lo - pitch, pitch - lo - width, 0)


def test_fold_into_range_rejects_narrow_range():
    with pytest.raises(ValueError, match="narrower than an octave"):
        fold_into_range([n(60, 0, 1)], 60, 70)


# ----------------------------------------------------------------------------- melody track


def track(name, pitches, program=0, is_drum=False):
    return Track(name, program, is_drum, [n(p, i, i + 1) for i, p in enumerate(pitches)])


def test_pick_by_index_and_program():
    score = Score([track("a", [60] * 4), track("b", [50] * 4, program=33)], source="s.mid")
    assert pick_melody_track(score, track=1).name == "b"
    assert pick_melody_track(score, program=33).name == "b"
    with pytest.raises(NoUsableMusicError, match="s.mid: track 2 out of range"):
        pick_melody_track(score, track=2)
    with pytest.raises(NoUsableMusicError, match="no non-drum track with program 40"):
        pick_melody_track(score, program=40)


def test_pick_by_name_in_order_of_preference():
    score = Score([track("Piano", [80] * 9), track("Lead Vocal", [50] * 3),
                   track("MELODY", [55] * 4)])
    assert pick_melody_track(score).name == "MELODY"
    score.tracks.pop()
    assert pick_melody_track(score).name == "Lead Vocal"


def test_pick_highest_mean_pitch_among_full_tracks():
    score = Score([track("", [48] * 40), track("", [70] * 12), track("", [90] * 9),
                   track("", [100] * 40, is_drum=True)])
    # the 9-note track is below a quarter of 40 notes; drums never count
    assert pick_melody_track(score) is score.tracks[1]


def test_pick_errors_name_the_reason():
    with pytest.raises(NoUsableMusicError, match="x.mid: no notes"):
        pick_melody_track(Score([], source="x.mid"))
    with pytest.raises(NoUsableMusicError, match="only drum tracks"):
        pick_melody_track(Score([track("kit", [36], is_drum=True)]))


@pytest.mark.parametrize("corpus, expected", [("nottingham", 0), ("bach-chorales", "Soprano"),
                                               ("pop909", "MELODY")])
def test_pick_on_real_files(corpus, expected):
    files = sorted(CORPORA[corpus].glob("*.mid"))[:3]
    assert files, f"no {corpus} files in {CORPORA[corpus]}"
    for path in files:
        score = read_score(path)
        chosen = pick_melody_track(score)
        assert (chosen is score.tracks[expected] if isinstance(expected, int)
                else chosen.name == expected), path
