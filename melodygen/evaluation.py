"""How well a model predicts held-out music: NLL, perplexity, accuracy; and an n-gram baseline.

`evaluate_nll(model, windows, device)` is THE validation metric: `melodygen train` calls its
`nll_sums` at every validation (adding them up over the ranks) and `melodygen evaluate` /
`melodygen baseline` call it, so the figures are the same everywhere. `windows` is any iterable of `(x, y)` LongTensor pairs of shape
(B, T) with `y` the next ids of `x` (e.g. `dataset.iter_sequential_windows`); targets equal to
PAD are not scored. `model` is anything mapping ids (B, T) -> logits (B, T, V): a `SequenceModel`
(put in eval mode for the call, its mode restored after) or an `NgramBaseline`.

Figures: `nll` = mean cross-entropy in nats per scored event, `perplexity` = exp(nll),
`accuracy` = share of targets that are the argmax of the logits, `events` = how many targets.

`NgramBaseline` is a count-based n-gram model over the same ids with interpolated Witten-Bell
smoothing (no parameter to tune):

    P_m(w | h) = (c(h, w) + T(h) * P_{m-1}(w | h')) / (c(h) + T(h))

where h is the last m ids, h' the last m-1, c counts in the training ids, T(h) the number of
distinct ids seen after h, P_{-1} uniform over the vocabulary; an unseen h falls back to
P_{m-1}. Inside a window, a position with fewer than m ids before it uses the longest context
it has, exactly like the model, which sees no ids before the window either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F

from melodygen import devices
from melodygen.encodings.vocab import BOS_ID, EOS_ID, PAD_ID
from melodygen.errors import ConfigError, DatasetError

MAX_ORDER = 6


def evaluate_nll(model, windows: Iterable, device: str | torch.device = "cpu") -> dict:
    """Score `model` on every non-PAD target of `windows` -> {nll, perplexity, accuracy, events}."""
    return nll_figures(*nll_sums(model, windows, device))


def nll_sums(model, windows: Iterable, device: str | torch.device = "cpu") -> tuple[float, int, int]:
    """(summed NLL in nats, correct argmax count, scored events) of `model` over `windows`:
    what `nll_figures` takes, and what ranks add up before it (`training.steps.validate`).

    Sums stay on `device` until the end (one sync), so this is cheap inside a training loop.
    """
    was_training = getattr(model, "training", False)
    if isinstance(model, torch.nn.Module):
        model.eval()
    nll = torch.zeros((), dtype=devices.accumulator_dtype(device), device=device)
    hits = torch.zeros((), dtype=torch.long, device=device)
    events = torch.zeros((), dtype=torch.long, device=device)
    try:
        with torch.inference_mode():
            for x, y in windows:
                x, y = x.to(device), y.to(device)
                logits = model(x).float()
                keep = y != PAD_ID
                nll += F.cross_entropy(logits[keep], y[keep], reduction="sum").to(nll.dtype)
                hits += (logits[keep].argmax(-1) == y[keep]).sum()
                events += keep.sum()
    finally:  # a failed pass (e.g. out of memory) must not leave a training model in eval mode
        if isinstance(model, torch.nn.Module):
            model.train(was_training)
    return nll.item(), int(hits.item()), int(events.item())


def nll_figures(nll_sum: float, hits: int, events: int) -> dict:
    """The figures from summed NLL (nats), correct argmax count and scored events (NaN if none)."""
    if events == 0:
        return {"nll": math.nan, "perplexity": math.nan, "accuracy": math.nan, "events": 0}
    nll = nll_sum / events
    return {"nll": nll, "perplexity": math.exp(nll), "accuracy": hits / events, "events": events}


def format_figures(figures: dict) -> str:
    """One readable line of `nll`, `perplexity` and `accuracy`."""
    return (f"NLL {figures['nll']:.4f} nats/event   perplexity {figures['perplexity']:.3f}"
            f"   accuracy {figures['accuracy']:.2%}")


class NgramBaseline:
    """Interpolated Witten-Bell n-gram over ids; callable like a model: ids (B, T) -> log-probs (B, T, V)."""

    def __init__(self, order: int, vocab_size: int):
        if not 1 <= order <= MAX_ORDER:
            raise ConfigError(f"n-gram order must be in 1..{MAX_ORDER}, got {order}")
        if vocab_size**order >= 2**62:
            raise ConfigError(f"n-gram order {order} is too high for a vocabulary of {vocab_size} ids")
        self.order = order
        self.vocab_size = vocab_size
        # Per context length m = 0..order-1: sorted (context*V + w) keys with their counts,
        # and sorted context keys with c(h) and T(h).
        self._joint: list[tuple[np.ndarray, np.ndarray]] = []
        self._context: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def fit(self, ids: np.ndarray) -> "NgramBaseline":
        """Count the n-grams (orders 1..order) of the id stream `ids` (pieces concatenated)."""
        ids = np.asarray(ids, dtype=np.int64)
        x, y = ids[None, :-1], ids[1:]
        for m in range(self.order):
            keys = _context_keys(x, m, self.vocab_size)[0]
            seen = keys >= 0
            joint, counts = np.unique(keys[seen] * self.vocab_size + y[seen], return_counts=True)
            self._joint.append((joint, counts))
            ctx, first = np.unique(joint // self.vocab_size, return_index=True)
            totals = np.add.reduceat(counts, first) if len(first) else counts
            types = np.diff(np.append(first, len(joint)))
            self._context.append((ctx, totals, types))
        return self

    def probs(self, x: np.ndarray) -> np.ndarray:
        """ids (B, T) -> probabilities (B, T, V) of the id after each position."""
        x = np.asarray(x, dtype=np.int64)
        vocab = np.arange(self.vocab_size, dtype=np.int64)
        p = np.full((*x.shape, self.vocab_size), 1.0 / self.vocab_size)
        for m in range(self.order):
            keys = _context_keys(x, m, self.vocab_size)
            ctx, totals, types = self._context[m]
            where, found = _lookup(ctx, keys)
            if not found.any():
                continue
            rows = where[found]
            joint_keys, joint_counts = self._joint[m]
            at, hit = _lookup(joint_keys, keys[found][:, None] * self.vocab_size + vocab)
            counts = np.where(hit, joint_counts[at], 0)
            lower = p[found]
            p[found] = (counts + types[rows][:, None] * lower) / (totals[rows] + types[rows])[:, None]
        return p

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """ids (B, T) -> log-probabilities (B, T, V), usable as logits by `evaluate_nll`."""
        probs = self.probs(x.cpu().numpy())
        return torch.from_numpy(np.log(probs)).to(x.device)


def _context_keys(x: np.ndarray, m: int, vocab_size: int) -> np.ndarray:
    """(B, T) ids -> (B, T) keys of the last m ids up to and including each position (newest
    id lowest digit in base V); -1 where fewer than m ids are available. m = 0 -> all zeros."""
    keys = np.zeros(x.shape, dtype=np.int64)
    for k in range(m):
        keys[:, k:] += x[:, : x.shape[1] - k] * vocab_size**k
    keys[:, : max(m - 1, 0)] = -1
    return keys


def _lookup(sorted_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of each key in `sorted_keys` and whether it is there (negative keys never are)."""
    if len(sorted_keys) == 0:
        return np.zeros(keys.shape, np.int64), np.zeros(keys.shape, bool)
    at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return at, (keys >= 0) & (sorted_keys[at] == keys)


