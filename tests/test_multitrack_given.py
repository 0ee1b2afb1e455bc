"""Accompaniment and infilling by constrained decoding (`encodings.multitrack_given`): the given
music comes back bit-identical, the model writes only where it may, and bad requests are one line."""

from __future__ import annotations

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


def _rows_through(plan, rows=6, seed=0):
    """Random logits through the grammar with given music, as `sample` draws: PAD and BOS
    banned, a row ends at EOS; every row must end within the cap."""
    grammar = ENC.grammar([], rows, "cpu", given=plan)
    generator = torch.Generator().manual_seed(seed)
    out, last, ended = [[] for _ in range(rows)], None, torch.zeros(rows, dtype=torch.bool)
    for _ in range(20 * len(plan.ids)):
        logits = torch.randn(rows, ENC.vocab.size, generator=generator) * 3
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
    for path in sorted(tmp_path.glob("*.mid")):  # in the file: to the writer's tick (1/960 beat)
        melody = read_score(path, include_drums=True).tracks[0]
        assert [n.pitch for n in melody.notes] == [n.pitch for n in original.tracks[0].notes]
        assert max(abs(a.start - b.start) for a, b in zip(melody.notes, original.tracks[0].notes)) < 0.5 / 960


def test_infill_through_the_cli(tmp_path, checkpoint, tune):
    result = run(checkpoint, "--out", tmp_path, "--primer", tune, "--infill", "2-3", "--seed", 1)
    assert result.exit_code == 0, result.output
    assert len(list(tmp_path.glob("*.mid"))) == 1


@pytest.mark.parametrize("args,needle", [
    (("--infill", "2-3"), "--infill rewrites bars of the --primer piece"),
    (("--primer", REAL_TUNE, "--infill", "40-90"), "is outside its bars 1-"),
    (("--primer", REAL_TUNE, "--infill", "3-x"), "--infill '3-x': expected numbers"),
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
