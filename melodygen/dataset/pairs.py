"""Training pairs of an encoder-decoder (`models.seq2seq`): what its encoder reads of each piece.

A multitrack piece gives itself as a pair: its first `given_tracks` tracks (the melody, in the
bundled corpora) are the source, read whole (`Encoding.given_source`), and the decoder learns
the whole stream with that source in view, as `sample --accompany` will run it (the given notes
forced in, the new tracks written). `SourceTable` makes each window's source in training: the
source of the piece the window starts in, transposed with the window, and, with chance
`dropout`, an empty one, so the model still writes music from nothing. `iter_piece_windows` is
validation's: every piece in windows from its start, each with its source.

Sources are `BOS ids EOS` rows padded with PAD, cut to the model's `max_source`
(`source_rows`, also what sampling hands `model.start`). `bar_offset` tells the model how many
bars a window's piece opened before the window (its bar numbers, `models.seq2seq`).

The decoder's stream holds the given tracks' notes too, which it can copy from its source:
`GivenWeights` weighs them down in the training loss (`training.given_weight`), so training
spends its steps on the tracks sampling will have it write.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from melodygen.dataset.windows import Batch
from melodygen.encodings.vocab import BOS_ID, EOS_ID, PAD_ID


def source_rows(sources: Sequence[np.ndarray], max_source: int) -> torch.Tensor:
    """(B, S) int64: each source as `BOS ids EOS` (its first `max_source - 2` ids), PAD after."""
    rows = [np.concatenate([[BOS_ID], np.asarray(s, dtype=np.int64)[:max_source - 2], [EOS_ID]]) for s in sources]
    out = np.full((len(rows), max(len(r) for r in rows)), PAD_ID, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, :len(row)] = row
    return torch.from_numpy(out)


class SourceTable:
    """Each piece's source in one split of a dataset (made once per piece, kept), and the
    `Batch.side` of windows starting at given ids."""

    def __init__(self, dataset, encoding, given_tracks: int, max_source: int, dropout: float = 0.0,
                 bar_id: int = 0):
        self.dataset, self.encoding = dataset, encoding
        self.given_tracks, self.max_source, self.dropout = given_tracks, max_source, dropout
        self.bar_id = bar_id  # the model's (`models.seq2seq`): bars are counted as it counts them; 0: none
        self._sources: dict[int, np.ndarray] = {}

    def source(self, piece: int) -> np.ndarray:
        """The source of piece `piece` (untransposed)."""
        if piece not in self._sources:
            lo, hi = self.dataset.offsets[piece], self.dataset.offsets[piece + 1]
            body = np.asarray(self.dataset.ids[lo:hi], dtype=np.int64)
            body = body[(body != BOS_ID) & (body != EOS_ID)]
            self._sources[piece] = self.encoding.given_source(body, self.given_tracks)
        return self._sources[piece]

    def bars_before(self, piece: int, start: int) -> int:
        """Bars piece `piece` opened before the split's id `start` (0 for a model without bar numbers)."""
        if not self.bar_id:
            return 0
        lo = int(self.dataset.offsets[piece])
        return int(np.count_nonzero(np.asarray(self.dataset.ids[lo:start]) == self.bar_id))

    def side(self, starts: np.ndarray, tables: np.ndarray | None = None, empty: np.ndarray | None = None) -> dict:
        """{"source", "bar_offset"} of windows starting at split ids `starts`: row i's source
        through `tables[i]` (its window's transposition; an id it would take out of range stays),
        an empty source where `empty[i]`."""
        pieces = np.searchsorted(self.dataset.offsets, starts, side="right") - 1
        sources = []
        for i, piece in enumerate(pieces.tolist()):
            source = self.source(piece)
            if empty is not None and empty[i]:
                source = source[:0]
            elif tables is not None:
                moved = tables[i][source]
                source = np.where(moved >= 0, moved, source)
            sources.append(source)
        offsets = [self.bars_before(p, s) for p, s in zip(pieces.tolist(), starts.tolist())]
        return {"source": source_rows(sources, self.max_source), "bar_offset": torch.tensor(offsets)}


class GivenWeights:
    """`batches` (a `WindowSampler` of an encoder-decoder's windows) with `Batch.weights`: the
    targets that are the given tracks' notes (`Encoding.given_notes`) weigh `weight`, the rest 1.
    Its state is its sampler's (`--resume`)."""

    def __init__(self, batches, encoding, given_tracks: int, weight: float):
        self.batches, self.encoding, self.given_tracks, self.weight = batches, encoding, given_tracks, weight

    def __next__(self) -> Batch:
        batch = next(self.batches)
        window = torch.cat([batch.ids[:, :1], batch.targets], 1).numpy()  # each target with what comes before
        given = self.encoding.given_notes(window, self.given_tracks)[:, 1:]
        weights = np.where(given, self.weight, 1.0).astype(np.float32)
        return Batch(batch.ids, batch.targets, batch.side, torch.from_numpy(weights))

    def state_dict(self) -> dict:
        return self.batches.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.batches.load_state_dict(state)


def iter_piece_windows(table: SourceTable, seq_len: int, batch_size: int) -> Iterator[Batch]:
    """Every piece of `table`'s split once, in windows of `seq_len` from its start, with its
    source: each id after a piece's BOS is a target exactly once (targets past a piece's end
    are PAD). Batches of up to `batch_size` windows."""
    dataset, chunks = table.dataset, []
    for piece in range(len(dataset.offsets) - 1):
        lo, hi = int(dataset.offsets[piece]), int(dataset.offsets[piece + 1])
        chunks.extend(range(lo, hi - 1, seq_len))
    for first in range(0, len(chunks), batch_size):
        starts = np.array(chunks[first:first + batch_size])
        pieces = np.searchsorted(dataset.offsets, starts, side="right") - 1
        windows = np.full((len(starts), seq_len + 1), PAD_ID, dtype=np.int64)
        for row, (start, piece) in enumerate(zip(starts.tolist(), pieces.tolist())):
            stop = min(start + seq_len + 1, int(dataset.offsets[piece + 1]))
            windows[row, :stop - start] = dataset.ids[start:stop]
        yield Batch(torch.from_numpy(windows[:, :-1].copy()), torch.from_numpy(windows[:, 1:].copy()),
                    table.side(starts))
