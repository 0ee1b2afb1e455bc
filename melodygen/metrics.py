"""The validation metric: NLL, perplexity and accuracy of next-id predictions, the same everywhere.

`nll_sums(model, batches, device)` is THE metric: `melodygen train` calls it at every validation
(adding the sums up over the ranks) and `melodygen evaluate` / `melodygen baseline` through
`evaluate_nll` and `score_ids`, so the figures are the same everywhere. `batches` is any iterable
of `dataset.windows.Batch` (e.g. `iter_sequential_windows`); PAD targets are not scored. `model`
is anything mapping ids (B, T) -> logits (B, T, V): a `SequenceModel` (put in eval mode for the
call, its mode restored after) or a `baseline.NgramBaseline`.

Figures: `nll` = mean cross-entropy in nats per scored event, `perplexity` = exp(nll),
`accuracy` = share of targets that are the argmax of the logits, `events` = how many targets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F

from melodygen import devices
from melodygen.encodings.vocab import BOS_ID, PAD_ID


def evaluate_nll(model, batches: Iterable, device: str | torch.device = "cpu") -> dict:
    """Score `model` on every non-PAD target of `batches` -> {nll, perplexity, accuracy, events}."""
    return nll_figures(*nll_sums(model, batches, device))


def nll_sums(model, batches: Iterable, device: str | torch.device = "cpu") -> tuple[float, int, int]:
    """(summed NLL in nats, correct argmax count, scored events) of `model` over `batches`:
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
            for batch in batches:
                batch = batch.to(device)
                logits = model(batch.ids, **batch.side).float().flatten(0, 1)  # (B * T, V)
                targets = batch.targets.flatten()
                keep = targets != PAD_ID
                # PAD targets are ignored in place: no copy of the kept rows' logits (it was two)
                nll += F.cross_entropy(logits, targets, ignore_index=PAD_ID, reduction="sum").to(nll.dtype)
                hits += ((logits.argmax(-1) == targets) & keep).sum()
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


def score_ids(model, ids: np.ndarray, *, seq_len: int, batch_size: int = 32, device="cpu") -> dict:
    """`evaluate_nll` over sequential windows of `seq_len` covering `ids` once."""
    from melodygen.dataset.windows import iter_sequential_windows

    return evaluate_nll(model, iter_sequential_windows(IdStream(ids), seq_len, batch_size), device)


def scoring_batches(model, encoding, split, seq_len: int, batch_size: int, given_tracks: int = 1) -> Iterable:
    """The batches `model` is scored on over `split` (a `TokenDataset` split or an `IdStream`),
    every target once: validation's and `evaluate`'s. Sequential windows; for an encoder-decoder,
    each piece's windows with its source (`dataset.pairs`); for a masked model, the windows with
    cells erased, the same ones at every pass (`dataset.blanks`)."""
    from melodygen.dataset.windows import iter_sequential_windows

    if model.reads_source:
        from melodygen.dataset.pairs import SourceTable, iter_piece_windows

        table = SourceTable(split, encoding, given_tracks, model.settings.max_source, bar_id=model.settings.bar_id)
        return iter_piece_windows(table, seq_len, batch_size)
    windows = iter_sequential_windows(split, seq_len, batch_size)
    if not model.fills_blanks:
        return windows
    from melodygen.dataset.blanks import ErasedWindows

    return ErasedWindows(windows, encoding)


@dataclass(frozen=True)
class IdStream:
    """Ids of pieces concatenated (`BOS ids EOS` each), shaped like a `TokenDataset` split."""

    ids: np.ndarray

    @property
    def num_tokens(self) -> int:
        return len(self.ids)

    @cached_property
    def offsets(self) -> np.ndarray:
        """Where each piece starts (its BOS), and the end: len = pieces + 1 (found once: a
        `dataset.pairs.SourceTable` reads them for every window)."""
        return np.append(np.flatnonzero(np.asarray(self.ids) == BOS_ID), len(self.ids))
