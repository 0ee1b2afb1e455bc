"""`melodygen evaluate`: how well a checkpoint predicts held-out music, on a prepared dataset's
split or on MIDI files, with the n-gram baseline beside it on the same windows (see `metrics`
for the figures and `baseline` for the n-gram).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from melodygen.encodings.vocab import BOS_ID, EOS_ID
from melodygen.errors import CheckpointError, ConfigError, DatasetError
from melodygen.metrics import score_ids


def encode_midi_files(sources, encoding) -> tuple[np.ndarray, list[str]]:
    """(`BOS ids EOS` of every usable MIDI file under `sources`, concatenated; skipped files with
    their reasons). `DatasetError` when no file is usable."""
    from melodygen.dataset.files import read_files
    from melodygen.dataset.sources import find_midi_files

    pieces, skipped = [], []
    for read in read_files(find_midi_files(sources), encoding, workers=1, progress=False):
        if read.skipped:
            skipped.append(read.message(f"nothing to score in the {encoding.name} encoding"))
        else:
            pieces.append(np.concatenate([[BOS_ID], read.ids, [EOS_ID]]).astype(np.int64))
    if not pieces:
        raise DatasetError(f"none of the MIDI files given is usable: {skipped[0] if skipped else ''}")
    return np.concatenate(pieces), skipped


def default_seq_len(model, ckpt: dict) -> int:
    """The training window length stored in the checkpoint (else 256), within the model's context."""
    seq_len = int(ckpt.get("run_config", {}).get("training", {}).get("seq_len", 256))
    return min(seq_len, model.max_context) if model.max_context else seq_len


def evaluate_checkpoint(checkpoint, *, data_dir=None, sources=(), split: str = "valid",
                        seq_len: int | None = None, batch_size: int = 32, device="auto",
                        baseline_order: int | None = None) -> dict:
    """Figures of a checkpoint on a prepared dataset split or on MIDI files, plus `seq_len`,
    `source` (what was scored) and `skipped` (unusable MIDI files). With neither `data_dir`
    nor `sources`, the dataset the checkpoint was trained on (its run config's `data.dataset`).
    `baseline_order` adds `baseline`: that n-gram's figures on the same dataset and windows."""
    from melodygen.baseline import evaluate_baseline
    from melodygen.checkpoint import DAMAGED_LOGITS, load_for_inference
    from melodygen.dataset.manifest import check_dataset
    from melodygen.dataset.shards import split_ids
    from melodygen.devices import resolve_device

    if baseline_order is not None and sources:
        raise ConfigError("--baseline needs a prepared dataset (--data DIR): it counts the train split")
    device = resolve_device(device)
    model, encoding, ckpt = load_for_inference(checkpoint, device)
    skipped = []
    if sources:
        ids, skipped = encode_midi_files(sources, encoding)
        source = f"{len(sources)} MIDI source(s)"
    else:
        data_dir = data_dir or _training_dataset(ckpt, checkpoint, encoding)
        check_dataset(data_dir, encoding.to_dict())
        ids, source = split_ids(data_dir, split), f"{data_dir} ({split} split)"
    seq_len = seq_len or default_seq_len(model, ckpt)
    figures = score_ids(model, ids, seq_len=seq_len, batch_size=batch_size, device=device)
    if not math.isfinite(figures["nll"]):  # NaN weights were refused on loading; these overflow
        raise CheckpointError(f"{checkpoint}: {DAMAGED_LOGITS}")
    result = {**figures, "seq_len": seq_len, "source": source, "skipped": skipped}
    if baseline_order is not None:
        result["baseline"] = evaluate_baseline(data_dir, order=baseline_order, split=split,
                                               seq_len=seq_len, batch_size=batch_size)
    return result


def _training_dataset(ckpt: dict, checkpoint, encoding) -> str:
    """The dataset the checkpoint's run trained on (its bundled corpora prepared first, for a
    bundled model); one clear line when there is none."""
    from melodygen.config import config_from_dict
    from melodygen.dataset.runs import run_dataset_dir

    run_config = ckpt.get("run_config") or {}
    if not (run_config.get("data") or {}).get("dataset") and not (run_config.get("data") or {}).get("sources"):
        raise ConfigError(f"{checkpoint} records no dataset; give --data DIR or MIDI files to score")
    dataset = run_dataset_dir(config_from_dict(run_config, str(checkpoint)), encoding)
    if not Path(dataset).is_dir():
        raise DatasetError(f"{dataset}: the dataset {checkpoint} was trained on is gone; give --data DIR "
                           "or MIDI files to score")
    return str(dataset)
