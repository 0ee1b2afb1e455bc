"""Tiny prepared datasets and configs for the training tests, built in code in milliseconds.

The pieces are short random motifs repeated with a little noise (ids of the real melody
encoding), so a small model learns them quickly and a loss curve means something; the folder
has exactly the layout `melodygen prepare` writes and passes `check_dataset`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from melodygen.config import RunConfig, config_from_dict
from melodygen import __version__
from melodygen.dataset.manifest import DATASET_FORMAT, ENCODING, MANIFEST
from melodygen.dataset.shards import write_split
from melodygen.encodings import BOS_ID, EOS_ID, get_encoding


def motif_pieces(encoding, count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    pieces = []
    for _ in range(count):
        motif = rng.integers(3, encoding.vocab.size, size=rng.integers(4, 9))
        piece = np.tile(motif, rng.integers(6, 12))
        noise = rng.random(len(piece)) < 0.05
        piece[noise] = rng.integers(3, encoding.vocab.size, size=int(noise.sum()))
        pieces.append(piece.astype(np.uint16))
    return pieces


def make_dataset(directory: Path, encoding_name: str = "melody", train: int = 40, valid: int = 6,
                 **settings) -> Path:
    """A finished dataset folder of motif pieces for `get_encoding(encoding_name, **settings)`."""
    encoding = get_encoding(encoding_name, **settings)
    splits = {"train": motif_pieces(encoding, train, 1), "valid": motif_pieces(encoding, valid, 2)}
    return write_dataset(directory, encoding, splits)


def write_dataset(directory: Path, encoding, splits: dict[str, list[np.ndarray]]) -> Path:
    """A finished dataset folder of these pieces (ids without BOS/EOS) per split."""
    directory.mkdir(parents=True)
    for split, pieces in splits.items():
        write_split(directory, split, pieces, BOS_ID, EOS_ID)
    enc = encoding.to_dict()
    (directory / ENCODING).write_text(json.dumps(enc))
    manifest = {  # the part of prepare's manifest that readers of a dataset use
        "format": DATASET_FORMAT, "format_version": 1, "melodygen_version": __version__,
        "sources": ["<made in code>"], "encoding": {"name": enc["name"], "settings": enc["settings"]},
        "splits": {split: {"pieces": len(p), "tokens": sum(len(x) + 2 for x in p)}
                   for split, p in splits.items()}}
    (directory / MANIFEST).write_text(json.dumps(manifest))
    return directory


def tiny_config(dataset: Path, **training) -> RunConfig:
    """A config for a model that trains in well under a second on `dataset`."""
    raw = {
        "data": {"dataset": str(dataset)},
        "encoding": {"name": "melody"},
        "model": {"kind": "lstm", "embed_size": 16, "hidden_size": 24, "num_layers": 1,
                  "dropout": 0.1},
        "training": {"batch_size": 4, "seq_len": 16, "max_steps": 12, "lr": 1e-2,
                     "warmup_steps": 2, "eval_every": 4, "eval_max_batches": 2, "log_every": 2,
                     "transpose_range": [-2, 2], "seed": 7, "threads": 1, "device": "cpu",
                     **training},
    }
    return config_from_dict(raw, "<test>")


def untrained_checkpoint(path: Path, encoding, instruments=None) -> Path:
    """A checkpoint of a tiny LSTM with random weights (seed 0) over `encoding`, saved at `path`:
    enough for sampling tests that look at what the grammar lets through, not at the music."""
    import torch

    from melodygen.checkpoint import make_checkpoint, save
    from melodygen.models import build_model, settings_to_dict

    torch.manual_seed(0)
    model = build_model("lstm", {"embed_size": 16, "hidden_size": 24, "num_layers": 1}, encoding.vocab.size)
    return save(make_checkpoint(model_kind="lstm", model_settings=settings_to_dict(model.settings), model=model,
                                encoding=encoding, run_config={}, step=0, best_val_nll=None, instruments=instruments),
                path)
