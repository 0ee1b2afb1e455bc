"""The report's requested-vs-achieved controls: a steered sample's gallery entry shows, bar by
bar, the chord and note count asked for against those its notes achieved, measured with the
run's encoding; a damaged controls file is skipped and listed, never a traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from melodygen.checkpoint import make_checkpoint, save
from melodygen.cli import main
from melodygen.encodings import get_encoding
from melodygen.encodings.controls import ControlRequest, Steering
from melodygen.midi_io import write_midi, write_score
from melodygen.models import build_model, settings_to_dict
from melodygen.notes import Note, Score, TempoMap, Track
from melodygen.report import build_report

CONTROLS = ["key", "chord", "density"]
METRICS = "step,train_loss,val_nll\n0,4.0,3.9\n100,1.9,2.2\n"


def steered_run(folder: Path) -> Path:
    """A run folder whose best.pt holds a tiny LSTM over the multitrack encoding with controls."""
    folder.mkdir(parents=True)
    (folder / "metrics.csv").write_text(METRICS)
    encoding = get_encoding("multitrack", controls=CONTROLS)
    torch.manual_seed(0)
    model = build_model("lstm", {"embed_size": 8, "hidden_size": 16, "num_layers": 1}, encoding.vocab.size)
    config = {"encoding": {"name": "multitrack", "controls": CONTROLS}, "model": {"kind": "lstm"}}
    save(make_checkpoint(model_kind="lstm", model_settings=settings_to_dict(model.settings), model=model,
                         encoding=encoding, run_config=config, step=100, best_val_nll=2.2, instruments=[0, 73]),
         folder / "best.pt")
    return folder


def melody_run(folder: Path) -> Path:
    """A run folder of a melody model (config.toml only): its encoding measures no controls."""
    folder.mkdir(parents=True)
    (folder / "metrics.csv").write_text(METRICS)
    (folder / "config.toml").write_text('[encoding]\nname = "melody"\n\n[model]\nkind = "lstm"\n')
    return folder


def steered_sample(folder: Path, name: str = "steered_000.mid") -> Path:
    """Two 4/4 bars at 120 qpm (2 s each) asked for as key D, chords "D G", 7 notes per bar:
    bar 1 is D with 7 notes, its melody all on D's tones; bar 2 is C with 9 notes (both off),
    4 of its 6 melody notes on G's tones."""
    folder.mkdir(parents=True, exist_ok=True)
    bars = [([62, 66, 69, 66], [50, 54, 57]), ([67, 71, 72, 74, 76, 79], [48, 52, 55])]
    melody, chords = [], []
    for b, (tune, chord) in enumerate(bars):
        step = 2.0 / len(tune)
        melody += [Note(p, 90, b * 2 + i * step, b * 2 + (i + 1) * step) for i, p in enumerate(tune)]
        chords += [Note(p, 70, b * 2.0, b * 2.0 + 2.0) for p in chord]
    score = Score([Track("melody", 73, False, melody), Track("chords", 0, False, chords)],
                  TempoMap(qpm=(120.0,)), [(0.0, 4, 4)])
    path = write_score(score, folder / name)
    Steering(ControlRequest.parse(key="D", chords="D G", density="7"), 0, 2).save_beside(path)
    return path


def plain_sample(folder: Path, name: str = "plain_000.mid") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    write_midi([Note(60 + k, 80, 0.5 * k, 0.5 * k + 0.5) for k in range(8)], path)
    return path


def articles(html: str) -> dict[str, str]:
    """{sample name: its gallery entry's HTML}."""
    return {m.group(1): m.group(0) for m in re.finditer(r'<article class="sample"><h3>([^<]*)</h3>.*?</article>',
                                                        html, re.S)}


def steering_rows(article: str) -> list[tuple[str, list[str]]]:
    """(row class, cell texts) of each row of the entry's controls table."""
    table = re.search(r'<table class="steering">.*?<tbody>(.*?)</tbody>', article, re.S).group(1)
    return [(m.group(1) or "", re.findall(r"<td[^>]*>([^<]*)</td>", m.group(2)))
            for m in re.finditer(r'<tr(?: class="([^"]*)")?>(.*?)</tr>', table, re.S)]


