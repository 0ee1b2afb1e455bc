"""Accompaniment and infilling by constrained decoding (`encodings.multitrack_given`): the given
music comes back bit-identical (in the file: on the source's own ticks), the model writes only
where it may, the copy check's mask covers the given music, and bad requests are one line."""

from __future__ import annotations

import mido
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import midi_factory as mf
from conftest import CORPORA
from melodygen.cli import main
from melodygen.encodings import get_encoding
from melodygen.encodings.multitrack_given import accompaniment_plan, infill_plan
from melodygen.encodings.vocab import EOS_ID
from melodygen.midi_io import read_score
from test_midi_io import raw_notes
from test_sample_cli import write_checkpoint

ENC = get_encoding("multitrack")
REAL_TUNE = CORPORA["nottingham"] / "jigs1.mid"  # two tracks: melody, chords; 33 bars


@pytest.fixture(scope="module")
def tune(tmp_path_factory):
    """Four bars of melody over held triads, two tracks (short: an untrained model writes much)."""
    return mf.melody_with_chords_file(tmp_path_factory.mktemp("tune"), notes=16)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "mt.pt", "lstm", "multitrack")


def run(*args):
    return CliRunner().invoke(main, ["sample", *map(str, args)])


def spans(track):
    return [(n.pitch, n.velocity, n.start, n.end) for n in track.notes]


def _rows_through(plan, rows=6, seed=0, encoding=ENC):
    """Random logits through the grammar with given music, as `sample` draws: PAD and BOS
    banned, a row ends at EOS; every row must end within the cap."""
    grammar = encoding.grammar([], rows, "cpu", given=plan)
    generator = torch.Generator().manual_seed(seed)
    out, last, ended = [[] for _ in range(rows)], None, torch.zeros(rows, dtype=torch.bool)
    for _ in range(20 * len(plan.ids)):
        logits = torch.randn(rows, encoding.vocab.size, generator=generator) * 3
        logits[:, :EOS_ID] = -float("inf")
        logits = grammar(logits, last)
        last = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)[:, 0]
        for row, i, done in zip(out, last.tolist(), ended.tolist()):
            if not done and i != EOS_ID:
                row.append(i)
        ended |= last == EOS_ID
        if bool(ended.all()):
            return out, grammar
    raise AssertionError("rows did not end")


def test_the_grammar_forces_every_given_id_in_order_and_ends_the_rows(tune):
    score = read_score(tune)
    plan = accompaniment_plan(ENC, score, [0], [0, 32])
    rows, grammar = _rows_through(plan)
    assert bool(grammar.given_done().all())
    for row in rows:
        assert ENC.dropped_ids(row) == 0
        it = iter(row)
        assert all(any(x == g for x in it) for g in plan.ids.tolist())  # the given ids, in order
        decoded = ENC.decode_score(row)
        assert [t.program for t in decoded.tracks] == [0, 0, 32]
        assert len(decoded.tracks[0].notes) == len(score.tracks[0].notes)  # the model added none to it


def test_a_model_with_controls_is_given_the_key_and_the_chords_harmonized_from_the_melody(tune):
    from melodygen.notes import Score

    controlled = get_encoding("multitrack", controls=["key", "chord", "density"])
    score = read_score(tune)
    plan = accompaniment_plan(controlled, score, [0], [0])
    melody = Score(score.tracks[:1], score.tempo_map, score.time_signatures, score.end_time)
    labels = controlled.controls_of(melody)  # the key as training data is labelled
    names = [controlled.vocab.event_of(int(i)) for i in plan.ids]
    assert [value for name, value in names if name == "CHORD"] == controlled.melody_chords(melody).tolist()
    assert {value for name, value in names if name == "KEY"} == {labels.key}
    assert not any(name == "DENSITY" for name, _ in names)  # counted over the melody alone: not asked
    rows, _ = _rows_through(plan, encoding=controlled)
    for row in rows:  # forced in order, the written notes around them
        it = iter(row)
        assert all(any(x == g for x in it) for g in plan.ids.tolist())
        assert not any(controlled.vocab.event_of(i)[0] == "DENSITY" for i in row)


