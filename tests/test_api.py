"""The Python API (`melodygen.load/generate/prepare/train/evaluate`, `Piece`), bundled models by
name, and `melodygen models`: unit tests on a tiny model bundled in a temporary folder, and the
API's doctests on the real bundled models."""

from __future__ import annotations

import doctest
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

import melodygen
from conftest import CORPORA, REPO
from melodygen import api, pretrained
from melodygen.cli import main
from melodygen.errors import CheckpointError
from test_sample_cli import write_checkpoint


@pytest.fixture
def bundled(tmp_path, monkeypatch):
    """A bundled-model folder holding one tiny melody LSTM called "tiny"."""
    write_checkpoint(tmp_path / "tiny.pt", "lstm", "melody")
    (tmp_path / "tiny.md").write_text("# tiny: a test model\n")
    entry = {"name": "tiny", "summary": "a test model", "encoding": "melody", "kind": "lstm", "parameters": 10,
             "license": "MIT", "val_nll": 1.5, "baseline_nll": 2.0}
    (tmp_path / "index.json").write_text(json.dumps({"models": [entry]}))
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path)
    monkeypatch.setattr(pretrained, "INDEX", tmp_path / "index.json")
    return tmp_path


def test_importing_melodygen_loads_neither_torch_nor_the_api():
    code = "import sys, melodygen; print('torch' in sys.modules, 'melodygen.api' in sys.modules, melodygen.load.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False", "melodygen.api"]
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        melodygen.nonsense  # noqa: B018


def test_a_bundled_name_loads_and_generates_reproducibly(bundled):
    model = melodygen.load("tiny")
    first = model.generate(n=2, events=24, seed=3, temperature=0.9)
    again = model.generate(n=2, events=24, seed=3, temperature=0.9)
    assert [p.ids for p in first] == [p.ids for p in again] and all(len(p.ids) == 24 for p in first)
    assert "lstm over the melody encoding" in repr(model)
    assert model.generate(n=1, bars=2, seed=1)[0].ids.__len__() == 32  # 2 bars of 16 steps


def test_piece_saves_converts_and_draws(bundled, tmp_path):
    piece = melodygen.load("tiny").generate(n=1, events=64, seed=2)[0]
    path = piece.save(tmp_path / "out" / "p.mid")
    assert piece.path == path and path.is_file()
    back = melodygen.read_piece(path)
    assert [(n.pitch, round(n.start, 6)) for n in back.notes] == [(n.pitch, round(n.start, 6)) for n in piece.notes]
    pm = piece.to_pretty_midi()
    assert sum(len(i.notes) for i in pm.instruments) == len(piece.notes)
    assert piece.piano_roll(tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert "new events" in repr(piece)


def test_unknown_names_and_bad_requests_are_one_line(bundled, tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint file or bundled model \\(bundled models: tiny\\)"):
        melodygen.load("nope")
    result = CliRunner().invoke(main, ["sample", "nope", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "bundled models: tiny" in result.output and "Traceback" not in result.output


def test_every_checkpoint_command_takes_a_bundled_name(bundled, tmp_path):
    result = CliRunner().invoke(main, ["sample", "tiny", "--out", str(tmp_path / "s"), "-n", "2", "--length", "16"])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "s").glob("*.mid"))) == 2
    data = tmp_path / "data"
    assert CliRunner().invoke(main, ["prepare", str(CORPORA["nottingham"] / "jigs1.mid"), str(CORPORA["nottingham"] / "jigs2.mid"),
                                     "--out", str(data), "--val-fraction", "0.5", "--workers", "1"]).exit_code == 0
    result = CliRunner().invoke(main, ["evaluate", "tiny", "--data", str(data), "--split", "train"])
    assert result.exit_code == 0 and "nats/event" in result.output, result.output


def test_models_lists_and_shows_cards(bundled):
    listed = CliRunner().invoke(main, ["models"])
    assert listed.exit_code == 0 and "tiny" in listed.output and "a test model" in listed.output
    card = CliRunner().invoke(main, ["models", "tiny"])
    assert card.exit_code == 0 and card.output.startswith("# tiny: a test model")
    missing = CliRunner().invoke(main, ["models", "nope"])
    assert missing.exit_code == 1 and "no bundled model named 'nope' (bundled: tiny)" in missing.output


def test_prepare_train_evaluate_through_the_api(tmp_path):
    files = sorted(CORPORA["nottingham"].glob("*.mid"))[:20]
    summary = melodygen.prepare(files, out=tmp_path / "data", val_fraction=0.2, workers=1)
    assert summary.out_dir == tmp_path / "data"
    result = melodygen.train(REPO / "configs" / "debug.toml", out=tmp_path / "run",
                             overrides=[f"data.dataset={json.dumps(str(tmp_path / 'data'))}", "training.max_steps=3"])
    assert result.step == 3 and (tmp_path / "run" / "best.pt").is_file()
    figures = melodygen.evaluate(tmp_path / "run" / "best.pt", baseline=2)
    assert figures["nll"] > 0 and figures["baseline"]["nll"] > 0


@pytest.mark.skipif(not pretrained.bundled_models(), reason="no bundled models in this tree")
def test_the_api_docstrings_run(tmp_path):
    results = doctest.testmod(api, extraglobs={"tmp": tmp_path}, optionflags=doctest.ELLIPSIS)
    assert results.attempted >= 6 and results.failed == 0


def test_evaluating_a_model_trained_on_bundled_corpora_needs_no_data_folder(tmp_path):
    """A bundled model's run config names only bundled corpora: evaluate prepares them (once)."""
    from melodygen.checkpoint import load, save

    path = write_checkpoint(tmp_path / "m.pt", "lstm", "melody")
    ckpt = load(path)
    ckpt["run_config"] = {"data": {"sources": ["bundled:bach-chorales"], "dataset": "", "cache_dir": ""},
                          "encoding": {"name": "melody"}}
    save(ckpt, path)
    figures = melodygen.evaluate(path, baseline=2)
    assert figures["nll"] > 0 and "bach-chorales-melody" in figures["source"]