@pytest.fixture(scope="module")
def steered_page(tmp_path_factory) -> str:
    tmp = tmp_path_factory.mktemp("steered")
    samples = tmp / "samples"
    steered_sample(samples)
    plain_sample(samples)
    report = build_report(steered_run(tmp / "run"), samples=samples, audio=False)
    assert report.samples == 2 and report.skipped == []
    return report.page.read_text(encoding="utf-8")


def test_a_steered_sample_shows_requested_and_achieved_controls_bar_by_bar(steered_page):
    entry = articles(steered_page)["steered_000.mid"]
    assert "Sampled with: key D · chords D G · notes per bar 7 · bars 1-2." in entry
    assert steering_rows(entry) == [("", ["1", "D", "D", "100%", "7", "7"]),
                                    ("off", ["2", "G", "C", "67%", "7", "9"])]
    # the off cells themselves are marked too: the achieved chord and count of bar 2
    assert entry.count('<td class="num off">') == 2
    assert re.search(r"<p>Key: asked D, measured <span( class=\"off\")?>[A-G]", entry)
    assert ("Achieved: notes per bar within 15% of the request in 50% of 2 bars; "
            "chord as asked in 50% of bars, melody on its tones 80%; key ") in entry


def test_a_sample_without_a_controls_file_has_no_controls_table(steered_page):
    entry = articles(steered_page)["plain_000.mid"]
    assert "steering" not in entry and "Sampled with" not in entry
    assert steered_page.count('<div class="steering">') == 1


def test_a_damaged_controls_file_is_skipped_and_listed(tmp_path):
    samples = tmp_path / "samples"
    path = steered_sample(samples)
    path.with_suffix(".controls.json").write_text('{"key": "D", "chords"')
    run = steered_run(tmp_path / "run")
    result = CliRunner().invoke(main, ["report", str(run), "--samples", str(samples), "--no-audio"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert result.stderr.startswith(f"skipped {path.with_suffix('.controls.json')}: not a melodygen controls file")
    html = (run / "report.html").read_text(encoding="utf-8")
    assert "Controls files skipped (not readable): " in html and "Skipped (not readable as MIDI)" not in html
    entry = articles(html)["steered_000.mid"]  # the music itself is still shown
    assert "<table" in entry and "steering" not in entry


def test_a_run_whose_encoding_has_no_controls_gets_a_note_not_a_table(tmp_path):
    samples = tmp_path / "samples"
    steered_sample(samples)
    report = build_report(melody_run(tmp_path / "run"), samples=samples, audio=False)
    entry = articles(report.page.read_text(encoding="utf-8"))["steered_000.mid"]
    assert "Sampled with: key D · chords D G · notes per bar 7 · bars 1-2." in entry
    assert ("controls not measured: the run&#x27;s melody encoding (from config.toml [encoding]) "
            "has no controls to compare with.") in entry
    assert 'class="steering"><thead>' not in entry and report.skipped == []


def test_a_run_with_no_encoding_at_all_gets_a_note(tmp_path):
    samples = tmp_path / "samples"
    steered_sample(samples)
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text(METRICS)
    report = build_report(run, samples=samples, audio=False)
    entry = articles(report.page.read_text(encoding="utf-8"))["steered_000.mid"]
    assert "controls not measured: the run has no checkpoint and no [encoding] in its config." in entry


def test_the_adherence_line_says_when_the_chord_track_is_missing():
    from melodygen.encodings import get_encoding
    from melodygen.notes import Note, Score, TempoMap, Track
    from melodygen.stats.controls import describe_adherence, piece_adherence

    encoding = get_encoding("multitrack", controls=["key", "chord", "density"])
    melody = Track("flute", 73, False, [Note(62 + 2 * (i % 3), 90, i * 0.5, i * 0.5 + 0.5) for i in range(16)])
    chords = Track("piano", 0, False, [Note(p, 70, bar * 2.0, bar * 2.0 + 2) for bar in range(4) for p in (50, 54, 57)])
    asked = ControlRequest.parse(None, "D G", None)
    alone = piece_adherence(encoding, Score([melody], TempoMap(qpm=(120.0,)), [(0.0, 4, 4)]), asked)
    both = piece_adherence(encoding, Score([melody, chords], TempoMap(qpm=(120.0,)), [(0.0, 4, 4)]), asked)
    assert "no chord track" in describe_adherence(alone)
    assert "no chord track" not in describe_adherence(both)