@pytest.mark.parametrize("make,bars,span", [
    (lambda tmp: REAL_TUNE, (3, 4), 2 * 36),  # two 6/8 bars
    # performed timing: a note 7 ticks before a bar line belongs to the next bar (its grid step)
    (lambda tmp: mf.midi_file(tmp / "early.mid", [mf.note_events(
        [(60 + i, 4 * mf.TPB * b + mf.TPB * i - 7 * (i == 0 and b > 0), 4 * mf.TPB * b + mf.TPB * (i + 1) - 8)
         for b in range(4) for i in range(4)])]), (2, 2), 48),
    # a time signature after the last note must not cut the last bar short
    (lambda tmp: mf.midi_file(tmp / "trail.mid", [[mf.meta(15 * mf.TPB + 240, "time_signature", numerator=3, denominator=4)],
                                                 mf.note_events([(60 + i, mf.TPB * i, mf.TPB * (i + 1)) for i in range(16)])]),
     (4, 4), 48),
])
def test_infilling_writes_only_inside_its_bars(tmp_path, make, bars, span):
    score = read_score(make(tmp_path))
    plan = infill_plan(ENC, score, *bars)
    lo, hi = plan.region
    assert hi - lo == span  # steps

    def inside(tempo, note):
        return lo <= ENC.grid_step(tempo, note.start) < hi

    rows, _ = _rows_through(plan, rows=2, seed=1)
    for row in rows:
        assert ENC.dropped_ids(row) == 0
        piece = plan.assemble(ENC.decode_score(row))
        for original, written in zip(score.tracks, piece.tracks):
            assert spans(type(written)(written.name, 0, False, [n for n in written.notes if not inside(score.tempo_map, n)])) \
                == [(n.pitch, n.velocity, n.start, n.end) for n in original.notes if not inside(score.tempo_map, n)]


def test_accompaniment_gives_the_melody_back_bit_identical(tmp_path, checkpoint, tune):
    import melodygen

    original = read_score(tune)
    pieces = melodygen.load(checkpoint).generate(n=1, accompany=tune, given_tracks=[1], instruments=["piano", "bass"], seed=3)
    for piece in pieces:
        melody, *new = piece.score.tracks
        assert spans(melody) == spans(original.tracks[0])  # the same Note values, to the last bit
        assert [t.program for t in new] == [0, 32]
        assert piece.score.tempo_map == original.tempo_map and piece.score.time_signatures == original.time_signatures
    result = run(checkpoint, "--out", tmp_path, "--accompany", tune, "--given-tracks", 1,
                 "--instruments", "piano,bass", "--seed", 3)
    assert result.exit_code == 0, result.output
    for path in sorted(tmp_path.glob("*.mid")):  # in the file too: on the source's own ticks
        melody = read_score(path, include_drums=True).tracks[0]
        assert spans(melody) == spans(original.tracks[0])


def test_accompaniment_leans_new_notes_toward_the_given_music_s_key(tmp_path, checkpoint, tune):
    import melodygen
    from melodygen import harmony

    model = melodygen.load(checkpoint)  # untrained, no key control: it draws pitches evenly
    key = harmony.detect_key(np.bincount([n.pitch % 12 for n in read_score(tune).tracks[0].notes], minlength=12))
    fit = {}
    for strength in (0, 6):
        pieces = model.generate(n=4, accompany=tune, given_tracks=[1], instruments=["piano"], seed=3,
                                key_strength=strength)
        weights = sum(np.bincount([n.pitch % 12 for t in p.score.tracks[1:] for n in t.notes], minlength=12)
                      for p in pieces)
        fit[strength] = harmony.key_fit(weights, key)
    assert fit[6] > fit[0] + 0.2
    result = run(checkpoint, "--out", tmp_path, "--accompany", tune, "--given-tracks", 1, "--instruments", "piano",
                 "--key-strength", 2, "--seed", 3)  # no --key: the melody's is measured
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def fine_tune(tmp_path_factory):
    """Four bars of 4/4 at 1024 ticks per beat (as the Nottingham files), melody over triads, with
    onsets and ends a few ticks off the beat: ticks that fall between two at 960 per beat."""
    melody = [(60 + i, 1024 * i + 7 * (i % 3), 1024 * (i + 1) - 5) for i in range(16)]
    chords = [(p, 2048 * i + 3, 2048 * (i + 1) - 9) for i in range(8) for p in (48, 52, 55)]
    return mf.midi_file(tmp_path_factory.mktemp("fine") / "fine.mid", [
        [mf.meta(0, "set_tempo", tempo=500000)], mf.note_events(melody), mf.note_events(chords, channel=1)],
        ticks_per_beat=1024)


@pytest.mark.parametrize("args,outside", [
    (("--accompany", "--given-tracks", "1", "--instruments", "piano"), None),  # the melody is given
    (("--primer", "--infill", "2-3"), (4 * 1024, 12 * 1024)),  # bars 2-3 are written again
])
def test_given_notes_keep_their_ticks(tmp_path, checkpoint, fine_tune, args, outside):
    option, *rest = args
    result = run(checkpoint, "--out", tmp_path, option, fine_tune, *rest, "--seed", 2)
    assert result.exit_code == 0, result.output
    (out,) = tmp_path.glob("*.mid")
    assert mido.MidiFile(out).ticks_per_beat == 1024

    def given(tracks):
        return [[n for n in notes if not (outside and outside[0] <= n[1] < outside[1])] for notes in tracks]

    source, written = raw_notes(fine_tune), raw_notes(out)
    expected = source[:1] if outside is None else given(source)
    assert given(written[:len(expected)]) == expected  # each given note on its own ticks


