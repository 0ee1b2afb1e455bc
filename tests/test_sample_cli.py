"""`melodygen sample` through click's CliRunner on tiny checkpoints of every model kind and encoding."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from melodygen.checkpoint import make_checkpoint, save
from melodygen.cli import main
from melodygen.encodings import ENCODINGS, get_encoding
from melodygen.midi_io import read_score
from melodygen.models import MODELS, build_model, settings_to_dict
from midi_factory import empty_file, simple_file, text_file

TINY = {"transformer": {"d_model": 16, "n_layers": 1, "n_heads": 2, "d_ff": 32, "max_context": 16},
        "cnn": {"embed_size": 8, "channels": 16, "num_layers": 3, "kernel_size": 2, "dilation_cycle": 3},
        "seq2seq": {"d_model": 16, "encoder_layers": 1, "n_layers": 1, "n_heads": 2, "d_ff": 32, "max_context": 16},
        "seq2seq_lstm": {"embed_size": 8, "hidden_size": 16, "n_layers": 1},
        "masked": {"d_model": 16, "n_layers": 1, "n_heads": 2, "d_ff": 32, "max_context": 64}}
TINY_RECURRENT = {"embed_size": 8, "hidden_size": 16, "num_layers": 1}


def write_checkpoint(path: Path, kind: str, encoding_name: str) -> Path:
    torch.manual_seed(0)
    encoding = get_encoding(encoding_name)
    model = build_model(kind, TINY.get(kind, TINY_RECURRENT), encoding.vocab.size)
    ckpt = make_checkpoint(model_kind=kind, model_settings=settings_to_dict(model.settings), model=model,
                           encoding=encoding, run_config={}, step=0, best_val_nll=None)
    return save(ckpt, path)


@pytest.fixture
def melody_ckpt(tmp_path) -> Path:
    return write_checkpoint(tmp_path / "lstm.pt", "lstm", "melody")


def run(*args) -> object:
    return CliRunner().invoke(main, ["sample", *map(str, args)])


def notes_of(path: Path) -> list:
    return sorted((n for t in read_score(path).tracks for n in t.notes), key=lambda n: (n.start, n.pitch))


def test_a_music_transformer_samples_through_the_cli(tmp_path):
    torch.manual_seed(0)
    encoding = get_encoding("melody")
    settings = {**TINY["transformer"], "positions": "relative", "max_relative_distance": 6}
    model = build_model("transformer", settings, encoding.vocab.size)
    ckpt = save(make_checkpoint(model_kind="transformer", model_settings=settings_to_dict(model.settings),
                                model=model, encoding=encoding, run_config={}, step=0, best_val_nll=None),
                tmp_path / "mt.pt")
    result = run(ckpt, "--out", tmp_path / "out", "-n", 2, "--length", 40, "--seed", 3)  # past its context
    assert result.exit_code == 0, result.output
    assert all(read_score(f).note_count() > 0 for f in (tmp_path / "out").glob("*.mid"))


@pytest.mark.parametrize("encoding_name", sorted(ENCODINGS))
@pytest.mark.parametrize("kind", sorted(k for k, e in MODELS.items() if not e.model_type.fills_blanks))
def test_every_kind_and_encoding_writes_midi(tmp_path, kind, encoding_name):
    ckpt = write_checkpoint(tmp_path / "m.pt", kind, encoding_name)
    out = tmp_path / "out"
    multitrack = ENCODINGS[encoding_name].keeps_instruments
    instrument = ("--instruments", "violin,drums") if multitrack else ("--program", 40)
    result = run(ckpt, "--out", out, "-n", 2, "--length", 120 if multitrack else 40, "--seed", 5,
                 "--temperature", 0.9, "--top-k", 30, "--top-p", 0.95, *instrument, "--tempo", 100)
    assert result.exit_code == 0, result.output
    files = sorted(out.iterdir())
    assert [f.name for f in files] == ["sample_000.mid", "sample_001.mid"]
    for f in files:
        score = read_score(f, include_drums=True)  # a valid MIDI file
        assert score.tempo_map.qpm[0] == pytest.approx(100, abs=0.01)
        if multitrack:  # tracks with notes, each its own instrument
            assert {(t.name, t.program, t.is_drum) for t in score.tracks} <= {("violin", 40, False), ("drums", 0, True)}
        else:
            assert all(t.program == 40 and t.name.startswith(f"melodygen {encoding_name}") for t in score.tracks)
        assert f.name in result.output
    assert sum(read_score(f, include_drums=True).note_count() for f in files) > 0
    assert "file" in result.output and "events" in result.output
    assert f"to {out}" in result.output


def test_seed_reproduces_files_bit_for_bit(tmp_path, melody_ckpt):
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        assert run(melody_ckpt, "--out", tmp_path / name, "-n", 3, "--length", 64, "--seed", seed).exit_code == 0
    files = {d: [(tmp_path / d / f"sample_{i:03d}.mid").read_bytes() for i in range(3)] for d in "abc"}
    assert files["a"] == files["b"]
    assert files["a"] != files["c"]
    assert len(set(files["a"])) == 3  # the rows of one batch differ


def test_never_overwrites_without_the_flag(tmp_path, melody_ckpt):
    out = tmp_path / "out"
    assert run(melody_ckpt, "--out", out, "--seed", 1, "--name", "tune").exit_code == 0
    before = (out / "tune_000.mid").read_bytes()
    result = run(melody_ckpt, "--out", out, "--seed", 2, "--name", "tune")
    assert result.exit_code == 1
    assert "tune_000.mid: already exists" in result.output and "Traceback" not in result.output
    assert (out / "tune_000.mid").read_bytes() == before
    assert run(melody_ckpt, "--out", out, "--seed", 2, "--name", "tune", "--overwrite").exit_code == 0


# The primer's length in seconds as its ids lay it out: the melody grid has 32 steps of notes plus
# a NOTE_OFF step (0.125 s each at 120 qpm); performance time is the notes' own 4 s.
@pytest.mark.parametrize("encoding_name, primer_seconds", [("melody", 33 * 0.125), ("performance", 4.0)])
def test_primer_then_continuation(tmp_path, encoding_name, primer_seconds):
    ckpt = write_checkpoint(tmp_path / "m.pt", "lstm", encoding_name)
    primer = simple_file(tmp_path)  # 8 quarter notes at 120 qpm, 60..72
    full, cont = tmp_path / "full", tmp_path / "cont"
    assert run(ckpt, "--out", full, "--primer", primer, "--length", 48, "--seed", 3).exit_code == 0
    result = run(ckpt, "--out", cont, "--primer", primer, "--length", 48, "--seed", 3, "--continuation-only")
    assert result.exit_code == 0, result.output
    primer_notes, full_notes = notes_of(primer), notes_of(full / "sample_000.mid")
    assert [(n.pitch, n.start, n.end) for n in full_notes[:8]] == \
        [(n.pitch, pytest.approx(n.start), pytest.approx(n.end)) for n in primer_notes]
    # The continuation-only file holds what follows the primer, shifted to time 0.
    later = [(n.pitch, round(n.start - primer_seconds, 3), round(n.end - primer_seconds, 3))
             for n in full_notes[8:]]
    cont_notes = [(n.pitch, round(n.start, 3), round(n.end, 3)) for n in notes_of(cont / "sample_000.mid")]
    assert cont_notes and cont_notes == later


def test_seconds_and_bars_bound_the_duration(tmp_path):
    perf = write_checkpoint(tmp_path / "p.pt", "gru", "performance")
    assert run(perf, "--out", tmp_path / "p", "-n", 4, "--seconds", 2, "--seed", 1).exit_code == 0
    for f in (tmp_path / "p").iterdir():
        assert max((n.end for n in notes_of(f)), default=0) <= 3.0  # the last shift may pass 2 s by < 1 s
    mel = write_checkpoint(tmp_path / "m.pt", "rnn", "melody")
    result = run(mel, "--out", tmp_path / "m", "--bars", 2, "--tempo", 60, "--seed", 1)
    assert result.exit_code == 0
    assert max((n.end for n in notes_of(tmp_path / "m" / "sample_000.mid")), default=0) <= 8.0 + 1e-6


@pytest.mark.parametrize("args, message", [
    (["--temperature", 0], "--temperature"),
    (["--temperature", -1], "--temperature"),
    (["--top-p", 0], "--top-p"),
    (["--top-p", 1.5], "--top-p"),
    (["--length", 10, "--seconds", 3], "at most one of"),
    (["--continuation-only"], "needs --primer"),
    (["--seed", 2**64], "--seed"),  # torch's manual_seed overflowed: a traceback
    # nan passes click's range comparisons and inf its open upper ends: NaN probabilities, or
    # a ValueError/OverflowError traceback turning the length into a number of events
    (["--temperature", "nan"], "--temperature"),
    (["--temperature", "inf"], "--temperature"),
    (["--top-p", "nan"], "--top-p"),
    (["--seconds", "inf"], "--seconds"),
    (["--seconds", "nan"], "--seconds"),
    (["--bars", "inf"], "--bars"),
    (["--tempo", "nan", "--bars", 2], "--tempo"),
])
def test_bad_options_are_usage_errors(tmp_path, melody_ckpt, args, message):
    result = run(melody_ckpt, "--out", tmp_path / "o", *args)
    assert result.exit_code == 2 and message in result.output


def test_bad_inputs_are_one_line_errors(tmp_path, melody_ckpt):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    other = torch.load(melody_ckpt, weights_only=True)
    other["format_version"] = 99
    future = save(other, tmp_path / "future.pt")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cases = [
        ([tmp_path / "missing.pt", "--out", tmp_path / "o"], "missing.pt"),
        ([corrupt, "--out", tmp_path / "o"], "corrupt.pt"),
        ([future, "--out", tmp_path / "o"], "future.pt"),
        ([melody_ckpt, "--out", tmp_path / "o", "--primer", text_file(tmp_path)], ".mid"),
        ([melody_ckpt, "--out", tmp_path / "o", "--primer", empty_file(tmp_path)], "empty.mid"),
        ([melody_ckpt, "--out", blocker / "sub"], "file/sub"),
    ]
    for args, name in cases:
        result = run(*args)
        assert result.exit_code == 1, (args, result.output)
        assert "Traceback" not in result.output and name in result.output
        assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()  # nothing is created when the inputs are bad
    primer = empty_file(tmp_path)
    result = run(melody_ckpt, "--out", tmp_path / "o", "--primer", primer)
    assert result.output == f"Error: {primer}: no usable primer (no notes)\n"  # the file named once


def ending_checkpoint(path: Path, encoding_name: str, bias: dict[int, float]) -> Path:
    """A tiny LSTM checkpoint whose head favours the ids in `bias` (EOS: a model that ends
    every piece at once, as a trained one does after a complete tune given as primer)."""
    torch.manual_seed(0)
    encoding = get_encoding(encoding_name)
    model = build_model("lstm", TINY_RECURRENT, encoding.vocab.size)
    with torch.no_grad():
        for i, value in bias.items():
            model.head.bias[i] = value
    return save(make_checkpoint(model_kind="lstm", model_settings=settings_to_dict(model.settings),
                                model=model, encoding=encoding, run_config={}, step=0,
                                best_val_nll=None), path)


def test_a_primer_the_model_ends_still_gets_the_length_asked_for(tmp_path):
    from melodygen.encodings import EOS_ID

    ckpt = ending_checkpoint(tmp_path / "eos.pt", "melody", {EOS_ID: 30.0})
    primer = simple_file(tmp_path)
    result = run(ckpt, "--out", tmp_path / "a", "-n", 3, "--primer", primer, "--length", 50)
    assert result.exit_code == 0, result.output
    assert result.output.count("  50\n") == 3  # the events column: 50 new events each
    assert "ended" not in result.output
    result = run(ckpt, "--out", tmp_path / "b", "--primer", primer, "--bars", 2, "--tempo", 120)
    assert result.output.count("  32\n") == 1  # 2 bars of 16th-note steps


def test_early_end_allowed_or_no_length_says_why_a_piece_is_short(tmp_path):
    from melodygen.encodings import EOS_ID

    ckpt = ending_checkpoint(tmp_path / "eos.pt", "melody", {EOS_ID: 30.0})
    primer = simple_file(tmp_path)
    result = run(ckpt, "--out", tmp_path / "a", "-n", 2, "--primer", primer, "--length", 50,
                 "--allow-early-end")
    assert result.exit_code == 0, result.output
    for name in ("sample_000.mid", "sample_001.mid"):
        assert (f"{name}: 0 of 50 new events: the model ended the piece (--allow-early-end)"
                in result.output)
    result = run(ckpt, "--out", tmp_path / "b", "--primer", primer)
    assert ("sample_000.mid: no new music: the model ended the piece at once; ask for a length"
            in result.output)


def test_seconds_cut_short_by_the_event_cap_say_so(tmp_path):
    """A performance model that never moves time forward fills the safety cap of events."""
    velocity = get_encoding("performance").vocab.offset("VELOCITY")  # never moves time, always allowed
    ckpt = ending_checkpoint(tmp_path / "stuck.pt", "performance", {velocity: 30.0})
    result = run(ckpt, "--out", tmp_path / "a", "--seconds", 1)
    assert result.exit_code == 0, result.output
    assert ("sample_000.mid: 0.0 of 1.0 s of new music: the safety cap of 200 events was reached"
            in result.output)


def test_beam_search_writes_the_most_likely_pieces_with_their_log_likelihood(tmp_path, melody_ckpt):
    result = run(melody_ckpt, "--out", tmp_path / "a", "--beam", 4, "--branch", 3, "--beam-steps", 4,
                 "-n", 2, "--length", 24, "--seed", 1)
    assert result.exit_code == 0, result.output
    header, first, second = result.output.splitlines()[:3]
    assert header.split()[-1] == "log-likelihood"
    assert float(first.split()[-1]) >= float(second.split()[-1])  # best first
    assert first.split()[4] == "24"  # every piece runs its length


@pytest.mark.parametrize("args, message", [
    (["--beam", 2, "-n", 3], "-n 3 is more than the --beam 2 sequences"),
    (["--beam", 2, "--allow-early-end", "--length", 8], "--allow-early-end does not apply"),
    (["--branch", 4], "--branch and --beam-steps set up beam search: add --beam N"),
])
def test_beam_usage_errors(tmp_path, melody_ckpt, args, message):
    result = run(melody_ckpt, "--out", tmp_path / "a", *args)
    assert result.exit_code == 2 and message in result.output


def test_beam_search_needs_a_length_in_events(tmp_path):
    ckpt = write_checkpoint(tmp_path / "p.pt", "lstm", "performance")
    result = run(ckpt, "--out", tmp_path / "a", "--beam", 2, "--seconds", 2)
    assert result.exit_code == 1
    assert "beam search runs every sequence to a length in events" in result.output
    assert not (tmp_path / "a").exists()  # refused before any output folder is made


def test_beam_returns_as_many_distinct_pieces_as_asked(tmp_path, melody_ckpt):
    """Each output is the best branch of a different kept sequence, also with one branch each
    and when the length ends before the first pruning."""
    for extra in (["--branch", 1], ["--branch", 2, "--beam-steps", 16]):
        out = tmp_path / "-".join(map(str, extra))
        result = run(melody_ckpt, "--out", out, "--beam", 6, "-n", 6, "--length", 10, "--seed", 2, *extra)
        assert result.exit_code == 0, result.output
        assert len(list(out.glob("*.mid"))) == 6
