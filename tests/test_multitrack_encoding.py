"""The multitrack encoding: round trips on real and generated arrangements, the edge cases real
MIDI throws at it (each with its documented outcome), its grammar and its instrument choice."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import midi_factory as mf
from conftest import CORPORA
from melodygen.dataset.files import read_file
from melodygen.encodings import get_encoding
from melodygen.encodings.vocab import EOS_ID
from melodygen.errors import ConfigError, NoUsableMusicError
from melodygen.instruments import DRUMS, parse_instrument
from melodygen.midi_io import read_score, write_score
from melodygen.notes import Note, Score, TempoMap, Track

ENC = get_encoding("multitrack")
SPQ = ENC.settings.steps_per_quarter


def beats_of(score: Score) -> list[set[tuple]]:
    """Per track: (pitch, onset, duration) in beats, rounded to 1/100 beat (finer than the grid:
    a file's ticks, e.g. 341/1024 for a triplet, then count as on the grid)."""
    tm = score.tempo_map
    return [{(n.pitch, round(tm.to_beats(n.start), 2), round(tm.to_beats(n.end) - tm.to_beats(n.start), 2))
             for n in t.notes} for t in score.tracks]


def events(ids) -> list[str]:
    return [ENC.vocab.event_of(int(i))[0] for i in ids]


@pytest.mark.parametrize("corpus,count", [("nottingham", 6), ("bach-chorales", 6), ("pop909", 2)])
def test_real_files_come_back_track_by_track(corpus, count):
    for path in sorted(CORPORA[corpus].glob("*.mid"))[:count]:
        score = read_score(path, include_drums=True)
        ids = ENC.encode(score)
        assert ENC.dropped_ids(ids) == 0
        back = ENC.decode_score(ids)
        assert len(back.tracks) == len(score.tracks)
        assert [len(t.notes) for t in back.tracks] == [len(t.notes) for t in score.tracks]
        if corpus != "pop909":  # quantized corpora: every note exact, on its own track
            for original, decoded in zip(beats_of(score), beats_of(back)):
                long_notes = {n for n in original if n[2] > ENC.settings.max_duration_quarters}
                assert original - long_notes <= decoded, path.name


def test_same_program_tracks_stay_apart():
    path = CORPORA["bach-chorales"] / "bwv1.6.mid"
    score = read_score(path)
    back = ENC.decode_score(ENC.encode(score))
    assert {t.program for t in score.tracks} == {0} and len(back.tracks) == len(score.tracks) >= 4
    assert beats_of(back) == beats_of(score)


def test_tokens_read_as_the_docs_say():
    score = Score([Track("fl", 73, False, [Note(72, 84, 0.0, 0.75)]),
                   Track("kit", 0, True, [Note(36, 100, 0.0, 0.1)])], time_signatures=[(0.0, 6, 8)])
    text = " ".join(ENC.readable(ENC.encode(score)))
    assert text == ("PROGRAM(flute) PROGRAM(drums) BAR TIMESIG(6/8) POS(0) TEMPO(120) "
                    "TRACK(1:flute) PITCH(72) VEL(85) DUR(3/2) TRACK(2:drums) DRUM(36) VEL(101) DUR(1/6)")


# ---------------------------------------------------------------------------- generated scores


@st.composite
def grid_scores(draw):
    """Scores whose notes already sit on the grid, at bin-centre velocities, with no two notes
    of one pitch overlapping in a track: what the encoding keeps exactly."""
    meter_choices = [(4, 4), (3, 4), (6, 8), (2, 4), (5, 8), (7, 4)]
    meter = draw(st.sampled_from(meter_choices))
    bin_size = -(-127 // ENC.settings.velocity_bins)
    tracks = []
    for i in range(draw(st.integers(1, 5))):
        drum = draw(st.booleans()) and i > 0
        notes, busy = [], {}
        for _ in range(draw(st.integers(1, 25))):
            pitch = draw(st.integers(0, 127))
            start = draw(st.integers(0, 40 * SPQ))
            length = draw(st.integers(1, ENC.settings.max_duration_quarters * SPQ))
            if any(s < start + length and start < e for s, e in busy.get(pitch, [])):
                continue
            busy.setdefault(pitch, []).append((start, start + length))
            velocity = 1 + (draw(st.integers(1, ENC.settings.velocity_bins)) - 1) * bin_size + bin_size // 2
            notes.append(Note(pitch, min(velocity, 127), start / SPQ / 2, (start + length) / SPQ / 2))
        if notes:
            tracks.append(Track("t", 0 if drum else draw(st.integers(0, 127)), drum,
                                sorted(notes, key=lambda n: (n.start, n.pitch))))
    return Score(tracks, TempoMap(), [(0.0, *meter)])


@settings(max_examples=60, deadline=None)
@given(grid_scores())
def test_generated_arrangements_round_trip_exactly(score):
    ids = ENC.encode(score)
    assert ENC.dropped_ids(ids) == 0
    back = ENC.decode_score(ids)
    assert [(t.program, t.is_drum) for t in back.tracks] == [(t.program, t.is_drum) for t in score.tracks]
    for original, decoded in zip(score.tracks, back.tracks):
        assert [(n.pitch, n.velocity) for n in decoded.notes] == [(n.pitch, n.velocity) for n in original.notes]
        assert np.allclose([n.start for n in decoded.notes], [n.start for n in original.notes])
        assert np.allclose([n.end for n in decoded.notes], [n.end for n in original.notes])
    assert back.time_signatures[0][1:] == score.time_signatures[0][1:]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, ENC.vocab.size - 1), max_size=300))
