"""Sampling arrangements: `--bars N` gives N whole bars in the model's own meters, a primer is
continued from its last bar, instruments are chosen, and bad requests are one clear line."""

from __future__ import annotations

import mido
import pytest
from click.testing import CliRunner

from conftest import CORPORA
from melodygen.cli import main
from melodygen.encodings import get_encoding
from melodygen.meter import lay_out_bars, signature_steps
from melodygen.midi_io import WRITE_TICKS_PER_BEAT, read_score
from test_sample_cli import write_checkpoint

ENC = get_encoding("multitrack")
SPQ = ENC.settings.steps_per_quarter
PRIMER = CORPORA["nottingham"] / "jigs1.mid"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "mt.pt", "lstm", "multitrack")


def run(*args):
    return CliRunner().invoke(main, ["sample", *map(str, args)])


def bars_in(path) -> int:
    """Whole bars a written file lasts: up to its end-of-track, under its own time signatures."""
    score = read_score(path, include_drums=True)
    end_tick = sum(m.time for m in mido.MidiFile(path).tracks[0])
    end_step = end_tick * SPQ // WRITE_TICKS_PER_BEAT
    bars = lay_out_bars(signature_steps(score, SPQ), end_step, SPQ)
    assert bars[-1].start == end_step  # the file ends on a bar line
    return len(bars) - 1


def primer_bars() -> int:
    ids = ENC.encode(read_score(PRIMER, include_drums=True))
    return [ENC.vocab.event_of(int(i))[0] for i in ids].count("BAR")


def test_bars_gives_exactly_that_many_whole_bars(tmp_path, checkpoint):
    result = run(checkpoint, "--out", tmp_path, "-n", 3, "--bars", 5, "--seed", 4)
    assert result.exit_code == 0, result.output
    assert [bars_in(p) for p in sorted(tmp_path.glob("*.mid"))] == [5, 5, 5]
    assert "new bars" not in result.output  # no shortfall line


def test_a_primer_is_continued_from_its_last_bar(tmp_path, checkpoint):
    result = run(checkpoint, "--out", tmp_path, "-n", 2, "--bars", 3, "--primer", PRIMER, "--seed", 1)
    assert result.exit_code == 0, result.output
    original = read_score(PRIMER)
    for path in sorted(tmp_path.glob("*.mid")):
        assert bars_in(path) == primer_bars() + 3
        score = read_score(path, include_drums=True)
        assert len(score.tracks) >= len(original.tracks)  # the primer's two tracks, still apart
        assert [n.pitch for n in score.tracks[0].notes[:20]] == [n.pitch for n in original.tracks[0].notes[:20]]


def test_instruments_from_nothing(tmp_path, checkpoint):
    result = run(checkpoint, "--out", tmp_path, "-n", 2, "--bars", 4, "--instruments", "flute, bass,drums", "--seed", 2)
    assert result.exit_code == 0, result.output
    for path in sorted(tmp_path.glob("*.mid")):
        tracks = mido.MidiFile(path).tracks[1:]
        names = [next(m.name for m in t if m.type == "track_name") for t in tracks]
        assert names == ["flute", "acoustic bass", "drums"]


@pytest.mark.parametrize("args,needle", [
    (("--instruments", "kazoo"), "unknown instrument 'kazoo'"),
    (("--instruments", ","), "--instruments needs at least one instrument"),
    (("--program", 5), "choose them with --instruments, not --program"),
    (("--instruments", "drums", "--primer", PRIMER), "none of the instruments asked for is a track of the primer"),
])
def test_bad_instrument_requests_are_one_line(tmp_path, checkpoint, args, needle):
    result = run(checkpoint, "--out", tmp_path, "--bars", 2, *args)
    assert result.exit_code != 0 and needle in result.output and "Traceback" not in result.output


def test_instruments_need_a_multitrack_model(tmp_path):
    melody = write_checkpoint(tmp_path / "m.pt", "lstm", "melody")
    result = run(melody, "--out", tmp_path / "o", "--bars", 2, "--instruments", "piano")
    assert result.exit_code != 0 and "--instruments needs a multitrack model" in result.output
