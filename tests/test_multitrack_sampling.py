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
    (("--instruments", ","), "instruments: give at least one instrument"),
    (("--program", 5), "choose them with --instruments, not --program"),
    (("--instruments", "drums", "--primer", PRIMER), "none of the instruments asked for is a track of the primer"),
    (("--instruments", ",".join(["piano"] * 17)), "17 instruments, more than the model's max_tracks = 16"),
    (("--bars", 2.5), "writes whole bars: --bars 2.5 is not a whole number"),
])
def test_bad_requests_are_one_line_and_touch_no_folder(tmp_path, checkpoint, args, needle):
    out = tmp_path / "o"
    result = run(checkpoint, "--out", out, "--bars", 2, *args)
    assert result.exit_code != 0 and needle in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_continuation_only_starts_at_the_first_new_bar_with_the_primers_tracks(tmp_path, checkpoint):
    result = run(checkpoint, "--out", tmp_path, "--bars", 3, "--primer", PRIMER, "--continuation-only", "--seed", 2)
    assert result.exit_code == 0, result.output
    (path,) = tmp_path.glob("*.mid")
    assert bars_in(path) == 3  # before the fix: an empty file (its ids lacked the primer's header)
    names = [next(m.name for m in t if m.type == "track_name") for t in mido.MidiFile(path).tracks[1:]]
    assert names == ["acoustic grand piano"] * 2  # the primer's two tracks


def test_a_tempo_midi_cannot_store_is_one_line(tmp_path):
    from melodygen.errors import OutputError
    from melodygen.midi_io import write_score
    from melodygen.notes import Note, Score, TempoMap, Track

    with pytest.raises(OutputError, match="a tempo of 3.2 qpm is slower than a MIDI file can store"):
        write_score(Score([Track("a", 0, False, [Note(60, 80, 0.0, 1.0)])], TempoMap(qpm=(3.2,))), tmp_path / "x.mid")
    assert not (tmp_path / "x.mid").exists()


def test_velocity_bins_must_all_be_used():
    from melodygen.errors import ConfigError

    with pytest.raises(ConfigError, match="give bins that are all used"):
        get_encoding("multitrack", velocity_bins=100)
    assert get_encoding("multitrack", velocity_bins=32).vocab.range("VEL").size == 32


def test_instruments_need_a_multitrack_model(tmp_path):
    melody = write_checkpoint(tmp_path / "m.pt", "lstm", "melody")
    result = run(melody, "--out", tmp_path / "o", "--bars", 2, "--instruments", "piano")
    assert result.exit_code != 0 and "--instruments needs a multitrack model" in result.output


@pytest.mark.slow
def test_prepare_train_sample_render_report_an_arrangement(tmp_path):
    """prepare -> train -> sample --bars --render -> stats -> report for multitrack, through the CLI."""
    import shutil

    from melodygen.config import config_from_dict, save_config

    midi = tmp_path / "midi"
    midi.mkdir()
    for path in sorted(CORPORA["nottingham"].glob("*.mid"))[:12]:
        shutil.copy(path, midi)
    raw = {"data": {"dataset": str(tmp_path / "data")}, "encoding": {"name": "multitrack"},
           "model": {"kind": "lstm", "embed_size": 16, "hidden_size": 24, "num_layers": 1},
           "training": {"batch_size": 4, "seq_len": 64, "max_steps": 6, "eval_every": 3, "eval_max_batches": 2,
                        "log_every": 2, "seed": 7, "threads": 1, "device": "cpu", "warmup_steps": 1}}
    save_config(config_from_dict(raw, "<test>"), tmp_path / "mt.toml")
    run, samples, runner = tmp_path / "run", tmp_path / "samples", CliRunner()
    steps = [["prepare", str(midi), "--encoding", "multitrack", "--out", str(tmp_path / "data"), "--workers", "1",
              "--val-fraction", "0.3"],
             ["train", "--config", str(tmp_path / "mt.toml"), "--out", str(run), "--quiet"],
             ["sample", str(run / "best.pt"), "--out", str(samples), "-n", "2", "--bars", "4", "--primer",
              str(PRIMER), "--seed", "3", "--render"],
             ["stats", str(samples), "--reference", str(midi), "--encoding", "multitrack"],
             ["evaluate", str(run / "best.pt"), "--baseline", "3"],
             ["report", str(run), "--samples", str(samples), "--no-audio"]]
    for args in steps:
        result = runner.invoke(main, args)
        assert result.exit_code == 0, f"{args[0]}: {result.output}"
        if args[0] == "stats":
            assert "empty_bar_rate" in result.output and "groove_consistency" in result.output
    for path in sorted(samples.glob("*.mid")):
        assert bars_in(path) == primer_bars() + 4
        assert len(read_score(path).tracks) == 2  # melody and chords, apart
        assert path.with_suffix(".wav").is_file() and path.with_suffix(".png").is_file()
    assert "Per track (non-drum):" in (run / "report.html").read_text(encoding="utf-8")


def test_a_piece_without_notes_says_so(tmp_path):
    """A model that only writes bar lines gives an empty piece: named, not passed off as music."""
    import torch
    from train_fixtures import untrained_checkpoint

    from melodygen import load
    from melodygen.sampling.files import NO_NOTES

    encoding = get_encoding("multitrack")
    path = untrained_checkpoint(tmp_path / "bars.pt", encoding)
    ckpt = torch.load(path, weights_only=True)
    ckpt["model"]["state_dict"]["head.bias"][encoding.vocab.id_of("BAR")] += 1000.0
    torch.save(ckpt, path)
    pieces = load(path).generate(n=2, bars=3, seed=1)
    assert all(p.score.note_count() == 0 and p.shortfall == NO_NOTES for p in pieces)
