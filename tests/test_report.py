"""Tests of melodygen.report and `melodygen report`, including the page in headless Chromium."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
import torch
from click.testing import CliRunner

import midi_factory as mf
from browser import chromium, needs_chromium
from conftest import CORPORA
from melodygen.cli import main
from melodygen.dataset.files import read_file
from melodygen.encodings import get_encoding
from melodygen.errors import ReportError, RunFolderError
from melodygen.midi_io import write_midi
from melodygen.notes import Note
from melodygen.report import build_report
from melodygen.report.run import evaluation_figures, read_run
from melodygen.training.rundir import read_metrics

needs_fluidsynth = pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="fluidsynth not installed")

METRICS = """step,train_loss,val_nll,val_ppl,val_acc,lr,tokens_per_s,elapsed_s
0,4.0,3.9,49.4,0.10,0.001,1000,0.5
50,2.5,,,,0.001,20000,30
100,1.9,2.2,9.03,0.45,0.001,21000,61
150,1.5,,,,0.0009,21000,90
200,1.2,2.3,9.97,0.44,0.0008,21000,125
"""
CONFIG = ('[encoding]\nname = "melody"\n\n[model]\nkind = "lstm"\nhidden_size = 256\n\n'
          '[training]\nlr = 0.001\nbetas = [0.9, 0.95]\n')


def make_run(folder: Path, *, config: bool = True) -> Path:
    folder.mkdir(parents=True)
    (folder / "metrics.csv").write_text(METRICS)
    if config:
        (folder / "config.toml").write_text(CONFIG)
    return folder


def make_chord_tunes(folder: Path, count: int) -> Path:
    """`count` tunes of a melody over a chord track (`midi_factory.melody_with_chords_file`)."""
    folder.mkdir(parents=True)
    for i in range(count):
        mf.melody_with_chords_file(folder, f"tune_{i}.mid")
    return folder


def reference_cells(html: str, metric: str) -> tuple[str, str]:
    """(samples mean ± std, reference mean ± std) of `metric` in the page's comparison table."""
    found = re.search(rf'<td title="[^"]*">{metric}</td><td class="num">([^<]*)</td><td class="num">([^<]*)</td>',
                      html)
    assert found, f"no {metric} row"
    return found.group(1), found.group(2)


def make_samples(folder: Path, count: int, *, first_pitch: int = 60) -> Path:
    """`count` short melodies (stepwise up from `first_pitch`, 2 s each) named sample_000.mid ..."""
    folder.mkdir(parents=True)
    for i in range(count):
        notes = [Note(first_pitch + i + k, 70 + 5 * k, 0.25 * k, 0.25 * k + 0.25) for k in range(8)]
        write_midi(notes, folder / f"sample_{i:03d}.mid")
    return folder


