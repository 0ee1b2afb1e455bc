"""Repeats in the multitrack stream (`multitrack_repeats`): with `repeats` on, every piece decodes
to the very score it decodes to with repeats off (real files of each bundled corpus, generated
bar contents); off, not one id moves; and decoding's rules for REPEAT/SHIFT ids that break
the grammar, each with its documented outcome."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from conftest import DATA
from melodygen.encodings import encoding_from_dict, get_encoding
from melodygen.encodings.vocab import EOS_ID
from melodygen.encodings.multitrack_controls import CONTROL_KINDS, TOKEN_OF
from melodygen.errors import ConfigError
from melodygen.midi_io import read_score
from melodygen.notes import Note, Score, TempoMap, Track

OFF = get_encoding("multitrack")
ON = get_encoding("multitrack", repeats=32)
SPQ = OFF.settings.steps_per_quarter
CONTROL_NAMES = set(TOKEN_OF.values())
REAL = {"nottingham": ["ashover1.mid", "ashover10.mid", "ashover11.mid"],  # ashover1 has a SHIFT
        "bach-chorales": ["bwv1.6.mid", "bwv10.7.mid", "bwv11.6.mid"],
        "pop909": ["001.mid", "025.mid"]}  # 025 has SHIFTs


def kinds(encoding, ids) -> list[str]:
    return [encoding.vocab.event_of(int(i))[0] for i in ids]


def ids_of(encoding, *events) -> list[int]:
    """Ids of events given as NAME or (NAME, value)."""
    return [encoding.vocab.id_of(*((e,) if isinstance(e, str) else e)) for e in events]


# ---------------------------------------------------------------------------- off: nothing moves


def test_off_by_default_and_no_id_moves_when_on():
    for extra in ({}, {"controls": list(CONTROL_KINDS)}):
        off, on = get_encoding("multitrack", **extra), get_encoding("multitrack", repeats=16, **extra)
        assert off.settings.repeats == 0
        assert on.vocab.tokens[:off.vocab.size] == off.vocab.tokens
        assert on.vocab.tokens[off.vocab.size:] == ([f"REPEAT(-{k})" for k in range(1, 17)]
                                                    + [f"SHIFT({s:+d})" for s in range(-12, 13) if s])


def test_stored_form_without_repeats_is_as_before_and_with_them_round_trips():
    stored = OFF.to_dict()
    assert "repeats" not in stored["settings"]  # datasets and checkpoints stored before compare equal
    assert encoding_from_dict(stored) == OFF
    assert ON.to_dict()["settings"]["repeats"] == 32 and encoding_from_dict(ON.to_dict()) == ON


@pytest.mark.parametrize("value", [-1, 65])
def test_repeats_out_of_range_is_a_config_error(value):
    with pytest.raises(ConfigError, match=r"repeats must be in 0\.\.64"):
        get_encoding("multitrack", repeats=value)


# ---------------------------------------------------------------------------- lossless on real files


@pytest.mark.parametrize("corpus", sorted(REAL))
def test_real_files_decode_the_same_with_repeats_on(corpus):
    shifted = 0
    for name in REAL[corpus]:
        score = read_score(DATA / corpus / name, include_drums=True)
        for controls in ((), tuple(CONTROL_KINDS)):
            off = get_encoding("multitrack", controls=list(controls))
            on = get_encoding("multitrack", controls=list(controls), repeats=32)
            ids = on.encode(score)
            assert on.dropped_ids(ids) == 0
            assert on.decode_score(ids) == off.decode_score(off.encode(score)), name
            assert "REPEAT" in kinds(on, ids) and len(ids) < len(off.encode(score))
            shifted += kinds(on, ids).count("SHIFT")
    assert corpus == "bach-chorales" or shifted  # transposed repeats are exercised too


def test_a_repeated_bar_keeps_its_head_and_controls():
    on = get_encoding("multitrack", controls=list(CONTROL_KINDS), repeats=16)
    ids = on.encode(read_score(DATA / "nottingham" / "ashover10.mid"))
    names = kinds(on, ids)
    for at in [i for i, name in enumerate(names) if name == "REPEAT"]:
        bar = max(i for i in range(at) if names[i] == "BAR")
        assert {"KEY", "DENSITY"} <= set(names[bar + 1:at]) <= {"TIMESIG", *CONTROL_NAMES}


def test_transposing_the_ids_is_encoding_the_transposed_score():
    """REPEAT and SHIFT ids stay put under `pitch_shift_table`: a relative shift stays relative."""
    score = read_score(DATA / "nottingham" / "ashover1.mid")
    up = Score([Track(t.name, t.program, t.is_drum, [Note(n.pitch + 3, n.velocity, n.start, n.end) for n in t.notes])
                for t in score.tracks], score.tempo_map, score.time_signatures, score.end_time)
    table = ON.pitch_shift_table(3)
    assert (table[ON.vocab.offset("REPEAT"):] == np.arange(ON.vocab.offset("REPEAT"), ON.vocab.size)).all()
    assert table[ON.encode(score)].tolist() == ON.encode(up).tolist()


def test_given_music_stays_note_by_note():
    score = read_score(DATA / "nottingham" / "ashover10.mid")
    assert "REPEAT" not in kinds(ON, ON.encode_with(score, track_at_every_position=True, controls=False))


# ---------------------------------------------------------------------------- lossless on generated bars


@st.composite
def repeating_scores(draw, varied: bool = False):
    """Scores built bar by bar from a few bar contents, each bar empty, fresh, or one of them
    again (transposed or not), under changing meters and tempos, with a drum track at times;
    with `varied`, also one of them up to a position and fresh notes from there (a varied repeat)."""
    meters = draw(st.lists(st.sampled_from([(4, 4), (3, 4), (6, 8), (2, 4)]), min_size=2, max_size=12))
    drums = draw(st.booleans())
    # track, pitch, onset in steps from the bar line (inside the shortest bar here), length, velocity
    note = st.tuples(st.integers(0, 2 if drums else 1), st.integers(20, 100), st.integers(0, 2 * SPQ - 1),
                     st.integers(1, 30), st.integers(1, 127))
    contents = draw(st.lists(st.lists(note, min_size=1, max_size=6), min_size=1, max_size=3))
    tempo_bars = draw(st.sets(st.integers(1, len(meters) - 1), max_size=2))
    tempo_map = TempoMap.from_beats([0.0, *(4.0 * b for b in sorted(tempo_bars))],
                                    [120.0] + [draw(st.sampled_from([60.0, 90.0, 150.0])) for _ in tempo_bars])
    tracks = [Track("a", 0, False, []), Track("b", 33, False, [])] + ([Track("kit", 0, True, [])] if drums else [])
    signatures, start = [], 0.0
    for i, (n, d) in enumerate(meters):
        if i == 0 or meters[i - 1] != (n, d):
            signatures.append((tempo_map.to_seconds(start), n, d))
        choice = draw(st.integers(-1, len(contents)))  # -1: empty; len(contents): fresh notes
        if choice < 0:
            notes = []
        else:
            notes = contents[choice] if choice < len(contents) else draw(st.lists(note, min_size=1, max_size=4))
        if varied and choice >= 0 and draw(st.booleans()):
            cut = draw(st.integers(1, 2 * SPQ - 1))
            fresh = draw(st.lists(note, min_size=1, max_size=4))
            notes = [n for n in notes if n[2] < cut] + [(t, p, step, length, v) for t, p, step, length, v in fresh
                                                        if step >= cut]
        shift = draw(st.one_of(st.just(0), st.integers(-12, 12)))
        for track, pitch, step, length, velocity in notes:
            pitch = pitch if track == 2 else pitch + shift
            begin = start + step / SPQ
            tracks[track].notes.append(Note(pitch, velocity, tempo_map.to_seconds(begin),
                                            tempo_map.to_seconds(begin + length / SPQ)))
        start += 4.0 * n / d
    tracks = [Track(t.name, t.program, t.is_drum, sorted(set(t.notes), key=lambda x: (x.start, x.pitch)))
              for t in tracks]
    return Score(tracks, tempo_map, signatures)


@settings(max_examples=80, deadline=None)
@given(repeating_scores(), st.sampled_from([1, 2, 4, 32]))
def test_generated_bars_decode_the_same_with_repeats_on(score, repeats):
    assume(score.note_count() > 0)
    on = get_encoding("multitrack", repeats=repeats)
    ids = on.encode(score)
    off_ids = OFF.encode(score)
    assert on.dropped_ids(ids) == 0
    assert on.decode_score(ids) == OFF.decode_score(off_ids)
    assert len(ids) <= len(off_ids)
    distances = [value for name, value in map(on.vocab.event_of, ids.tolist()) if name == "REPEAT"]
    assert all(1 <= k <= repeats for k in distances)


@settings(max_examples=80, deadline=None)
@given(repeating_scores(varied=True), st.sampled_from([1, 4, 32]))
def test_generated_bars_decode_the_same_with_varied_repeats_on(score, repeats):
    assume(score.note_count() > 0)
    varied = get_encoding("multitrack", repeats=repeats, varied_repeats=True)
    ids = varied.encode(score)
    plain = OFF.encode(score)
    assert varied.dropped_ids(ids) == 0
    assert varied.decode_score(ids) == OFF.decode_score(plain)
    assert np.array_equal(varied.written_out(ids), plain)  # as `encode` writes each bar
    assert len(ids) <= len(get_encoding("multitrack", repeats=repeats).encode(score))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, ON.vocab.size - 1), max_size=300))
def test_any_ids_decode_and_the_drops_are_counted(ids):
    assert 0 <= ON.dropped_ids(ids) <= len(ids)
    assert all(n.end > n.start for n in ON.decode(ids))


# ---------------------------------------------------------------------------- decoding's rules


QPM_60 = int(np.argmin(np.abs(ON.tempos - 60)))  # a second per quarter note
# A piano and a drum kit; a 4/4 bar: piano 60 and drum 36 on the downbeat, piano 126 at 3.5
# quarters for a quarter (into the next bar).
BAR_ONE = [("PROGRAM", 0), ("PROGRAM", 128), "BAR", ("TIMESIG", ON.meter_index[(4, 4)]), ("POS", 0),
           ("TEMPO", QPM_60), ("TRACK", 0), ("PITCH", 60), ("VEL", 8), ("DUR", 12), ("TRACK", 1), ("DRUM", 36),
           ("VEL", 8), ("DUR", 1), ("POS", 42), ("TRACK", 0), ("PITCH", 126), ("VEL", 8), ("DUR", 12)]


def notes_of(ids) -> list[tuple[int, float]]:
    """(pitch, onset in quarters) of each note, by onset."""
    return [(n.pitch, round(n.start, 6)) for n in ON.decode(ids)]


def test_shift_moves_pitched_notes_only_and_chains_expand():
    shift_up_2 = ("SHIFT", 13)  # values count -12..-1, +1..+12
    assert ON.readable(ids_of(ON, shift_up_2)) == ["SHIFT(+2)"]
    ids = ids_of(ON, *BAR_ONE, "BAR", ("REPEAT", 1), shift_up_2, "BAR", ("REPEAT", 1), "BAR", ("REPEAT", 3))
    assert ON.dropped_ids(ids) == 0
    # bar 2 = bar 1 up 2 (126 + 2 leaves the range: cut, not counted); bar 3 = bar 2; bar 4 = bar 1
    assert notes_of(ids) == [(36, 0), (60, 0), (126, 3.5), (36, 4), (62, 4), (36, 8), (62, 8),
                             (36, 12), (60, 12), (126, 15.5)]


def test_a_copy_is_cut_to_a_shorter_bar():
    ids = ids_of(ON, *BAR_ONE, "BAR", ("TIMESIG", ON.meter_index[(3, 4)]), ("REPEAT", 1))
    assert ON.dropped_ids(ids) == 0
    assert notes_of(ids)[-2:] == [(36, 4), (60, 4)]  # the note at 3.5 quarters is past the 3/4 bar


@pytest.mark.parametrize("tail,dropped", [
    (["BAR", ("REPEAT", 2)], 1),                       # points before the first bar
    ([("REPEAT", 1)], 1),                              # in a bar that already has a body
    (["BAR", ("POS", 0), ("REPEAT", 1)], 1),           # not right after the head
    (["BAR", ("SHIFT", 3)], 1),                        # SHIFT with no REPEAT
    (["BAR", ("REPEAT", 1), ("SHIFT", 3), ("SHIFT", 3)], 1),  # a second SHIFT
    (["BAR", ("REPEAT", 1), ("REPEAT", 1)], 1),        # a second REPEAT
    (["BAR", ("REPEAT", 1), ("POS", 6), ("TRACK", 0), ("PITCH", 50), ("VEL", 8), ("DUR", 6)], 5),  # a body after
])
def test_what_breaks_the_repeat_rules_is_dropped_and_counted(tail, dropped):
    assert ON.dropped_ids(ids_of(ON, *BAR_ONE, *tail)) == dropped


def test_a_piece_ending_in_a_repeat_keeps_that_bar():
    ends_in_repeat = ON.decode_score(ids_of(ON, *BAR_ONE, "BAR", ("REPEAT", 1)))
    ends_on_bar_line = ON.decode_score(ids_of(ON, *BAR_ONE, "BAR", ("REPEAT", 1), "BAR"))
    assert ends_in_repeat.end_time == pytest.approx(8.5)  # the copied 126's end, past the bar
    assert ends_on_bar_line.end_time == pytest.approx(8.0)  # at the last bar line, as without repeats


def test_the_copy_check_compares_repeated_bars_written_out(tmp_path):
    """A REPEAT id means different music in different tunes: the copy index and the query spell
    every bar out (the ids without repeats, a piece's EOS kept), and a training tune is found
    whole, as long as it is written out."""
    from melodygen.dataset.copies import CopyIndex
    from melodygen.dataset.prepare import prepare

    encoding = get_encoding("multitrack", repeats=8)
    plain = get_encoding("multitrack")
    files = sorted((DATA / "nottingham").glob("*.mid"))[:6]
    for path in files:
        score = read_score(path)
        assert np.array_equal(encoding.written_out(encoding.encode(score)), plain.encode(score).astype(np.int64))
        assert encoding.written_out([*encoding.encode(score), EOS_ID])[-1] == EOS_ID
    prepare(files, encoding, tmp_path / "data", val_fraction=0.0, workers=1, progress=False)
    index = CopyIndex.open(tmp_path / "data")
    tune = read_score(files[0])
    found = index.check(encoding.written_out(encoding.encode(tune))).longest
    assert found is not None and found.events == len(plain.encode(tune))  # the whole tune, written out


# ---------------------------------------------------------------------------- varied repeats

VARIED = get_encoding("multitrack", repeats=32, varied_repeats=True)


def test_varied_repeats_are_a_setting_stored_only_when_on():
    assert "varied_repeats" not in ON.to_dict()["settings"]  # checkpoints stored before compare equal
    assert encoding_from_dict(VARIED.to_dict()) == VARIED and VARIED.vocab.tokens == ON.vocab.tokens
    with pytest.raises(ConfigError, match="varied_repeats needs repeats"):
        get_encoding("multitrack", varied_repeats=True)


@pytest.mark.parametrize("corpus", sorted(REAL))
def test_real_files_decode_the_same_with_varied_repeats_on(corpus):
    cuts = 0
    for name in REAL[corpus]:
        score = read_score(DATA / corpus / name)
        ids = VARIED.encode(score)
        assert VARIED.dropped_ids(ids) == 0
        assert VARIED.decode_score(ids) == OFF.decode_score(OFF.encode(score))
        assert np.array_equal(VARIED.written_out(ids), OFF.encode(score))
        names = kinds(VARIED, ids)
        cuts += sum(a == "REPEAT" and b == "POS" for a, b in zip(names, names[1:]))
        assert len(ids) <= len(ON.encode(score))
    assert cuts > 0 or corpus == "bach-chorales"  # ashover10, ashover11, 001 and 025 vary bars they repeat


def test_a_varied_repeat_copies_the_bar_before_its_cut_and_goes_on_anew():
    new_part = [("POS", 24), ("TRACK", 0), ("PITCH", 50), ("VEL", 8), ("DUR", 6)]
    ids = ids_of(VARIED, *BAR_ONE, "BAR", ("REPEAT", 1), *new_part, "BAR", ("REPEAT", 1))
    assert VARIED.dropped_ids(ids) == 0
    notes = [(n.pitch, round(n.start, 6)) for n in VARIED.decode(ids)]
    # bar 2: bar 1 before 2 quarters (60, drum 36), then 50 at 2 quarters (126 at 3.5 not copied);
    # bar 3 copies bar 2 as it was decoded
    assert notes == [(36, 0), (60, 0), (126, 3.5), (36, 4), (60, 4), (50, 6), (36, 8), (60, 8), (50, 10)]
    assert ON.dropped_ids(ids_of(ON, *BAR_ONE, "BAR", ("REPEAT", 1), *new_part)) == 5  # only when varied


@pytest.mark.parametrize("tail", [
    ["BAR", ("REPEAT", 1), ("POS", 0), ("TRACK", 0), ("PITCH", 50), ("VEL", 8), ("DUR", 6)],  # a cut copies something
    ["BAR", ("REPEAT", 1), ("POS", 24), ("PITCH", 50), ("VEL", 8), ("DUR", 6)],  # no track after the cut
])
def test_a_varied_repeat_breaking_the_rules_is_dropped(tail):
    assert VARIED.dropped_ids(ids_of(VARIED, *BAR_ONE, *tail)) > 0
