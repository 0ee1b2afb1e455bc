"""A count-based baseline over the same ids as the models: an interpolated Witten-Bell n-gram.

`NgramBaseline` needs no parameter to tune:

    P_m(w | h) = (c(h, w) + T(h) * P_{m-1}(w | h')) / (c(h) + T(h))

where h is the last m ids, h' the last m-1, c counts in the training ids, T(h) the number of
distinct ids seen after h, P_{-1} uniform over the vocabulary; an unseen h falls back to
P_{m-1}. Inside a window, a position with fewer than m ids before it uses the longest context
it has, exactly like the model, which sees no ids before the window either. `evaluate_baseline`
fits one on a dataset's train split and scores it with `metrics.score_ids`, on the same targets
as `melodygen evaluate`.
"""

from __future__ import annotations

import numpy as np
import torch

from melodygen.errors import ConfigError
from melodygen.metrics import score_ids

MAX_ORDER = 6


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

    def fit(self, ids: np.ndarray) -> NgramBaseline:
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


def evaluate_baseline(data_dir, *, order: int, split: str = "valid", seq_len: int = 256,
                      batch_size: int = 32) -> dict:
    """Figures of an n-gram fitted on the train split of `data_dir`, scored on `split` over the
    same targets (every id after the first) as `melodygen evaluate`."""
    from melodygen.dataset.manifest import load_dataset_encoding, read_manifest
    from melodygen.dataset.shards import split_ids

    read_manifest(data_dir)  # a missing or unfinished dataset fails here, named
    vocab_size = load_dataset_encoding(data_dir).vocab.size
    baseline = NgramBaseline(order, vocab_size).fit(split_ids(data_dir, "train"))
    figures = score_ids(baseline, split_ids(data_dir, split), seq_len=seq_len, batch_size=batch_size)
    return {**figures, "order": order, "seq_len": seq_len, "source": f"{data_dir} ({split} split)"}