def test_any_ids_decode_and_the_drops_are_counted(ids):
    score = ENC.decode_score(ids)
    dropped = ENC.dropped_ids(ids)
    assert 0 <= dropped <= len(ids)
    if dropped == 0:  # what decodes whole encodes back to the same notes
        assert all(n.end > n.start for t in score.tracks for n in t.notes)


# ---------------------------------------------------------------------------- edge cases


def test_tempo_and_meter_changes_are_kept(tmp_path):
    tpb = mf.TPB
    conductor = [mf.meta(0, "time_signature", numerator=3, denominator=4), mf.meta(0, "set_tempo", tempo=500000),
                 mf.meta(6 * tpb, "time_signature", numerator=6, denominator=8),
                 mf.meta(6 * tpb, "set_tempo", tempo=1000000)]
    notes = mf.note_events([(60 + i, i * tpb, (i + 1) * tpb) for i in range(12)])
    path = mf.midi_file(tmp_path / "changes.mid", [conductor, notes])
    score = read_score(path)
    ids = ENC.encode(score)
    names = events(ids)
    assert names.count("TIMESIG") == 2 and names.count("TEMPO") == 2
    back = ENC.decode_score(ids)
    assert [(n, d) for _, n, d in back.time_signatures] == [(3, 4), (6, 8)]
    assert back.tempo_map.qpm == pytest.approx((120.0, 60.0))
    assert beats_of(back) == beats_of(score)
    written = read_score(write_score(back, tmp_path / "back.mid"))
    assert [(n, d) for _, n, d in written.time_signatures] == [(3, 4), (6, 8)]
    assert [round(n.start, 6) for n in written.tracks[0].notes] == [round(n.start, 6) for n in score.tracks[0].notes]


def test_a_pickup_bar_stays_short(tmp_path):
    """A one-beat pickup written as a 1/4 bar, then 4/4: the first bar line falls after the pickup."""
    conductor = [mf.meta(0, "time_signature", numerator=1, denominator=4),
                 mf.meta(mf.TPB, "time_signature", numerator=4, denominator=4)]
    notes = mf.note_events([(67, 0, mf.TPB), (72, mf.TPB, 2 * mf.TPB)])
    score = read_score(mf.midi_file(tmp_path / "pickup.mid", [conductor, notes]))
    ids = ENC.encode(score)
    assert " ".join(ENC.readable(ids)).startswith(
        "PROGRAM(acoustic-grand-piano) BAR TIMESIG(1/4) POS(0) TEMPO(120) TRACK(1:acoustic-grand-piano) "
        "PITCH(67) VEL(") and "BAR TIMESIG(4/4) POS(0) TRACK(1:acoustic-grand-piano) PITCH(72)" in " ".join(ENC.readable(ids))
    assert beats_of(ENC.decode_score(ids)) == beats_of(score)


