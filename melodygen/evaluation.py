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
from melodygen.metrics import IdStream, evaluate_nll, scoring_batches


def encode_midi_files(sources, encoding) -> tuple[list[tuple[str, np.ndarray]], list[str]]:
    """((path, ids) of every usable MIDI file under `sources`; skipped files with their reasons).
    `DatasetError` when no file is usable."""
    from melodygen.dataset.files import read_files
    from melodygen.dataset.sources import find_midi_files

    pieces, skipped = [], []
    for read in read_files(find_midi_files(sources), encoding, workers=1, progress=False):
        if read.skipped:
            skipped.append(read.message(f"nothing to score in the {encoding.name} encoding"))
        else:
            pieces.append((read.path, read.ids.astype(np.int64)))
    if not pieces:
        raise DatasetError(f"none of the MIDI files given is usable: {skipped[0] if skipped else ''}")
    return pieces, skipped


def default_seq_len(model, ckpt: dict) -> int:
    """The training window length stored in the checkpoint (else 256), within the model's context."""
    seq_len = int(ckpt.get("run_config", {}).get("training", {}).get("seq_len", 256))
    return min(seq_len, model.max_context) if model.max_context else seq_len


def evaluate_checkpoint(checkpoint, *, data_dir=None, sources=(), split: str = "valid",
                        seq_len: int | None = None, batch_size: int = 32, device="auto",
                        baseline_order: int | None = None, fit_velocities: bool = False) -> dict:
    """Figures of a checkpoint on a prepared dataset split or on MIDI files, plus `seq_len`,
    `source` (what was scored) and `skipped` (unusable MIDI files). With neither `data_dir`
    nor `sources`, the dataset the checkpoint was trained on (its run config's `data.dataset`).
    `baseline_order` adds `baseline`: that n-gram's figures on the same dataset and windows.
    Where what the model saw in training is known (`dataset.profile`): `unseen` (the scored
    ids it never saw, `Unseen.to_dict`, with each MIDI file's under `files`) and
    `input_warning` (the line, or None); `fit_velocities` first maps each velocity id it never
    saw to the nearest it saw, counted in `fitted`."""
    from melodygen.baseline import evaluate_baseline
    from melodygen.checkpoint import DAMAGED_LOGITS, load_for_inference
    from melodygen.dataset.manifest import check_dataset
    from melodygen.dataset.profile import checkpoint_profile
    from melodygen.dataset.profile import fit_velocities as fit_to_profile
    from melodygen.dataset.shards import split_ids
    from melodygen.devices import resolve_device

    if baseline_order is not None and sources:
        raise ConfigError("--baseline needs a prepared dataset (--data DIR): it counts the train split")
    device = resolve_device(device)
    model, encoding, ckpt = load_for_inference(checkpoint, device)
    if baseline_order is not None and model.fills_blanks:
        raise ConfigError("--baseline: an n-gram predicts the next id, a masked model erased cells; their NLLs "
                          "do not compare (scripts/infill_table.py compares infilling)")
    skipped, pieces = [], []
    if sources:
        pieces, skipped = encode_midi_files(sources, encoding)
        ids, source = _joined([p for _, p in pieces]), f"{len(sources)} MIDI source(s)"
    else:
        data_dir = data_dir or _training_dataset(ckpt, checkpoint, encoding)
        check_dataset(data_dir, encoding.to_dict())
        ids, source = split_ids(data_dir, split), f"{data_dir} ({split} split)"
    profile = checkpoint_profile(ckpt, encoding, str(checkpoint))
    fitted = 0
    if fit_velocities and profile is not None:
        ids, fitted = fit_to_profile(ids, encoding, profile)

    seq_len = seq_len or default_seq_len(model, ckpt)
    figures = _scored(model, encoding, ckpt, ids, seq_len, batch_size, device)
    if not math.isfinite(figures["nll"]):  # NaN weights were refused on loading; these overflow
        raise CheckpointError(f"{checkpoint}: {DAMAGED_LOGITS}")
    result = {**figures, "seq_len": seq_len, "source": source, "skipped": skipped}
    if profile is not None:
        result.update(_unseen(ids, pieces, encoding, profile, source, fit_velocities), fitted=fitted)
    if baseline_order is not None:
        result["baseline"] = evaluate_baseline(data_dir, order=baseline_order, split=split,
                                               seq_len=seq_len, batch_size=batch_size)
    return result


def _scored(model, encoding, ckpt: dict, ids: np.ndarray, seq_len: int, batch_size: int, device) -> dict:
    """`metrics` figures of the model on the pieces `ids`, windowed as its validation windows them
    (`metrics.scoring_batches`)."""
    given = int(ckpt.get("run_config", {}).get("training", {}).get("given_tracks", 1))
    batches = scoring_batches(model, encoding, IdStream(np.asarray(ids, dtype=np.int64)), seq_len, batch_size, given)
    return evaluate_nll(model, batches, device)


def _joined(pieces: list[np.ndarray]) -> np.ndarray:
    """Pieces as one stream, each as `BOS ids EOS`."""
    return np.concatenate([np.concatenate([[BOS_ID], p, [EOS_ID]]) for p in pieces]).astype(np.int64)


def _unseen(ids: np.ndarray, pieces: list, encoding, profile, source: str, fitted: bool) -> dict:
    """`unseen` (the figures of `dataset.profile.unseen_ids`; per MIDI file under `files`) and
    `input_warning` of the scored `ids` (`pieces`' joined, or a split's)."""
    from melodygen.dataset.profile import WARN_SHARE, unseen_ids

    unseen = unseen_ids(ids, encoding, profile)
    figures, what, far = unseen.to_dict(), source, unseen.far
    if pieces:  # a line for the set when it, or any one file, is far from what the model saw
        ends = np.cumsum([len(p) + 2 for _, p in pieces])[:-1]
        files = [unseen_ids(part, encoding, profile) for part in np.split(ids, ends)]
        figures["files"] = [{"path": path, **f.to_dict()} for (path, _), f in zip(pieces, files)]
        count = sum(f.far for f in files)
        what = (Path(pieces[0][0]).name if len(pieces) == 1 else
                f"these {len(pieces)} MIDI files ({count} at {WARN_SHARE:.0%} or more)")
        far = far or count > 0
    return {"unseen": figures, "input_warning": unseen.describe(what, hint=not fitted) if far else None}


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
