"""Training windows of a masked model (`models.masked`): cells erased, the erased ids the targets.

Each window of the voices grid (`encodings.voices`) gets one of three kinds of erasure, chosen at
random, so that the model learns every gap sampling will ask it to fill:

- **scattered** (40%): each cell erased with one chance drawn per window, 10% to 100% (Coconet's
  uniform mask rate: from "nearly all given" to "write it all");
- **a stretch** (30%): every voice's cells over a run of positions, an eighth to a half of the
  window (`--infill A-B`: bars of every voice);
- **one voice** (30%): one voice's cells over a run of an eighth of the window to all of it
  (`--accompany`: the voices that are not given).

An erased cell reads as its voice's blank (`Encoding.blank_of`); the targets are the erased ids
there and PAD elsewhere (not scored), so the loss, validation and `evaluate` are the usual
cross-entropy over the batch's targets: the NLL of erased cells given the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch

from melodygen.dataset.windows import Batch
from melodygen.encodings.vocab import PAD_ID

KINDS = (0.4, 0.3, 0.3)  # chances of scattered, a stretch, one voice


def erase(ids: np.ndarray, encoding, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(ids with erased cells as blanks, targets: the erased ids, PAD elsewhere) of windows
    `ids` (B, T) int64."""
    ids = np.asarray(ids, dtype=np.int64)
    blanks = encoding.blank_of(ids)
    voices = encoding.voice_of(ids)
    rows, length = ids.shape
    erased = np.zeros(ids.shape, dtype=bool)
    kinds = rng.choice(len(KINDS), size=rows, p=KINDS)
    for row, kind in enumerate(kinds.tolist()):
        if kind == 0:
            erased[row] = rng.random(length) < rng.uniform(0.1, 1.0)
            continue
        span = int(rng.integers(max(1, length // 8), max(2, length // 2 if kind == 1 else length) + 1))
        start = int(rng.integers(0, max(1, length - span + 1)))
        erased[row, start:start + span] = True
        if kind == 2:
            erased[row] &= voices[row] == rng.integers(0, encoding.settings.voices)
    erased &= blanks >= 0
    return np.where(erased, blanks, ids), np.where(erased, ids, PAD_ID)


class ErasedWindows:
    """`batches` (`Batch`es whose `ids` are clean windows) with cells erased. Training: `next()`
    over its `WindowSampler`, erasing with the sampler's own generator (so `--resume`, which
    restores it through `state_dict`, erases as the first run would have). Validation and
    `evaluate`: iterated again at each pass, erasing with a fresh generator of `seed`, so every
    pass erases the same cells."""

    def __init__(self, batches: Iterable[Batch], encoding, seed: int = 0):
        self.batches, self.encoding, self.seed = batches, encoding, seed

    def __iter__(self) -> Iterator[Batch]:
        rng = np.random.default_rng(self.seed)
        return (self._erased(batch, rng) for batch in self.batches)

    def __next__(self) -> Batch:
        return self._erased(next(self.batches), self.batches.generator)

    def _erased(self, batch: Batch, rng: np.random.Generator) -> Batch:
        ids, targets = erase(batch.ids.numpy(), self.encoding, rng)
        return Batch(torch.from_numpy(ids), torch.from_numpy(targets))

    def state_dict(self) -> dict:
        return self.batches.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.batches.load_state_dict(state)
