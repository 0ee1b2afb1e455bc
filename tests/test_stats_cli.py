"""`melodygen stats` through click's CliRunner on a few real files from data/."""

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import midi_factory as mf
from melodygen.cli import main
from melodygen.stats import HISTOGRAM_METRICS, SCALAR_METRICS


def copy_into(folder, paths):
    folder.mkdir()
    for path in paths:
        shutil.copy(path, folder / path.name)
    return folder


@pytest.fixture
def folk_dir(nottingham_files, tmp_path):
    return copy_into(tmp_path / "folk", nottingham_files)


def run(*args):
    return CliRunner().invoke(main, ["stats", *map(str, args)])


def test_table_lists_every_metric(folk_dir, nottingham_files):
    result = run(folk_dir)
    assert result.exit_code == 0, result.output
    assert f"set: {len(nottingham_files)} file(s)" in result.output
    for name in [*SCALAR_METRICS, *HISTOGRAM_METRICS]:
        assert name in result.output


def test_json_shape_with_reference(folk_dir, chorale_files, tmp_path):
    chorales = copy_into(tmp_path / "chorales", chorale_files)
    result = run(folk_dir, "--reference", chorales, "--json", "--workers", 2)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data.keys() == {"set", "reference", "comparison"}
    assert data["set"]["count"] == 5
    assert data["reference"]["count"] == len(chorale_files)
    assert data["comparison"]["scalars"].keys() == SCALAR_METRICS.keys()
    assert data["comparison"]["histograms"].keys() == HISTOGRAM_METRICS.keys()
    for metric in data["comparison"]["scalars"].values():
        assert 0.0 <= metric["overlap"] <= 1.0 + 1e-9 and metric["kl"] >= 0.0
        assert metric["generated"].keys() == metric["reference"].keys() == {"mean", "std"}


def test_reference_table_and_unreadable_file_is_reported(folk_dir, tmp_path):
    (folk_dir / "broken.mid").write_bytes(b"MThd garbage")
    result = run(folk_dir, "--reference", folk_dir)
    assert result.exit_code == 0, result.output
    assert "set: 5 file(s), reference: 5 file(s)" in result.stdout
    assert "overlap" in result.stdout and "KL" in result.stdout
    assert "set: skipped 1 file(s)" in result.stderr
    assert "broken.mid" in result.stderr


def test_files_can_be_named_one_by_one(nottingham_files):
    result = run(*nottingham_files[:2], "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [f["path"] for f in data["set"]["per_file"]] == [str(p) for p in nottingham_files[:2]]


def test_folder_without_readable_midi_is_one_error_line(tmp_path):
    (tmp_path / "a.mid").write_bytes(b"not a midi file")
    result = run(tmp_path)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.output.strip().count("\n") == 0
    assert "no readable MIDI file" in result.output and "a.mid" in result.output


def test_folder_without_midi_files_is_one_error_line(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    result = run(tmp_path)
    assert result.exit_code == 1
    assert "no .mid or .midi files" in result.output and "Traceback" not in result.output


def test_an_empty_reference_fails_before_the_set_is_read(folk_dir, tmp_path, monkeypatch):
    from melodygen import stats

    def read_nothing(*args, **kwargs):
        raise AssertionError("the set was read before the reference was checked")

    monkeypatch.setattr(stats, "describe_set", read_nothing)
    (tmp_path / "empty").mkdir()
    result = run(folk_dir, "--reference", tmp_path / "empty")
    assert result.exit_code == 1
    assert result.output == f"Error: {tmp_path / 'empty'}: no .mid or .midi files in this folder\n"


def test_missing_input_is_one_clear_line(tmp_path):
    result = run(tmp_path / "nowhere")
    assert result.exit_code == 1
    assert result.output == f"Error: {tmp_path / 'nowhere'}: no such file or folder\n"
    mf.simple_file(tmp_path)
    result = run(tmp_path, "--reference", "bundled:folk")  # a bundled corpus is named, not a path
    assert result.exit_code == 1 and "bundled:folk: no such bundled corpus" in result.output


@pytest.mark.slow
def test_temperature_sweep_writes_a_markdown_report(nottingham_files, tmp_path):
    import subprocess
    import sys

    from melodygen.checkpoint import make_checkpoint, save
    from melodygen.encodings import get_encoding
    from melodygen.models import build_model

    encoding, settings = get_encoding("melody"), {"embed_size": 8, "hidden_size": 8, "num_layers": 1}
    model = build_model("lstm", settings, encoding.vocab.size)
    checkpoint = save(make_checkpoint(model_kind="lstm", model_settings=settings, model=model, encoding=encoding,
                                      run_config={}, step=0, best_val_nll=None), tmp_path / "tiny.pt")
    doc = tmp_path / "sweep.md"
    script = Path(__file__).resolve().parents[1] / "scripts" / "temperature_sweep.py"
    command = [sys.executable, str(script), str(checkpoint),
               "--reference", *map(str, nottingham_files), "-n", "2", "--length", "64",
               "--temperatures", "0.5", "1.5", "--samples", str(tmp_path / "samples"), "--doc", str(doc),
               "--device", "cpu"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    text = doc.read_text()
    assert f"{len(nottingham_files)} files (passed through the checkpoint's encoding" in text
    for row in ("| 0.5 |", "| 1.5 |", "| reference |", "| T=1.5 |"):
        assert row in text
    assert len(list((tmp_path / "samples" / "t0.5").glob("sample_*.mid"))) == 2


def test_encoding_measures_files_as_the_encoding_sees_them(tmp_path):
    folder = tmp_path / "folk"
    folder.mkdir()
    mf.melody_with_chords_file(folder)
    raw = json.loads(run(folder, "--json").output)["set"]
    encoded = json.loads(run(folder, "--json", "--encoding", "melody").output)["set"]
    cut = json.loads(run(folder, "--json", "--encoding", "melody", "--max-events", 6).output)["set"]
    assert raw["scalars"]["polyphony"]["mean"] > 3.0 and encoded["scalars"]["polyphony"]["mean"] == 1.0
    assert cut["scalars"]["used_pitches"]["mean"] < encoded["scalars"]["used_pitches"]["mean"] == 8.0


@pytest.mark.parametrize("args, code, message", [
    (["--encoding", "chords"], 2, "'chords' is not one of 'melody', 'multitrack', 'performance'"),
    (["--max-events", "6"], 2, "--max-events counts events of an --encoding; add --encoding NAME"),
])
def test_encoding_options_are_checked(folk_dir, args, code, message):
    result = run(folk_dir, *args)
    assert result.exit_code == code and message in result.output
