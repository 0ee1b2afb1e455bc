"""`melodygen prepare` through click: output, reuse message, and one-line errors for bad input."""

import json
import shutil

import midi_factory as mf
import pytest
from click.testing import CliRunner

from melodygen.cli import main


@pytest.fixture
def src(tmp_path, nottingham_files):
    folder = tmp_path / "tunes"
    folder.mkdir()
    for f in nottingham_files:
        shutil.copy(f, folder / f.name)
    mf.random_bytes_file(folder)
    return folder


def _run(*args):
    return CliRunner().invoke(main, ["prepare", *map(str, args)])


def test_prepare_prints_summary_then_reuses(src, tmp_path):
    out = tmp_path / "ds"
    first = _run(src, "--out", out, "--workers", "1")
    assert first.exit_code == 0, first.output
    assert "5 used, 1 skipped (unreadable: 1)" in first.output and f"dataset: {out}" in first.output
    assert (out / "manifest.json").is_file() and (out / "train.bin").is_file()
    second = _run(src, "--out", out, "--workers", "1")
    assert second.exit_code == 0 and "reusing" in second.output
    forced = _run(src, "--out", out, "--workers", "1", "--force")
    assert forced.exit_code == 0 and "reusing" not in forced.output


def test_default_out_is_named_after_source_and_encoding(src, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _run(src, "--encoding", "performance", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "data" / "tunes-performance" / "manifest.json").is_file()


@pytest.mark.parametrize("case,needle", [
    ("missing", "nowhere: no such file or folder"),
    ("empty", "no .mid or .midi files"),
    ("junk_only", "no usable MIDI"),
    ("encoding", "'chiptune' is not one of 'melody', 'multitrack', 'performance'"),
    ("unwritable", "cannot write there"),
    ("not_a_dataset", "is not a melodygen dataset"),
    ("val_fraction", "Invalid value for '--val-fraction'"),
    ("val_fraction_nan", "Invalid value for '--val-fraction'"),  # nan passed the range check
])
def test_bad_input_is_one_clear_line(src, tmp_path, case, needle):
    out = tmp_path / "ds"
    args = {
        "missing": [tmp_path / "nowhere", "--out", out],
        "empty": [tmp_path / "empty", "--out", out],
        "junk_only": [tmp_path / "junk", "--out", out],
        "encoding": [src, "--encoding", "chiptune", "--out", out],
        "unwritable": [src, "--out", tmp_path / "afile" / "ds"],
        "not_a_dataset": [src, "--out", tmp_path / "mine"],
        "val_fraction": [src, "--out", out, "--val-fraction", "1.5"],
        "val_fraction_nan": [src, "--out", out, "--val-fraction", "nan"],
    }[case]
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk").mkdir()
    mf.text_file(tmp_path / "junk")
    (tmp_path / "afile").write_text("a file, not a folder")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    result = _run(*args, "--workers", "1")
    assert result.exit_code != 0
    assert needle in result.output and "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("Error")]) == 1
    assert not out.exists() and (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_encoding_settings_are_set_like_train_overrides(tmp_path, nottingham_files):
    src = tmp_path / "src"
    src.mkdir()
    for f in nottingham_files:
        (src / f.name).write_bytes(f.read_bytes())
    result = _run(src, "--out", tmp_path / "ds", "--set", "encoding.min_pitch=40", "--set", "max_pitch=90",
                  "--workers", "1")
    assert result.exit_code == 0, result.output
    stored = json.loads((tmp_path / "ds" / "encoding.json").read_text())
    assert stored["settings"]["min_pitch"] == 40 and stored["settings"]["max_pitch"] == 90
    result = _run(src, "--out", tmp_path / "ds2", "--set", "encoding.min_pich=40", "--set", "max_pitch=x")
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert "'min_pich' (did you mean 'min_pitch'?)" in result.output and "max_pitch='x' must be int" in result.output