class _Links(HTMLParser):
    """Collects img src, audio source src and a href of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.images, self.audio, self.links = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        {"img": self.images, "source": self.audio, "a": self.links}.get(tag, []).append(
            attrs.get("src") or attrs.get("href"))


def page_links(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


# --- the run folder --------------------------------------------------------------------------

def test_metrics_read_with_empty_cells_as_none(tmp_path):
    metrics = read_metrics(make_run(tmp_path / "run") / "metrics.csv")
    assert metrics["step"] == [0, 50, 100, 150, 200]
    assert metrics["val_nll"] == [3.9, None, 2.2, None, 2.3]


def test_bad_metrics_cell_names_file_line_and_column(tmp_path):
    (tmp_path / "metrics.csv").write_text("step,train_loss\n0,1.0\n1,oops\n")
    with pytest.raises(RunFolderError, match=r"metrics.csv: line 3, column train_loss: not a number: 'oops'"):
        read_metrics(tmp_path / "metrics.csv")


def test_evaluation_figures_are_taken_at_the_best_validation_step(tmp_path):
    figures = dict(evaluation_figures(read_metrics(make_run(tmp_path / "run") / "metrics.csv")))
    assert figures["best validation NLL"] == "2.2000 nats/event (step 100)"
    assert figures["perplexity"] == "9.030"
    assert figures["accuracy"] == "45.0 %"
    assert figures["steps"] == "200" and figures["last training loss"] == "1.2000"
    assert figures["training time"] == "2 min 05 s"


def test_perplexity_is_computed_when_the_file_has_no_column(tmp_path):
    (tmp_path / "metrics.csv").write_text("step,val_nll\n10,1.5\n20,1.0\n")
    figures = dict(evaluation_figures(read_metrics(tmp_path / "metrics.csv")))
    assert figures["perplexity"] == f"{math.exp(1.0):.3f}"
    assert "accuracy" not in figures


def test_config_falls_back_to_the_checkpoint(tmp_path):
    run = make_run(tmp_path / "run", config=False)
    torch.save({"format": "melodygen-checkpoint", "run_config": {"model": {"kind": "gru"}}}, run / "best.pt")
    info = read_run(run)
    assert info.config == {"model": {"kind": "gru"}} and info.config_source == "best.pt (run_config)"


@pytest.mark.parametrize("name, content, message", [
    ("best.pt", b"\xb6}\xd1\xc0 random bytes", "best.pt: not a readable checkpoint (not a PyTorch checkpoint file)"),
    ("metrics.csv", b"\xf3\x00\x81", "metrics.csv: not a CSV text file ("),
])
def test_damaged_run_files_are_one_line_naming_the_file(tmp_path, name, content, message):
    run = make_run(tmp_path / "run", config=False)
    (run / name).write_bytes(content)
    result = CliRunner().invoke(main, ["report", str(run), "--no-audio"])
    assert result.exit_code == 1 and len(result.output.splitlines()) == 1
    assert result.output.startswith(f"Error: {run / message}")
    assert "weights_only" not in result.output


def test_a_folder_that_is_not_a_run_is_one_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(main, ["report", str(tmp_path / "empty")])
    assert result.exit_code == 1
    assert "no metrics.csv and no config" in result.output and "Traceback" not in result.output


# --- the page --------------------------------------------------------------------------------

def test_report_without_samples_shows_run_settings_figures_and_curves(tmp_path):
    report = build_report(make_run(tmp_path / "run"))
    assert report.page == tmp_path / "run" / "report.html" and report.assets is None
    html = report.page.read_text(encoding="utf-8")
    for text in ("hidden_size", "256", "0.9, 0.95", "2.2000 nats/event (step 100)", "45.0 %", "--samples DIR"):
        assert text in html, text
    [curves] = page_links(report.page).images
    assert curves.startswith("data:image/png;base64,")


@needs_fluidsynth
def test_report_gallery_links_existing_files_and_compares_with_the_reference(tmp_path):
    run = make_run(tmp_path / "run")
    samples = make_samples(tmp_path / "samples", 2)
    reference = make_samples(tmp_path / "reference", 3, first_pitch=48)
    result = CliRunner().invoke(main, ["report", str(run), "--samples", str(samples),
                                       "--reference", str(reference), "--out", str(tmp_path / "page" / "r.html")])
    assert result.exit_code == 0, result.output
    page = tmp_path / "page" / "r.html"
    assert f"report written to {page}" in result.output
    links = page_links(page)
    # curves, 2 piano rolls, 2 sample structures and 3 reference pieces' structures
    assert len(links.images) == 8 and all(src.startswith("data:image/png;base64,") for src in links.images)
    assert links.audio == ["r_files/sample_000.wav", "r_files/sample_001.wav"]
    for href in links.audio + links.links:
        assert (page.parent / unquote(href)).is_file(), href
    html = page.read_text(encoding="utf-8")
    assert "Samples against the reference set" in html and "3 files" in html
    assert html.count("<article") == 2 and "pitch_class_entropy" in html
    assert html.count('<div class="structure">') == 2  # one per sample card, beside its piano roll
    assert "Structure of reference pieces" in html and html.count('alt="bar self-similarity of') == 5


def test_no_audio_needs_no_fluidsynth(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "")
    result = CliRunner().invoke(main, ["report", str(make_run(tmp_path / "run")), "--no-audio",
                                       "--samples", str(make_samples(tmp_path / "samples", 2))])
    assert result.exit_code == 0, result.output
    page = tmp_path / "run" / "report.html"
    links = page_links(page)
    assert links.audio == [] and len(links.images) == 5 and "<audio" not in page.read_text(encoding="utf-8")
    assert links.links == ["report_files/sample_000.mid", "report_files/sample_001.mid"]
    assert not list((tmp_path / "run" / "report_files").glob("*.wav"))


def test_an_arrangement_sample_gets_a_per_track_table(tmp_path):
    samples = tmp_path / "samples"
    samples.mkdir()
    shutil.copy(CORPORA["bach-chorales"] / "bwv1.6.mid", samples / "chorale.mid")
    write_midi([Note(60, 80, 0.0, 1.0)], samples / "solo.mid")
    result = CliRunner().invoke(main, ["report", str(make_run(tmp_path / "run")), "--no-audio",
                                       "--samples", str(samples)])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert html.count("Per track (non-drum):") == 1  # the chorale, not the one-track file
    for row in ("1: Horn 2", "2: Soprano", "5: Bass"):
        assert f"<td>{row}</td>" in html


def test_unreadable_samples_are_skipped_and_listed(tmp_path):
    samples = make_samples(tmp_path / "samples", 1)
    (samples / "broken.mid").write_bytes(b"MThd\x00")
    result = CliRunner().invoke(main, ["report", str(make_run(tmp_path / "my run")), "--no-audio",
                                                       "--samples", str(samples)])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(f"skipped {samples / 'broken.mid'}: ")
    page = tmp_path / "my run" / "report.html"
    assert "rendered 1 sample(s)" in result.stdout and f"xdg-open '{page}'" in result.stdout
    assert "Skipped (not readable as MIDI)" in page.read_text(encoding="utf-8")


def test_sample_names_that_are_not_utf8_are_linked_as_on_disk(tmp_path):
    samples = make_samples(tmp_path / "samples", 1)
    (samples / "sample_000.mid").rename(samples / os.fsdecode(b"caf\xe9.mid"))
    result = CliRunner().invoke(main, ["report", str(make_run(tmp_path / "run")), "--no-audio",
                                       "--samples", str(samples)])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert 'href="report_files/caf%E9.mid"' in text and "<h3>caf\ufffd.mid</h3>" in text


def test_out_must_be_an_html_page(tmp_path):
    run = make_run(tmp_path / "run")
    (run / "best.pt").write_bytes(b"weights")
    result = CliRunner().invoke(main, ["report", str(run), "--out", str(run / "best.pt"), "--no-audio"])
    assert result.exit_code == 2 and "is not an .html file name" in result.output
    assert (run / "best.pt").read_bytes() == b"weights"


def test_reference_without_samples_is_refused(tmp_path):
    with pytest.raises(ReportError, match="needs --samples"):
        build_report(make_run(tmp_path / "run"), reference=tmp_path)
    with pytest.raises(ReportError, match="--raw-reference needs --reference"):
        build_report(make_run(tmp_path / "run2"), samples=make_samples(tmp_path / "s", 1), raw_reference=True)


# --- the reference set, as the run's encoding sees it ---------------------------------------

def test_reference_chords_are_dropped_through_the_run_encoding_and_kept_raw(tmp_path):
    run, samples = make_run(tmp_path / "run"), make_samples(tmp_path / "samples", 2)
    reference = make_chord_tunes(tmp_path / "folk", 3)
    pages = {}
    for mode, flags in (("encoded", []), ("raw", ["--raw-reference"])):
        out = tmp_path / f"{mode}.html"
        result = CliRunner().invoke(main, ["report", str(run), "--samples", str(samples), "--reference",
                                           str(reference), "--no-audio", "--out", str(out), *flags])
        assert result.exit_code == 0, result.output
        pages[mode] = out.read_text(encoding="utf-8")
        assert ("reference passed through the run's melody encoding" in result.output) == (mode == "encoded")
    longest = max(len(read_file(p, get_encoding("melody")).ids) for p in samples.glob("*.mid"))
    assert ("Reference passed through the run&#x27;s melody encoding (from config.toml [encoding]), "
            f"first {longest} events of each file") in pages["encoded"]
    assert "raw files" not in pages["encoded"]
    assert "Reference measured as raw files, as they are." in pages["raw"]
    assert "passed through" not in pages["raw"]
    assert reference_cells(pages["encoded"], "polyphony") == ("1 ± 0", "1 ± 0")
    assert float(reference_cells(pages["raw"], "polyphony")[1].split(" ± ")[0]) > 3.0


def test_reference_encoding_comes_from_the_checkpoint(tmp_path):
    run, samples = make_run(tmp_path / "run"), make_chord_tunes(tmp_path / "samples", 1)  # as long as the tunes
    encoding = get_encoding("melody", min_pitch=60, max_pitch=71)  # the tunes' top note 72 is folded
    torch.save({"format": "melodygen-checkpoint", "encoding": encoding.to_dict()}, run / "best.pt")
    build_report(run, samples=samples, reference=make_chord_tunes(tmp_path / "folk", 2), audio=False)
    html = (run / "report.html").read_text(encoding="utf-8")
    assert "the run&#x27;s melody encoding (from best.pt)" in html
    assert reference_cells(html, "pitch_range")[1] == "11 ± 0"  # 12 through config.toml's default melody


def test_a_run_without_encoding_needs_raw_reference(tmp_path):
    run = make_run(tmp_path / "run", config=False)
    args = ["report", str(run), "--samples", str(make_samples(tmp_path / "samples", 1)),
            "--reference", str(make_chord_tunes(tmp_path / "folk", 1)), "--no-audio"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and len(result.output.splitlines()) == 1
    assert "no checkpoint and no [encoding]" in result.output and "--raw-reference" in result.output
    assert CliRunner().invoke(main, [*args, "--raw-reference"]).exit_code == 0


# --- in a real browser -----------------------------------------------------------------------

_CHECK_SCRIPT = """<script>
window.addEventListener("load", () => {
  const audios = [...document.querySelectorAll("audio")];
  const loaded = audios.map(a => a.readyState >= 1 ? null : new Promise(done => {
    a.addEventListener("loadedmetadata", done); a.addEventListener("error", done, true); }));
  Promise.all(loaded).then(() => {
    const out = document.createElement("pre");
    out.id = "melodygen-check";
    out.style.whiteSpace = "pre-wrap";
    out.textContent = JSON.stringify({
      images: [...document.images].map(i => ({complete: i.complete, width: i.naturalWidth})),
      audio: audios.map(a => ({canPlay: a.canPlayType("audio/wav"), duration: a.duration,
                               error: a.error && a.error.code})),
    });
    document.body.appendChild(out);
  });
});
</script>"""


@pytest.mark.slow
@needs_chromium
@needs_fluidsynth
def test_page_in_headless_chromium_loads_images_and_playable_audio(tmp_path):
    report = build_report(make_run(tmp_path / "run"), tmp_path / "site" / "report.html",
                          samples=make_samples(tmp_path / "samples", 2))
    # A copy of the page with a script that writes what the browser loaded into the DOM; one
    # Chromium run prints that DOM and takes a screenshot of the page.
    probe = report.page.with_name("probe.html")
    probe.write_text(report.page.read_text(encoding="utf-8").replace("</body>", _CHECK_SCRIPT + "</body>"))
    shot = tmp_path / "report.png"
    dom = chromium(tmp_path, "--virtual-time-budget=10000", "--window-size=1300,2400", f"--screenshot={shot}",
                   "--dump-dom", probe.as_uri()).stdout
    found = re.search(r'<pre id="melodygen-check"[^>]*>(.*?)</pre>', dom, re.S)
    assert found, f"the check script did not run; Chromium printed: {dom[:500]}"
    check = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert len(check["images"]) == 5  # curves, two piano rolls and their bar self-similarity
    assert all(img["complete"] and img["width"] > 0 for img in check["images"]), check["images"]
    assert len(check["audio"]) == 2
    for audio in check["audio"]:  # each sample is 2 s plus the 1 s release tail
        assert audio["error"] is None and audio["canPlay"] in ("maybe", "probably"), audio
        assert audio["duration"] == pytest.approx(3.0, abs=0.05), audio
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


# --- end to end: the newcomer's path -------------------------------------------------------

@pytest.mark.slow
@needs_fluidsynth
def test_train_sample_render_report(tmp_path):
    """train -> sample --render -> report, through the command line, on a tiny model."""
    from train_fixtures import make_dataset, tiny_config

    from melodygen.config import save_config

    save_config(tiny_config(make_dataset(tmp_path / "data")), tmp_path / "tiny.toml")
    run, samples, runner = tmp_path / "run", tmp_path / "samples", CliRunner()
    steps = [["train", "--config", str(tmp_path / "tiny.toml"), "--out", str(run), "--quiet"],
             ["sample", str(run / "best.pt"), "--out", str(samples), "-n", "2", "--length", "48",
              "--seed", "3", "--device", "cpu", "--render"],
             ["report", str(run), "--samples", str(samples)]]
    for args in steps:
        result = runner.invoke(main, args)
        assert result.exit_code == 0, f"{args[0]}: {result.output}"
    page = run / "report.html"
    html = page.read_text(encoding="utf-8")
    assert "best validation NLL" in html and "nats/event" in html and "[model]" in html
    links = page_links(page)
    assert len(links.audio) == 2 and all((page.parent / unquote(src)).is_file() for src in links.audio)
    assert len(links.images) == 5  # curves + two piano rolls + their bar self-similarity
