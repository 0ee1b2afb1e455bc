"""The performance encoding: event layout, quantization, round trips, lenient decoding."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from melodygen.encodings import BOS_ID, EOS_ID, PAD_ID, get_encoding
from melodygen.errors import EncodingError, NoUsableMusicError
from melodygen.notes import Note, Score, Track

ENC = get_encoding("performance", sustain=False)


def _score(*tracks: list[Note], pedals=()) -> Score:
    return Score([Track(f"t{i}", 0, False, list(notes), list(pedals))
                  for i, notes in enumerate(tracks)])


def _tokens(enc, ids) -> list[str]:
    return [enc.vocab.token(int(i)) for i in ids]


def test_event_counts_follow_magenta():
    ranges = {r.name: r.size for r in ENC.vocab.ranges}
    assert ranges == {"PAD": 1, "BOS": 1, "EOS": 1, "NOTE_ON": 128, "NOTE_OFF": 128,
                      "TIME_SHIFT": 100, "VELOCITY": 32}


def test_encode_layout_offs_first_velocity_only_on_change():
    notes = [Note(60, 80, 0.0, 0.5), Note(64, 80, 0.0, 0.5), Note(67, 30, 0.5, 3.0)]
    ids = ENC.encode(_score(notes))
    assert ids.dtype == np.uint16
    assert _tokens(ENC, ids) == [
        "VELOCITY(77)", "NOTE_ON(60)", "NOTE_ON(64)", "TIME_SHIFT(500ms)",
        "NOTE_OFF(60)", "NOTE_OFF(64)", "VELOCITY(29)", "NOTE_ON(67)",
        "TIME_SHIFT(1000ms)", "TIME_SHIFT(1000ms)", "TIME_SHIFT(500ms)", "NOTE_OFF(67)"]


def test_leading_silence_is_kept_as_time_shifts():
    ids = ENC.encode(_score([Note(60, 100, 1.5, 1.6)]))
    assert _tokens(ENC, ids)[:2] == ["TIME_SHIFT(1000ms)", "TIME_SHIFT(500ms)"]


def test_tracks_are_merged_and_drums_left_out():
    drums = Track("drums", 0, True, [Note(36, 100, 0.0, 0.1)])
    score = _score([Note(60, 100, 0.0, 1.0)], [Note(72, 100, 0.5, 1.0)])
    score.tracks.append(drums)
    assert [n.pitch for n in ENC.decode(ENC.encode(score))] == [60, 72]


def test_no_usable_notes():
    with pytest.raises(NoUsableMusicError, match="no non-drum notes"):
        ENC.encode(Score([Track("drums", 0, True, [Note(36, 100, 0.0, 0.1)])]))
    with pytest.raises(NoUsableMusicError):
        ENC.encode(Score([]))


def test_quantization_rules():
    notes = [Note(60, 100, 0.004, 0.006),       # shorter than a step after rounding: one step
             Note(62, 1, 1.0, 3.0), Note(62, 127, 2.0, 2.5),  # same pitch: earlier one cut
             Note(64, 50, 4.0, 4.2), Note(64, 90, 4.0, 4.5)]  # same onset: longer one kept
    assert ENC.quantize_notes(notes) == [
        Note(60, 97, 0.0, 0.01), Note(62, 1, 1.0, 2.0), Note(62, 125, 2.0, 2.5),
        Note(64, 89, 4.0, 4.5)]


def test_sustain_pedal_extends_notes_only_when_set():
    score = _score([Note(60, 100, 0.0, 0.5)], pedals=[(0.2, 2.0)])
    with_pedal = get_encoding("performance")
    assert with_pedal.decode(with_pedal.encode(score))[0].end == pytest.approx(2.0)
    assert ENC.decode(ENC.encode(score))[0].end == pytest.approx(0.5)


# Notes exactly on the 10 ms grid, velocities at bin lower edges, no same-pitch overlaps:
# the round trip must give them back unchanged.
@st.composite
def grid_notes(draw) -> list[Note]:
    rows = draw(st.lists(st.tuples(st.integers(0, 127), st.integers(0, 3000),
                                   st.integers(1, 400), st.integers(1, 32)), max_size=60))
    notes, busy_until = [], {}
    for pitch, start, length, vbin in sorted(rows):
        if start >= busy_until.get(pitch, 0):
            busy_until[pitch] = start + length
            notes.append(Note(pitch, 4 * vbin - 3, start / 100, (start + length) / 100))
    return notes


@settings(max_examples=150, deadline=None)
@given(grid_notes())
def test_round_trip_is_exact_on_the_grid(notes):
    if notes:
        decoded = ENC.decode(ENC.encode(_score(notes)))
        assert sorted(decoded, key=lambda n: (n.pitch, n.start)) == sorted(
            notes, key=lambda n: (n.pitch, n.start))


any_note = st.builds(
    lambda p, v, s, d: Note(p, v, s, s + d), st.integers(0, 127), st.integers(1, 127),
    st.floats(0, 30, allow_nan=False), st.floats(1e-4, 5, allow_nan=False))


@settings(max_examples=150, deadline=None)
@given(st.lists(any_note, min_size=1, max_size=60), st.lists(any_note, max_size=20))
def test_round_trip_equals_quantized_notes(track_a, track_b):
    decoded = ENC.decode(ENC.encode(_score(track_a, track_b)))
    assert decoded == ENC.quantize_notes(track_a + track_b)


@settings(max_examples=100, deadline=None)
@given(st.lists(any_note, min_size=1, max_size=40))
def test_quantized_notes_stay_close_to_the_originals(notes):
    for q in ENC.quantize_notes(notes):
        source = [n for n in notes if n.pitch == q.pitch and abs(n.start - q.start) <= 0.005 + 1e-9]
        assert source, q
        assert any(n.velocity - 3 <= q.velocity <= n.velocity for n in source)
        assert q.end > q.start and round(q.start * 100) == pytest.approx(q.start * 100)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 390), max_size=300))
def test_any_in_vocabulary_ids_decode_to_valid_notes(ids):
    for note in ENC.decode(ids):
        assert 0 <= note.pitch <= 127 and 1 <= note.velocity <= 127
        assert note.end > note.start >= 0


def test_lenient_decoding_rules():
    v = ENC.vocab
    on, off = v.offset("NOTE_ON"), v.offset("NOTE_OFF")
    shift = v.id_of("TIME_SHIFT", 10)  # 100 ms
    ids = [off + 50,                      # NOTE_OFF with no open note: ignored
           on + 60, shift, on + 60,       # re-struck pitch: first note ends at 0.1 s
           shift, on + 62, on + 62,       # zero-length note dropped
           shift]                         # open notes close at the end (0.3 s)
    assert ENC.decode(ids) == [Note(60, 100, 0.0, 0.1), Note(60, 100, 0.1, 0.3),
                               Note(62, 100, 0.2, 0.3)]


def test_specials_are_skipped_when_decoding():
    ids = ENC.encode(_score([Note(60, 100, 0.0, 0.5), Note(64, 70, 0.2, 0.9)])).tolist()
    assert ENC.decode([BOS_ID] + ids + [EOS_ID, PAD_ID, PAD_ID]) == ENC.decode(ids)


@pytest.mark.parametrize("bad", [391, -1, 1000])
def test_out_of_vocabulary_ids_are_errors(bad):
    with pytest.raises(EncodingError, match=str(bad)):
        ENC.decode([3, bad])


def test_pitch_shift_table_matches_transposing_the_notes():
    notes = [Note(60, 100, 0.0, 0.5), Note(100, 50, 0.2, 0.9)]
    table = ENC.pitch_shift_table(7)
    assert table.dtype == np.int64 and len(table) == ENC.vocab.size
    shifted = table[ENC.encode(_score(notes))]
    moved = [Note(n.pitch + 7, n.velocity, n.start, n.end) for n in notes]
    assert shifted.tolist() == ENC.encode(_score(moved)).tolist()


def test_pitch_shift_table_edges():
    v = ENC.vocab
    up, down = ENC.pitch_shift_table(3), ENC.pitch_shift_table(-3)
    assert up[v.id_of("NOTE_ON", 125)] == -1
    assert up[v.id_of("NOTE_OFF", 124)] == v.id_of("NOTE_OFF", 127)
    assert down[v.id_of("NOTE_OFF", 2)] == -1
    for name, value in [("TIME_SHIFT", 5), ("VELOCITY", 9), ("PAD", None), ("EOS", None)]:
        assert up[v.id_of(name, value)] == v.id_of(name, value)


def test_round_trip_on_real_files(nottingham_files, chorale_files):
    from melodygen.midi_io import read_score

    enc = get_encoding("performance")
    for path in nottingham_files[:2] + chorale_files[:2]:
        score = read_score(path)
        decoded = enc.decode(enc.encode(score))
        assert decoded == enc.quantize_notes(enc.score_notes(score)), path
        # only unisons (same pitch, same 10 ms onset: doubled chorale voices) merge
        onsets = {(n.pitch, round(n.start * 100)) for n in enc.score_notes(score)}
        assert len(decoded) == len(onsets), path
