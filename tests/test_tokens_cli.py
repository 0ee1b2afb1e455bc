"""`melodygen tokens` through click's CliRunner on the real command group."""

import os

import pytest
from click.testing import CliRunner

from melodygen.cli import main
from melodygen.encodings import get_encoding


@pytest.fixture
def tune(nottingham_files):
    return nottingham_files[0]


def _run(*args):
    return CliRunner().invoke(main, ["tokens", *map(str, args)])


@pytest.mark.parametrize("name", ["melody", "performance"])
def test_prints_every_token_faithfully_with_counts(tune, name):
    from melodygen.midi_io import read_score

    result = _run(tune, "--encoding", name)
    assert result.exit_code == 0, result.output
    enc = get_encoding(name)
    ids = enc.encode(read_score(tune))
    *token_lines, summary, counts = result.output.strip().splitlines()
    assert " ".join(token_lines).split() == [enc.vocab.tokens[i] for i in ids]
    assert summary.startswith(f"{len(ids)} ids from ")
    assert counts.split() == [str(x) for kv in enc.vocab.count_events(ids).items() for x in kv]


def test_limit_shows_the_first_tokens_only(tune):
    result = _run(tune, "--encoding", "performance", "--limit", "5")
    assert result.exit_code == 0, result.output
    first, more = result.output.splitlines()[:2]
    assert len(first.split()) == 5 and "VELOCITY(" in first
    assert more.startswith("... ") and more.endswith("more (--limit 5)")


def test_decode_writes_the_decoded_notes(tune, tmp_path):
    from melodygen.midi_io import read_score

    out = tmp_path / "decoded.mid"
    result = _run(tune, "--decode", out, "--set", "min_pitch=36", "--set", "max_pitch=96")
    assert result.exit_code == 0, result.output
    assert f"to {out}" in result.output.splitlines()[-1]
    enc = get_encoding("melody", min_pitch=36, max_pitch=96)
    score = read_score(tune)
    expected = enc.decode(enc.encode(score), qpm=score.tempo_map.qpm[0])
    written = read_score(out).tracks[0].notes
    assert [n.pitch for n in written] == [n.pitch for n in expected]
    assert [n.start for n in written] == pytest.approx([n.start for n in expected], abs=1e-3)


@pytest.mark.parametrize("args, message", [
    (["--set", "bogus=1"], "melody encoding: unknown setting 'bogus'"),
    (["--set", "encoding.bogus=1"], "melody encoding: unknown setting 'bogus'"),
    (["--set", "training.lr=1"], "--set training.*: only encoding settings can be set here"),
    (["--set", "track"], "expected encoding.KEY=VALUE"),
    (["--set", "min_notes=100000"], "nothing to encode"),
    (["--set", "track=5"], "nothing to encode (track 5 out of range"),
])
def test_bad_input_is_one_line_and_exit_1(tune, args, message):
    result = _run(tune, *args)
    assert result.exit_code == 1
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert result.output.count(tune.name) <= 1
    assert "Traceback" not in result.output


def test_an_unknown_encoding_is_a_usage_error_listing_the_registry(tune):
    result = _run(tune, "--encoding", "remi")
    assert result.exit_code == 2
    assert "'remi' is not one of 'melody', 'multitrack', 'performance'" in result.output


def test_a_file_that_is_not_midi_is_one_line(tmp_path):
    bad = tmp_path / "noise.mid"
    bad.write_bytes(b"this is not a MIDI file at all")
    result = _run(bad)
    assert result.exit_code == 1 and "noise.mid" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_an_unwritable_decode_target_is_named(tune, tmp_path):
    (tmp_path / "file").write_text("")
    result = _run(tune, "--decode", tmp_path / "file" / "out.mid")
    assert result.exit_code == 1
    assert result.output.splitlines()[-1].startswith(f"Error: {tmp_path / 'file'}: cannot create the folder (")
    assert os.listdir(tmp_path) == ["file"]


def test_decode_never_replaces_a_file_without_overwrite(tune, tmp_path):
    precious = tmp_path / "last.pt"
    precious.write_bytes(b"a checkpoint")
    result = _run(tune, "--decode", precious)
    assert result.exit_code == 1 and result.output == (f"Error: {precious}: already exists; pass --overwrite "
                                                       "or choose another --decode file\n")
    assert precious.read_bytes() == b"a checkpoint"
    assert _run(tune, "--decode", precious, "--overwrite").exit_code == 0 and precious.read_bytes()[:4] == b"MThd"


def test_multitrack_tokens_name_each_track_and_decode_to_its_tracks(tmp_path):
    from conftest import CORPORA
    from melodygen.midi_io import read_score

    chorale = CORPORA["bach-chorales"] / "bwv1.6.mid"
    result = CliRunner().invoke(main, ["tokens", str(chorale), "--encoding", "multitrack", "--limit", 40,
                                       "--decode", str(tmp_path / "back.mid")])
    assert result.exit_code == 0, result.output
    assert "TRACK(2:acoustic-grand-piano) PITCH(65)" in result.output
    assert "decode to 491 notes on 5 tracks" in result.output
    assert [len(t.notes) for t in read_score(tmp_path / "back.mid").tracks] == [147, 70, 89, 92, 93]
