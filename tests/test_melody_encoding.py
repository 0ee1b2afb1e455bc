"""The melody encoding: step grid over the tempo map, extraction rules, round trips, decoding."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from melodygen.encodings import BOS_ID, EOS_ID, get_encoding
from melodygen.errors import EncodingError, NoUsableMusicError
from melodygen.notes import Note, Score, TempoMap, Track

ENC = get_encoding("melody")


def _score(notes, tempo=TempoMap(), signatures=()) -> Score:
    return Score([Track("melody", 0, False, list(notes))], tempo, list(signatures))


def _tokens(enc, ids) -> list[str]:
    return [enc.vocab.token(int(i)) for i in ids]


def _in_steps(notes, qpm=120.0, steps_per_quarter=4):
    """(pitch, start step, end step) of notes in seconds at `qpm`."""
    step = 60.0 / qpm / steps_per_quarter
    return [(n.pitch, round(n.start / step, 6), round(n.end / step, 6)) for n in notes]


def test_event_counts_follow_magenta_basic_rnn():
    ranges = {r.name: r.size for r in ENC.vocab.ranges}
    assert ranges == {"PAD": 1, "BOS": 1, "EOS": 1, "NO_EVENT": 1, "NOTE_OFF": 1, "NOTE_ON": 36}
    assert ENC.vocab.range("NOTE_ON").lo == 48 and ENC.vocab.range("NOTE_ON").hi == 83


def test_encode_layout():
    # 120 qpm: a step (sixteenth) is 0.125 s
    notes = [Note(60, 90, 0.0, 0.25), Note(62, 90, 0.25, 0.375), Note(64, 90, 0.75, 1.0),
             Note(65, 90, 1.0, 1.125)]
    ids = ENC.encode(_score(notes))
    assert ids.dtype == np.uint16
    assert _tokens(ENC, ids) == ["NOTE_ON(60)", "NO_EVENT", "NOTE_ON(62)", "NOTE_OFF", "NO_EVENT",
                                 "NO_EVENT", "NOTE_ON(64)", "NO_EVENT", "NOTE_ON(65)", "NOTE_OFF"]


def test_grid_follows_the_tempo_map():
    # 120 qpm for 2 s (4 beats), then 60 qpm: 3.0 s is beat 5, i.e. step 20
    tempo = TempoMap(times=(0.0, 2.0), beats=(0.0, 4.0), qpm=(120.0, 60.0))
    notes = [Note(60, 90, 0.0, 0.5), Note(62, 90, 3.0, 3.25), Note(64, 90, 3.25, 3.5),
             Note(65, 90, 3.5, 3.75)]
    assert _steps(ENC.extract_melody(_score(notes, tempo))) == [
        (60, 0, 4), (62, 20, 21), (64, 21, 22), (65, 22, 23)]


def _steps(notes):
    return [(n.pitch, n.start, n.end) for n in notes]


@given(st.lists(st.floats(0.0, 600.0), max_size=20))
@settings(max_examples=50, deadline=None)
def test_tempo_map_beats_of_is_to_beats_of_each_time(seconds):
    tempo = TempoMap(times=(0.0, 2.0, 7.5), beats=(0.0, 4.0, 9.5), qpm=(120.0, 60.0, 173.0))
    assert tempo.beats_of(seconds).tolist() == [tempo.to_beats(t) for t in seconds]


def test_quantization_rules():
    notes = [Note(60, 90, 0.0, 0.01),                            # shorter than a step: one step
             Note(62, 90, 0.49, 0.9), Note(67, 90, 0.51, 0.6),   # same step: the highest kept
             Note(64, 90, 1.0, 1.3), Note(65, 90, 1.24, 2.0)]    # cut by the next onset
    assert _steps(ENC.extract_melody(_score(notes))) == [
        (60, 0, 1), (67, 4, 5), (64, 8, 10), (65, 10, 16)]


def test_extraction_takes_the_skyline_and_folds_into_range():
    notes = [Note(50, 90, 0.0, 1.0), Note(55, 90, 0.5, 1.0),    # overlap: highest sounds
             Note(100, 90, 1.0, 1.5), Note(30, 90, 1.5, 2.0)]   # folded by octaves
    assert _steps(ENC.extract_melody(_score(notes))) == [
        (50, 0, 4), (55, 4, 8), (76, 8, 12), (54, 12, 16)]


def test_leading_silence_is_trimmed_to_the_bar_line():
    notes = [Note(60, 90, t, t + 0.25) for t in (2.75, 3.0, 3.5, 4.0)]
    # 4/4 at 120 qpm: a bar is 2 s = 16 steps; the first note (step 22) is 6 steps into bar 2
    assert [n.start for n in ENC.extract_melody(_score(notes))] == [6, 8, 12, 16]
    # 3/4: a bar is 12 steps; step 22 is 10 steps into the bar starting at step 12
    waltz = _score(notes, signatures=[(0.0, 3, 4)])
    assert [n.start for n in ENC.extract_melody(waltz)] == [10, 12, 16, 20]


def test_track_and_program_settings_choose_the_melody_track():
    low = Track("bass", 33, False, [Note(40 + i, 90, 0.5 * i, 0.5 * i + 0.5) for i in range(4)])
    high = Track("lead", 73, False, [Note(70 + i, 90, 0.5 * i, 0.5 * i + 0.5) for i in range(4)])
    score = Score([high, low])
    for settings in ({"track": 1}, {"program": 33}):
        melody = get_encoding("melody", min_pitch=36, **settings).extract_melody(score)
        assert [n.pitch for n in melody] == [40, 41, 42, 43], settings


def test_too_few_notes_is_reported():
    with pytest.raises(NoUsableMusicError, match="3 note.*min_notes=4"):
        ENC.encode(_score([Note(60, 90, t, t + 0.25) for t in (0.0, 0.5, 1.0)]))
    with pytest.raises(NoUsableMusicError):
        ENC.encode(Score([]))


def test_max_steps_caps_the_melody():
    enc = get_encoding("melody", max_steps=6, min_notes=1)
    notes = [Note(60, 90, 0.0, 0.5), Note(62, 90, 0.5, 1.0), Note(64, 90, 1.0, 1.5)]
    ids = enc.encode(_score(notes))
    assert len(ids) == 6
    assert _steps(enc.extract_melody(_score(notes))) == [(60, 0, 4), (62, 4, 6)]
    assert _in_steps(enc.decode(ids)) == [(60, 0, 4), (62, 4, 6)]


melody_notes = st.lists(
    st.builds(lambda p, v, s, d: Note(p, v, s, s + d), st.integers(0, 127), st.integers(1, 127),
              st.floats(0, 20, allow_nan=False), st.floats(1e-3, 3, allow_nan=False)),
    min_size=4, max_size=50)


@settings(max_examples=150, deadline=None)
@given(melody_notes, st.sampled_from([60.0, 96.0, 120.0, 151.5]))
def test_round_trip_equals_extracted_melody(notes, qpm):
    score = _score(notes, TempoMap(qpm=(qpm,)))
    try:
        melody = ENC.extract_melody(score)
    except NoUsableMusicError:
        return  # notes merged below min_notes on the grid
    decoded = ENC.decode(ENC.encode(score), qpm=qpm)
    assert _in_steps(decoded, qpm) == _steps(melody)
    assert all(n.velocity == 100 for n in decoded)
    # the extracted melody is monophonic, on the grid and in range
    for a, b in zip(melody, melody[1:]):
        assert a.end <= b.start
    assert all(48 <= n.pitch <= 83 and n.end >= n.start + 1 and n.start == int(n.start)
               for n in melody)


@st.composite
def grid_melodies(draw):
    """Monophonic notes in range on the step grid, starting on the first step."""
    rows = draw(st.lists(st.tuples(st.integers(48, 83), st.integers(0, 8), st.integers(1, 16)),
                         min_size=4, max_size=40))
    notes, step = [], 0
    for pitch, rest, length in rows:
        step += rest if notes else 0
        notes.append(Note(pitch, 100, step * 0.125, (step + length) * 0.125))
        step += length
    return notes


@settings(max_examples=150, deadline=None)
@given(grid_melodies())
def test_round_trip_is_exact_on_the_grid(notes):
    assert ENC.decode(ENC.encode(_score(notes))) == notes


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 40), max_size=300))
def test_any_in_vocabulary_ids_decode_to_valid_notes(ids):
    notes = ENC.decode(ids)
    for a, b in zip(notes, notes[1:]):
        assert a.end <= b.start
    for note in notes:
        assert 48 <= note.pitch <= 83 and note.end > note.start >= 0


def test_lenient_decoding_rules():
    v = ENC.vocab
    no, off, on = v.id_of("NO_EVENT"), v.id_of("NOTE_OFF"), v.offset("NOTE_ON")
    ids = [off, BOS_ID, on + 12, no, on + 14, off, off, on + 16, EOS_ID]
    assert _in_steps(ENC.decode(ids)) == [(60, 1, 3), (62, 3, 4), (64, 6, 7)]
    assert ENC.decode(ids, qpm=60.0)[0] == Note(60, 100, 0.25, 0.75)


@pytest.mark.parametrize("bad", [41, -1])
def test_out_of_vocabulary_ids_are_errors(bad):
    with pytest.raises(EncodingError, match=str(bad)):
        ENC.decode([3, bad])


def test_pitch_shift_table():
    v = ENC.vocab
    table = ENC.pitch_shift_table(2)
    assert table.dtype == np.int64 and len(table) == v.size
    assert table[v.id_of("NOTE_ON", 60)] == v.id_of("NOTE_ON", 62)
    assert table[v.id_of("NOTE_ON", 82)] == -1
    assert ENC.pitch_shift_table(-2)[v.id_of("NOTE_ON", 49)] == -1
    for id_ in (0, 1, 2, v.id_of("NO_EVENT"), v.id_of("NOTE_OFF")):
        assert table[id_] == id_


def test_pitch_shift_table_matches_transposing_the_notes():
    notes = [Note(p, 90, 0.25 * i, 0.25 * i + 0.2) for i, p in enumerate([60, 64, 67, 72, 70])]
    moved = [Note(n.pitch - 5, n.velocity, n.start, n.end) for n in notes]
    shifted = ENC.pitch_shift_table(-5)[ENC.encode(_score(notes))]
    assert shifted.tolist() == ENC.encode(_score(moved)).tolist()


def test_round_trip_on_real_files(nottingham_files, chorale_files):
    from melodygen.midi_io import read_score
    from melodygen.encodings.preprocess import pick_melody_track

    for path in nottingham_files[:3] + chorale_files[:2]:
        score = read_score(path)
        melody = ENC.extract_melody(score)
        # these melody tracks are monophonic: the grid must not lose their notes
        assert len(melody) >= 0.9 * len(pick_melody_track(score).notes), path
        assert _in_steps(ENC.decode(ENC.encode(score))) == _steps(melody), path