def test_the_copy_check_mask_covers_exactly_the_given_music(tune):
    score = read_score(tune)
    melody_notes, chord_notes = (len(t.notes) for t in score.tracks)
    accompany = accompaniment_plan(ENC, score, [0], [32])
    rows, _ = _rows_through(accompany, rows=2, seed=4)
    for row in rows:
        ids = ENC.encode(accompany.assemble(ENC.decode_score(row)))
        mask, names = accompany.given_mask(ids), _names(ids)
        new_notes = sum(len(t.notes) for t in ENC.decode_score(ids).tracks[1:])
        assert ((names == "PITCH") & mask).sum() == melody_notes and ((names == "PITCH") & ~mask).sum() == new_notes
        assert list(mask[names == "PROGRAM"]) == [True, False][:(names == "PROGRAM").sum()]
        assert not mask[np.isin(names, ["BAR", "POS", "TIMESIG", "TEMPO"])].any()  # the frame of the new notes
    infill = infill_plan(ENC, score, 2, 3)
    rows, _ = _rows_through(infill, rows=2, seed=5)
    for row in rows:
        ids = ENC.encode(infill.assemble(ENC.decode_score(row)))
        mask, names = infill.given_mask(ids), _names(ids)
        assert ((names == "PITCH") & mask).sum() == (melody_notes + chord_notes) // 2  # bars 1 and 4
        assert (names[~mask] == "BAR").sum() == 2 and names[~mask][0] == "BAR"  # bars 2 and 3, whole


def _names(ids) -> np.ndarray:
    return np.array([ENC.vocab.event_of(int(i))[0] for i in ids])


def test_infill_through_the_cli(tmp_path, checkpoint, tune):
    result = run(checkpoint, "--out", tmp_path, "--primer", tune, "--infill", "2-3", "--seed", 1)
    assert result.exit_code == 0, result.output
    assert len(list(tmp_path.glob("*.mid"))) == 1


@pytest.mark.parametrize("args,needle", [
    (("--infill", "2-3"), "--infill rewrites bars of the --primer piece"),
    (("--primer", REAL_TUNE, "--infill", "40-90"), "is outside its bars 1-"),
    (("--primer", REAL_TUNE, "--infill", "3-x"), "infill '3-x': expected whole numbers"),
    (("--accompany", REAL_TUNE, "--given-tracks", "5"), "no track [5] to give"),
    (("--given-tracks", "1"), "--given-tracks chooses tracks of the --accompany file"),
    (("--accompany", REAL_TUNE, "--bars", "4"), "write as long as the given piece"),
    (("--accompany", REAL_TUNE, "--primer", REAL_TUNE, "--infill", "1-2"), "give --accompany or --infill, not both"),
])
def test_bad_given_music_requests_are_one_line(tmp_path, checkpoint, args, needle):
    result = run(checkpoint, "--out", tmp_path / "o", *args)
    assert result.exit_code != 0 and needle in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


def test_given_music_needs_a_multitrack_model(tmp_path):
    melody = write_checkpoint(tmp_path / "m.pt", "lstm", "melody")
    result = run(melody, "--out", tmp_path / "o", "--accompany", REAL_TUNE)
    assert result.exit_code == 1 and "need a multitrack model" in result.output


def test_a_given_melody_s_chord_labels_are_the_harmonizer_s_unless_chords_are_asked(tune):
    from melodygen import harmony
    from melodygen.encodings.controls import ControlRequest
    from melodygen.notes import Score

    encoding = get_encoding("multitrack", controls=["key", "chord"])
    score = read_score(tune)
    melody = Score(score.tracks[:1], score.tempo_map, score.time_signatures, score.end_time)

    def labels(plan):
        return [harmony.chord_name(value) for name, value in map(encoding.vocab.event_of, plan.ids) if name == "CHORD"]

    harmonized = [harmony.chord_name(c) for c in encoding.melody_chords(melody)]
    assert labels(accompaniment_plan(encoding, score, [0], [0])) == harmonized == ["C"] * 4  # the tune's own
    assert [harmony.chord_name(c) for c in encoding.controls_of(melody).chords] == ["Gsus4", "Dsus4"] * 2  # its notes'
    asked = ControlRequest.parse(chords="D G")
    assert labels(accompaniment_plan(encoding, score, [0], [0], asked)) == ["D", "G"] * (len(harmonized) // 2)
    both = accompaniment_plan(encoding, score, [0, 1], [0])  # a chord track given: its own chords, as measured
    assert labels(both) == [harmony.chord_name(c) for c in encoding.controls_of(score).chords]



def test_a_drum_track_given_alone_gets_no_harmonized_chords(tmp_path):
    encoding = get_encoding("multitrack", controls=["key", "chord"])
    beats = [(36 + 2 * (i % 2), 480 * i, 480 * i + 120) for i in range(16)]
    drums = read_score(mf.midi_file(tmp_path / "drums.mid", [mf.note_events(beats, channel=9)]), include_drums=True)
    plan = accompaniment_plan(encoding, drums, [0], [0])
    chords = [value for name, value in map(encoding.vocab.event_of, plan.ids) if name == "CHORD"]
    assert chords == [c for c in encoding.controls_of(drums).chords if c >= 0] == []  # nothing pitched: none
