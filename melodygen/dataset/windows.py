"""Training and validation batches: `Batch`es of id windows cut from a split's concatenated pieces.

`WindowSampler` draws random windows of `seq_len + 1` ids over the whole split (windows may
cross piece boundaries, where `EOS BOS` marks the seam, as in nanoGPT), or windows that start at
a random piece's BOS (`piece_starts`: with a context longer than most pieces, the model sees
whole pieces from their beginning, the form a listener hears), and applies transposition
augmentation and control dropout at batch time. `iter_sequential_windows` walks a split once
for validation (controls kept). Both gather with one vectorised numpy index per batch; no Python
loop runs over tokens.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from melodygen.encodings.vocab import EOS_ID, PAD_ID
from melodygen.errors import ConfigError, DatasetError

if TYPE_CHECKING:
    from melodygen.dataset.shards import TokenDataset

RandomSource = np.random.Generator | torch.Generator


@dataclass(frozen=True)
class Batch:
    """The unit of training and validation data: `ids` (B, T) the model reads and `targets`
    (B, T), the id after each of them (PAD targets are not scored), int64. `side` holds what
    else the model reads, by its keyword: an encoder-decoder's `source` (B, S) and `bar_offset`
    (B,) (`dataset.pairs`); whatever is there travels with the ids (`to`) and is passed to the
    model as `model(ids, **side)`. `weights` (B, T) float, where set: each target's weight in the
    training loss (`dataset.pairs.GivenWeights`); None: all alike."""

    ids: torch.Tensor
    targets: torch.Tensor
    side: Mapping[str, torch.Tensor] = field(default_factory=dict)
    weights: torch.Tensor | None = None

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        move = lambda t: t.to(device, non_blocking=non_blocking)  # noqa: E731
        return Batch(move(self.ids), move(self.targets), {k: move(v) for k, v in self.side.items()},
                     None if self.weights is None else move(self.weights))


def shift_tables_for(encoding, transpose_range: tuple[int, int]) -> dict[int, np.ndarray]:
    """`{shift: encoding.pitch_shift_table(shift)}` for every shift in the inclusive range."""
    lo, hi = transpose_range
    return {shift: encoding.pitch_shift_table(shift) for shift in range(lo, hi + 1)}


class WindowSampler:
    """An endless source of random `Batch`es, `targets` being `ids` shifted left by one id.

    `next(sampler)` returns a `Batch` of (B, T) int64 tensors on the CPU. Each window gets a
    transposition drawn uniformly among the shifts of `transpose_range` (inclusive, in
    semitones, containing 0) that keep every one of its ids in the encoding's pitch range (no id
    mapped to -1); its ids go through `shift_tables[shift]` (from `Encoding.pitch_shift_table`).
    Shift 0 always qualifies, so a window near the range edge is still transposed the ways it
    can be, and no window is dropped (dropping would bias batches towards mid-range pieces).

    `controls` (id arrays, one per kind of control token, `Encoding.control_ids`): each kind is
    taken out of a window with chance `control_dropout`, and all of them together with that
    chance again (so windows without any control, what sampling with none asked for looks like,
    are common: 32% at 0.3 with three kinds, not 2.7%). Windows are then drawn (kinds + 1) times
    as long and the first `seq_len + 1` ids left are kept: each kind has at most one token per
    bar, and a bar has its BAR besides (an empty bar: BAR KEY CHORD DENSITY), so enough are
    always left.

    `piece_weights` (one per piece, with `piece_starts`): how often each piece's window is drawn,
    relative to the others (None: all alike); e.g. more minor tunes (`training.minor_share`).

    `sources` (a `dataset.pairs.SourceTable`): an encoder-decoder's windows, each with the
    source of the piece it starts in (`_with_sources`).

    Deterministic given the generator's state; `state_dict()` / `load_state_dict()` save and
    restore it for `--resume`. A `torch.Generator` must live on the CPU.
    """

    def __init__(self, dataset: TokenDataset, seq_len: int, batch_size: int, *, generator: RandomSource,
                 transpose_range: tuple[int, int] = (0, 0),
                 shift_tables: Mapping[int, np.ndarray] | None = None, piece_starts: bool = False,
                 piece_weights: np.ndarray | None = None,
                 controls: Sequence[np.ndarray] = (), control_dropout: float = 0.0, sources=None):
        if seq_len < 1 or batch_size < 1:
            raise ConfigError(f"seq_len and batch_size must be >= 1, got {seq_len} and {batch_size}")
        if dataset.num_tokens < seq_len + 1:
            raise DatasetError(f"{dataset.directory}: the {dataset.split} split has {dataset.num_tokens} ids,"
                               f" too few for windows of seq_len={seq_len}; use a shorter seq_len or more music")
        self.dataset, self.seq_len, self.batch_size = dataset, seq_len, batch_size
        self.sources = sources
        self.generator = generator
        self.control_dropout = control_dropout if len(controls) else 0.0
        self._control_of = np.full(max([int(c.max()) + 1 for c in controls if len(c)], default=0), -1)
        for kind, ids in enumerate(controls):
            self._control_of[ids] = kind
        self._kinds = len(controls)
        span = (seq_len + 1) * (self._kinds + 1 if self.control_dropout else 1)
        if self.control_dropout and dataset.num_tokens < span:
            raise DatasetError(f"{dataset.directory}: the {dataset.split} split has {dataset.num_tokens} ids, "
                               f"too few for control dropout's windows of {span}; use a shorter seq_len")
        self.shift_lo, self.tables = _stack_tables(transpose_range, shift_tables)
        if self.tables is not None:
            self._lowest, self._highest = _valid_shift_bounds(self.tables, self.shift_lo)
        self._span = np.arange(span)
        # piece_starts: each piece's first id; the last pieces' would run past the split, so
        # they share one window, the last that fits (drawn once, not once per such piece)
        self._piece_starts, self._start_chances = None, None
        if piece_starts:
            self._piece_starts, first = np.unique(np.minimum(dataset.offsets[:-1], dataset.num_tokens - span),
                                                  return_index=True)
            if piece_weights is not None:
                weights = np.asarray(piece_weights, dtype=np.float64)[first]
                self._start_chances = weights / weights.sum()

    def __iter__(self) -> Iterator[Batch]:
        return self

    def __next__(self) -> Batch:
        if self._piece_starts is None:
            starts = _integers(self.generator, 0, self.dataset.num_tokens - len(self._span) + 1, self.batch_size)
        else:
            starts = self._piece_starts[_integers(self.generator, 0, len(self._piece_starts), self.batch_size)
                                        if self._start_chances is None
                                        else _weighted(self.generator, self._start_chances, self.batch_size)]
        windows = self.dataset.ids[starts[:, None] + self._span].astype(np.int64)  # (B, T + 1)
        rows = None
        if self.tables is not None:
            windows, rows = self._transpose(windows)
        if self.control_dropout:
            windows = self._drop_controls(windows)
        if self.sources is None:
            return _batch_of(windows)
        return self._with_sources(windows, starts, rows)

    def _with_sources(self, windows: np.ndarray, starts: np.ndarray, rows: np.ndarray | None) -> Batch:
        """An encoder-decoder's batch (`dataset.pairs`): each window's source, transposed with it
        (empty with chance `sources.dropout`), and its targets after its piece's EOS made PAD
        (another piece, whose source is not the one given)."""
        empty = _uniform(self.generator, self.batch_size) < self.sources.dropout
        side = self.sources.side(starts, None if rows is None else self.tables[rows], empty)
        batch = _batch_of(windows)
        batch.targets[(batch.ids == EOS_ID).cumsum(1) > 0] = PAD_ID  # from the id after an EOS on
        return Batch(batch.ids, batch.targets, side)

    def _drop_controls(self, windows: np.ndarray) -> np.ndarray:
        """Each kind of control out of each window with chance `control_dropout`, all of them with
        that chance again; the first `seq_len + 1` ids left."""
        draws = _uniform(self.generator, self.batch_size * (self._kinds + 1)).reshape(-1, self._kinds + 1)
        dropped = (draws[:, :-1] < self.control_dropout) | (draws[:, -1:] < self.control_dropout)
        known = len(self._control_of)
        kind = np.where(windows < known, self._control_of[np.minimum(windows, known - 1)], -1)
        out = (kind >= 0) & np.take_along_axis(dropped, kind.clip(min=0), axis=1)
        order = np.argsort(out, axis=1, kind="stable")  # kept ids first, in their order
        return np.take_along_axis(windows, order[:, :self.seq_len + 1], axis=1)

    def _transpose(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the windows transposed, each one's row of `self.tables`)."""
        # The shifts keeping a window in range are the intersection of its ids' intervals.
        lowest = self._lowest[windows].max(axis=1)  # (B,)
        highest = self._highest[windows].min(axis=1)
        # floor(u * choices) with u < 1 stays below choices (the float product rounds down).
        picks = (_uniform(self.generator, self.batch_size) * (highest - lowest + 1)).astype(np.int64)
        rows = lowest + picks - self.shift_lo
        return self.tables[rows[:, None], windows], rows

    def state_dict(self) -> dict:
        """The generator state (plain dicts/tensors, fit for a `weights_only` checkpoint)."""
        if isinstance(self.generator, np.random.Generator):
            return {"numpy": self.generator.bit_generator.state}
        return {"torch": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        kind = "numpy" if isinstance(self.generator, np.random.Generator) else "torch"
        if kind not in state:
            raise ConfigError(f"sampler state holds {sorted(state)}, but this sampler uses a {kind} generator")
        if kind == "numpy":
            self.generator.bit_generator.state = state["numpy"]
        else:
            self.generator.set_state(state["torch"])


def _stack_tables(transpose_range: tuple[int, int], shift_tables: Mapping[int, np.ndarray] | None
                  ) -> tuple[int, np.ndarray | None]:
    lo, hi = transpose_range
    if lo > hi:
        raise ConfigError(f"transpose_range {transpose_range}: low end above high end")
    if not lo <= 0 <= hi:
        raise ConfigError(f"transpose_range {transpose_range} must contain 0 (the untransposed music)")
    if (lo, hi) == (0, 0):
        return 0, None
    missing = [s for s in range(lo, hi + 1) if shift_tables is None or s not in shift_tables]
    if missing:
        raise ConfigError(f"transpose_range {transpose_range} needs shift tables for shifts {missing}")
    return lo, np.stack([np.asarray(shift_tables[s], dtype=np.int64) for s in range(lo, hi + 1)])


def _valid_shift_bounds(tables: np.ndarray, shift_lo: int) -> tuple[np.ndarray, np.ndarray]:
    """Per id, the lowest and highest shift keeping it in range, as (V,) int64 arrays.

    Transposing a pitch is valid over one interval of shifts, and shift 0 must keep every id; a
    table breaking either (e.g. a shift-0 table with -1s) would make the bounds lie, so it is refused.
    """
    valid = tables >= 0  # (S, V)
    shifts = np.arange(len(tables))[:, None] + shift_lo
    lowest = np.where(valid, shifts, np.iinfo(np.int64).max).min(axis=0)
    highest = np.where(valid, shifts, np.iinfo(np.int64).min).max(axis=0)
    bad = np.flatnonzero(~valid[-shift_lo] | (valid.sum(axis=0) != highest - lowest + 1))
    if bad.size:
        raise ConfigError(f"shift tables: the valid shifts of id {bad[0]} are not one interval containing 0")
    return lowest, highest


def _uniform(generator: RandomSource, size: int) -> np.ndarray:
    """`size` uniform floats in [0, 1) from either kind of generator."""
    if isinstance(generator, np.random.Generator):
        return generator.random(size)
    return torch.rand(size, generator=generator, dtype=torch.float64).numpy()


def _integers(generator: RandomSource, low: int, high: int, size: int) -> np.ndarray:
    """`size` uniform integers in [low, high) from either kind of generator."""
    if isinstance(generator, np.random.Generator):
        return generator.integers(low, high, size=size)
    return torch.randint(low, high, (size,), generator=generator).numpy()


def _weighted(generator: RandomSource, chances: np.ndarray, size: int) -> np.ndarray:
    """`size` indices drawn with replacement, index i with chance `chances[i]`."""
    if isinstance(generator, np.random.Generator):
        return generator.choice(len(chances), size=size, p=chances)
    return torch.multinomial(torch.as_tensor(chances), size, replacement=True, generator=generator).numpy()


def _batch_of(windows: np.ndarray) -> Batch:
    """(B, T + 1) ids -> the `Batch` of their first T ids and the T after."""
    return Batch(torch.from_numpy(np.ascontiguousarray(windows[:, :-1])),
                 torch.from_numpy(np.ascontiguousarray(windows[:, 1:])))


def iter_sequential_windows(dataset: TokenDataset, seq_len: int, batch_size: int) -> Iterator[Batch]:
    """Walk the split once in order: every target id (all but the first) appears in exactly one
    batch's targets.

    Yields batches of shape (B, seq_len), the last of them possibly with fewer rows,
    then, if the split does not divide evenly, one final (1, T') batch with T' < seq_len. No
    padding, so summed losses over all batches divided by `dataset.num_tokens - 1` give the
    exact mean over the split. Windows do not overlap, so the first ids of each see little context.
    """
    n_targets = max(dataset.num_tokens - 1, 0)
    full = n_targets // seq_len
    span = np.arange(seq_len + 1)
    for first in range(0, full, batch_size):
        rows = np.arange(first, min(first + batch_size, full))
        yield _batch_of(dataset.ids[rows[:, None] * seq_len + span].astype(np.int64))
    if n_targets > full * seq_len:
        yield _batch_of(np.asarray(dataset.ids[full * seq_len:], dtype=np.int64)[None, :])