@dataclass(frozen=True)
class _IdStream:
    """Ids of pieces concatenated (`BOS ids EOS` each), shaped for `iter_sequential_windows`."""

    ids: np.ndarray

    @property
    def num_tokens(self) -> int:
        return len(self.ids)


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


def split_ids(data_dir, split: str, encoding=None) -> np.ndarray:
    """The ids of one split of a prepared dataset; with `encoding`, checks the dataset was
    prepared with it (`DatasetError` otherwise)."""
    from melodygen.dataset.shards import TokenDataset, check_dataset

    if encoding is not None:
        check_dataset(data_dir, encoding.to_dict())
    ids = TokenDataset(data_dir, split).ids
    if len(ids) < 2:  # no target to score: the figures would be NaN
        hint = " (prepare more files or a larger --val-fraction, or score --split train)" if split == "valid" else ""
        raise DatasetError(f"{data_dir}: the {split} split is empty, nothing to score{hint}")
    return ids


def score_ids(model, ids: np.ndarray, *, seq_len: int, batch_size: int = 32, device="cpu") -> dict:
    """`evaluate_nll` over sequential windows of `seq_len` covering `ids` once."""
    from melodygen.dataset.windows import iter_sequential_windows

    return evaluate_nll(model, iter_sequential_windows(_IdStream(ids), seq_len, batch_size), device)


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
    from melodygen.checkpoint import load_for_inference
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
        data_dir = data_dir or _training_dataset(ckpt, checkpoint)
        ids, source = split_ids(data_dir, split, encoding), f"{data_dir} ({split} split)"
    seq_len = seq_len or default_seq_len(model, ckpt)
    figures = score_ids(model, ids, seq_len=seq_len, batch_size=batch_size, device=device)
    result = {**figures, "seq_len": seq_len, "source": source, "skipped": skipped}
    if baseline_order is not None:
        result["baseline"] = evaluate_baseline(data_dir, order=baseline_order, split=split,
                                               seq_len=seq_len, batch_size=batch_size)
    return result


def _training_dataset(ckpt: dict, checkpoint) -> str:
    dataset = (ckpt.get("run_config", {}).get("data") or {}).get("dataset")
    if not dataset:
        raise ConfigError(f"{checkpoint} records no dataset; give --data DIR or MIDI files to score")
    if not Path(dataset).is_dir():
        raise DatasetError(f"{dataset}: the dataset {checkpoint} was trained on is gone; give --data DIR "
                           "or MIDI files to score")
    return dataset


def evaluate_baseline(data_dir, *, order: int, split: str = "valid", seq_len: int = 256,
                      batch_size: int = 32) -> dict:
    """Figures of an n-gram fitted on the train split of `data_dir`, scored on `split` over the
    same targets (every id after the first) as `melodygen evaluate`."""
    from melodygen.dataset.shards import load_dataset_encoding, read_manifest

    read_manifest(data_dir)  # a missing or unfinished dataset fails here, named
    vocab_size = load_dataset_encoding(data_dir).vocab.size
    baseline = NgramBaseline(order, vocab_size).fit(split_ids(data_dir, "train"))
    figures = score_ids(baseline, split_ids(data_dir, split), seq_len=seq_len, batch_size=batch_size)
    return {**figures, "order": order, "seq_len": seq_len, "source": f"{data_dir} ({split} split)"}
