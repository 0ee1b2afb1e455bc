"""Paths stored in a checkpoint are never written to: the training data a command prepares for
a checkpoint (the copy check of `sample`, `evaluate` with no --data) goes into the user's cache."""

import os
from pathlib import Path

import torch
from click.testing import CliRunner

from melodygen.checkpoint import make_checkpoint, save
from melodygen.cli import main
from melodygen.encodings import get_encoding
from melodygen.models import build_model

SETTINGS = {"embed_size": 8, "hidden_size": 8, "num_layers": 1}


def checkpoint_choosing(path: Path, cache_dir: Path) -> Path:
    """A checkpoint trained on a bundled corpus whose run config names `cache_dir` as its cache."""
    encoding = get_encoding("melody")
    model = build_model("lstm", SETTINGS, encoding.vocab.size)
    run_config = {"data": {"sources": ["bundled:bach-chorales"], "dataset": "", "cache_dir": str(cache_dir)},
                  "encoding": {"name": "melody"}, "training": {"seq_len": 32}}
    return save(make_checkpoint(model_kind="lstm", model_settings=SETTINGS, model=model, encoding=encoding,
                                run_config=run_config, step=0, best_val_nll=None), path)


def user_cache() -> Path:
    return Path(os.environ["XDG_CACHE_HOME"]) / "melodygen" / "datasets"  # a temporary folder (conftest)


def test_sample_and_evaluate_prepare_a_checkpoints_data_in_the_users_cache_only(tmp_path):
    # `sample`'s copy check prepared the corpus into the folder the checkpoint's config chose.
    chosen = tmp_path / "chosen" / "by" / "the" / "file"
    ckpt = checkpoint_choosing(tmp_path / "m.pt", chosen)
    sampled = CliRunner().invoke(main, ["sample", str(ckpt), "--out", str(tmp_path / "s"), "--length", "16",
                                        "--seed", "0", "--device", "cpu"])
    assert sampled.exit_code == 0, sampled.output
    evaluated = CliRunner().invoke(main, ["evaluate", str(ckpt), "--device", "cpu", "--batch-size", "64"])
    assert evaluated.exit_code == 0, evaluated.output
    assert not (tmp_path / "chosen").exists()
    assert f"on {user_cache()}/bach-chorales-melody-" in evaluated.output
    assert "copy check skipped" not in sampled.output


def test_a_dataset_already_where_the_checkpoint_says_is_read_there(tmp_path):
    from melodygen.config import config_from_dict
    from melodygen.dataset.runs import prepared_dir, run_dataset_dir

    ckpt = checkpoint_choosing(tmp_path / "m.pt", tmp_path / "cache")
    config = config_from_dict({"data": {"sources": ["bundled:bach-chorales"], "cache_dir": str(tmp_path / "cache")},
                               "encoding": {"name": "melody"}}, str(ckpt))
    there = prepared_dir(config, get_encoding("melody"))
    in_user_cache = run_dataset_dir(config, get_encoding("melody"))  # prepared or reused there
    there.parent.mkdir()
    os.symlink(in_user_cache, there)  # as if the run that wrote the checkpoint had prepared it here
    assert run_dataset_dir(config, get_encoding("melody")) == there


def test_the_copy_check_builds_a_missing_index_in_memory_not_in_the_checkpoints_dataset(tmp_path, chorale_files):
    from melodygen.dataset.copies import COPY_INDEX
    from melodygen.dataset.prepare import prepare

    dataset = tmp_path / "their_data"
    prepare(chorale_files, get_encoding("melody"), dataset, workers=1, progress=False)
    (dataset / COPY_INDEX).unlink()  # as a dataset from before the copy index has none
    ckpt = checkpoint_choosing(tmp_path / "m.pt", tmp_path / "cache")
    stored = torch.load(ckpt, weights_only=True)
    stored["run_config"]["data"]["dataset"] = str(dataset)
    save(stored, ckpt)
    before = sorted(p.name for p in dataset.iterdir())
    sampled = CliRunner().invoke(main, ["sample", str(ckpt), "--out", str(tmp_path / "s"), "--length", "16",
                                        "--seed", "0", "--device", "cpu", "--max-copy-bars", "0"])
    assert sampled.exit_code == 0, sampled.output
    assert "copy check skipped" not in sampled.output
    assert sorted(p.name for p in dataset.iterdir()) == before