def test_a_meter_change_inside_a_bar_cuts_it_to_its_real_length(tmp_path):
    conductor = [mf.meta(0, "time_signature", numerator=4, denominator=4),
                 mf.meta(6 * mf.TPB, "time_signature", numerator=3, denominator=4)]  # 1.5 bars in
    notes = mf.note_events([(60, 7 * mf.TPB, 8 * mf.TPB)])
    score = read_score(mf.midi_file(tmp_path / "cut.mid", [conductor, notes]))
    back = ENC.decode_score(ENC.encode(score))
    assert [(n, d) for _, n, d in back.time_signatures] == [(4, 4), (2, 4), (3, 4)]
    assert beats_of(back) == beats_of(score)


@pytest.mark.parametrize("at,expected", [(1.3, [(0.0, 3, 4)]), (3.3, [(0.0, 4, 4), (4.0, 3, 4)]),
                                          (1 / 24, [(0.0, 3, 4)])])
def test_a_meter_change_off_the_grid_moves_to_the_nearer_bar_line(tmp_path, at, expected):
    """A change 1.3 beats into a 4/4 bar would leave a bar of 16/12 quarters (no meter token,
    not whole sixteenths): it applies from the bar's start; 3.3 beats in, from the next bar
    line; a time signature a step late, from the start."""
    conductor = [mf.meta(0, "time_signature", numerator=4, denominator=4),
                 mf.meta(round(at * mf.TPB), "time_signature", numerator=3, denominator=4)]
    notes = mf.note_events([(60, 0, mf.TPB), (62, 5 * mf.TPB, 6 * mf.TPB), (64, 8 * mf.TPB, 9 * mf.TPB)])
    score = read_score(mf.midi_file(tmp_path / "odd.mid", [conductor, notes]))
    back = ENC.decode_score(ENC.encode(score))
    assert [(back.tempo_map.to_beats(t), n, d) for t, n, d in back.time_signatures] == expected
    assert beats_of(back) == beats_of(score)
    from melodygen.meter import score_bars  # statistics and piano rolls lay the bars out alike
    assert [b.start for b in score_bars(score, SPQ)] == [round(back.tempo_map.to_beats(t) * SPQ)
                                                        for t in [0.0]] + [b.start for b in score_bars(back, SPQ)][1:]


def test_drums_are_kept_as_drums_and_never_transposed(tmp_path):
    path = mf.drums_file(tmp_path)
    read = read_file(path, ENC)
    assert not read.skipped
    back = ENC.decode_score(read.ids)
    assert any(t.is_drum for t in back.tracks) and any(not t.is_drum for t in back.tracks)
    table = ENC.pitch_shift_table(5)
    drum = ENC.vocab.offset("DRUM")
    pitch = ENC.vocab.offset("PITCH")
    assert (table[drum:drum + 128] == np.arange(drum, drum + 128)).all()
    assert table[pitch + 60] == pitch + 65 and table[pitch + 125] == -1
    without = get_encoding("multitrack", drums=False)
    assert not any(t.is_drum for t in without.decode_score(read_file(path, without).ids).tracks)


def test_sixteen_channels_in_one_track_become_sixteen_tracks(tmp_path):
    events_ = []
    for channel in range(16):
        events_ += [mf.message(0, "program_change", channel=channel, program=channel * 8)]
        events_ += mf.note_events([(40 + channel, 0, mf.TPB)], channel=channel)
    score = read_score(mf.midi_file(tmp_path / "sixteen.mid", [events_]), include_drums=True)
    back = ENC.decode_score(ENC.encode(score))
    assert len(back.tracks) == 16
    assert sum(t.is_drum for t in back.tracks) == 1  # channel 10
    assert [t.notes[0].pitch for t in back.tracks] == [40 + c for c in range(16)]


def test_more_tracks_than_the_cap_is_a_reported_skip(tmp_path):
    small = get_encoding("multitrack", max_tracks=3)
    path = mf.multi_voice_file(tmp_path)  # four voices
    read = read_file(path, small)
    assert read.skipped and read.detail == "4 tracks with notes, more than the encoding's max_tracks = 3"


def test_a_ten_minute_silence_is_one_bar_id_per_empty_bar(tmp_path):
    ten_minutes = 1200 * mf.TPB  # 1200 beats at 120 qpm
    notes = mf.note_events([(60, 0, mf.TPB), (62, ten_minutes, ten_minutes + mf.TPB)])
    score = read_score(mf.midi_file(tmp_path / "silence.mid", [notes]))
    ids = ENC.encode(score)
    assert events(ids).count("BAR") == 301
    assert len(ids) < 330
    assert beats_of(ENC.decode_score(ids)) == beats_of(score)


def test_extreme_pitches_and_zero_length_notes(tmp_path):
    notes = mf.note_events([(0, 0, mf.TPB), (127, 0, mf.TPB), (64, mf.TPB, mf.TPB)])  # last: zero length
    score = read_score(mf.midi_file(tmp_path / "edges.mid", [notes]))
    assert score.dropped_notes == 1  # the reader drops and counts it
    back = ENC.decode_score(ENC.encode(score))
    assert sorted(n.pitch for n in back.tracks[0].notes) == [0, 127]


def test_notes_shorter_than_a_step_or_longer_than_the_maximum():
    long_beats = ENC.settings.max_duration_quarters + 3
    score = Score([Track("a", 0, False, [Note(60, 80, 0.0, 0.001), Note(62, 80, 0.0, long_beats / 2)])])
    (track,) = ENC.decode_score(ENC.encode(score)).tracks
    assert [(n.pitch, round(n.end * 2 * SPQ)) for n in track.notes] == [
        (60, 1), (62, ENC.settings.max_duration_quarters * SPQ)]


def test_a_meter_without_a_token_is_a_clear_skip():
    score = Score([Track("a", 0, False, [Note(60, 80, 0.0, 0.5)])], time_signatures=[(0.0, 9, 4)])
    with pytest.raises(NoUsableMusicError, match="time signature 9/4 has no token"):
        ENC.encode(score)


# ---------------------------------------------------------------------------- grammar


def _draw_through_grammar(grammar, rows: int, steps: int, seed: int, primer=()) -> list[list[int]]:
    """Random logits through the grammar, like the sampler: every row draws `steps` ids."""
    generator = torch.Generator().manual_seed(seed)
    out = [list(primer) for _ in range(rows)]
    last = None
    for _ in range(steps):
        logits = torch.randn(rows, ENC.vocab.size, generator=generator) * 3
        logits[:, :EOS_ID + 1] = -float("inf")  # the sampler bans PAD/BOS; EOS: run to the length
        logits = grammar(logits, last)
        last = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)[:, 0]
        for row, i in zip(out, last.tolist()):
            row.append(i)
    return out


def test_grammar_lets_nothing_through_that_decoding_would_drop():
    rows = _draw_through_grammar(ENC.grammar([], 24, "cpu"), 24, 400, seed=0)
    assert sum(ENC.dropped_ids(row) for row in rows) == 0
    assert all(ENC.decode_score(row).note_count() > 0 for row in rows)
    without = [[int(i) for i in torch.randint(3, ENC.vocab.size, (400,))] for _ in range(4)]
    assert sum(ENC.dropped_ids(row) for row in without) > 0  # the check can fail


def test_grammar_continues_a_real_primer_whole():
    primer = [int(i) for i in ENC.encode(read_score(CORPORA["bach-chorales"] / "bwv1.6.mid"))[:700]]
    rows = _draw_through_grammar(ENC.grammar(primer, 8, "cpu"), 8, 300, seed=1, primer=primer)
    assert sum(ENC.dropped_ids(row) for row in rows) == 0


def test_instruments_force_the_header_from_nothing():
    wanted = [parse_instrument(x) for x in ("violin", "piano", "drums")]
    rows = _draw_through_grammar(ENC.grammar([], 6, "cpu", instruments=wanted), 6, 200, seed=2)
    for row in rows:
        score = ENC.decode_score(row)
        assert [(t.program, t.is_drum) for t in score.tracks] == [(40, False), (0, False), (0, True)]
        assert ENC.dropped_ids(row) == 0


def test_instruments_with_a_primer_only_let_those_tracks_play():
    piece = Score([Track("fl", 73, False, [Note(72, 80, 0.0, 0.5)]), Track("pn", 0, False, [Note(48, 80, 0.0, 1.0)])])
    primer = [int(i) for i in ENC.encode(piece)]
    rows = _draw_through_grammar(ENC.grammar(primer, 6, "cpu", instruments=[0]), 6, 300, seed=3, primer=primer)
    for row in rows:
        flute, piano = ENC.decode_score(row).tracks
        assert len(flute.notes) == 1 and len(piano.notes) > 1
    with pytest.raises(ConfigError, match="none of the instruments asked for is a track of the primer"):
        ENC.grammar(primer, 1, "cpu", instruments=[DRUMS])


def test_instrument_names():
    assert [parse_instrument(x) for x in ("piano", "bass", "violin", "Flute", "drums", "40")] == [0, 32, 40, 73, DRUMS, 40]
    with pytest.raises(ConfigError, match="unknown instrument 'sax'"):
        parse_instrument("sax")


def test_one_meter_lays_every_piece_out_in_it_whatever_its_time_signatures_say():
    """POP909's files mostly say 1/4 throughout: `meter = "4/4"` gives them bars again."""
    quarters = Score([Track("piano", 0, False, [Note(60 + i % 5, 80, i * 0.5, i * 0.5 + 0.5) for i in range(16)])],
                     TempoMap(), [(0.0, 1, 4)], 8.0)
    own, fixed = get_encoding("multitrack"), get_encoding("multitrack", meter="4/4")
    assert own.readable(own.encode(quarters)).count("BAR") == 16
    tokens = fixed.readable(fixed.encode(quarters))
    assert tokens.count("BAR") == 4 and "TIMESIG(4/4)" in tokens and "TIMESIG(1/4)" not in tokens
    assert [n.pitch for n in fixed.decode(fixed.encode(quarters))] == [n.pitch for n in quarters.tracks[0].notes]
    assert "meter" not in own.to_dict()["settings"] and fixed.to_dict()["settings"]["meter"] == "4/4"
    for bad in ("5/3", "four", "0/4"):
        with pytest.raises(ConfigError, match="meter must be"):
            get_encoding("multitrack", meter=bad)


def test_a_requested_meter_opens_every_piece_and_no_other_is_stated():
    three_four = ENC.vocab.id_of("TIMESIG", ENC.meter_index[(3, 4)])
    rows = _draw_through_grammar(ENC.grammar([], 12, "cpu", meter=three_four), 12, 200, seed=4)
    timesig = ENC.grammar([], 1, "cpu").ids_of("TIMESIG")
    for row in rows:
        stated = [i for i in row if timesig[i]]
        assert stated and set(stated) == {three_four}
        assert row[row.index(ENC.vocab.id_of("BAR")) + 1] == three_four  # in the first bar's head
        assert {(n, d) for _, n, d in ENC.decode_score(row).time_signatures} == {(3, 4)}
    free = _draw_through_grammar(ENC.grammar([], 12, "cpu"), 12, 200, seed=4)
    assert any(i != three_four for row in free for i in row if timesig[i])  # the check can fail
