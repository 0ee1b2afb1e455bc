"""The on-disk token shards of a prepared dataset: writing them and memory-mapping them.

Layout (docs/ARCHITECTURE.md): `DIR/{split}.bin` holds uint16 ids, each piece stored as
`BOS ids... EOS` and the pieces concatenated; `DIR/{split}.idx.npy` holds int64 offsets into it,
`len == pieces + 1`, so piece i is `ids[offsets[i]:offsets[i + 1]]`. The dataset's own record
(`manifest.json`, `encoding.json`, checking a folder) is `manifest.py`'s; the batch samplers
live in `windows.py`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from melodygen.errors import DatasetError

SPLITS = ("train", "valid")


def shard_paths(directory: Path, split: str) -> tuple[Path, Path]:
    """The ids file and the offsets file of one split."""
    return directory / f"{split}.bin", directory / f"{split}.idx.npy"


def write_split(directory: Path, split: str, pieces: list[np.ndarray], bos: int, eos: int) -> None:
    """Write `pieces` (uint16 id arrays, without BOS/EOS) as one split of a dataset."""
    bin_path, idx_path = shard_paths(directory, split)
    lengths = np.array([len(p) + 2 for p in pieces], dtype=np.int64)
    offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.empty(int(offsets[-1]), dtype=np.uint16)
    for piece, start, end in zip(pieces, offsets[:-1], offsets[1:]):
        ids[start] = bos
        ids[start + 1 : end - 1] = piece
        ids[end - 1] = eos
    ids.tofile(bin_path)
    np.save(idx_path, offsets)


class TokenDataset:
    """A read-only memory-mapped view of one split: `ids` (uint16) and `offsets` (int64).

    Raises `DatasetError` naming the file when a shard is missing or its size does not match
    its offsets (a truncated or foreign file).
    """

    def __init__(self, directory: str | Path, split: str):
        if split not in SPLITS:
            raise DatasetError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        self.directory = Path(directory)
        self.split = split
        bin_path, idx_path = shard_paths(self.directory, split)
        self.offsets = _load_offsets(idx_path)
        self.ids = _map_ids(bin_path, int(self.offsets[-1]))

    @property
    def num_pieces(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_tokens(self) -> int:
        return len(self.ids)

    def __len__(self) -> int:
        return self.num_pieces

    def piece(self, i: int) -> np.ndarray:
        """Piece i as stored: `BOS ids... EOS`."""
        return self.ids[self.offsets[i] : self.offsets[i + 1]]

    def __repr__(self) -> str:
        return (f"TokenDataset({str(self.directory)!r}, {self.split!r}: "
                f"{self.num_pieces} pieces, {self.num_tokens} tokens)")


def _load_offsets(idx_path: Path) -> np.ndarray:
    if not idx_path.is_file():
        raise DatasetError(f"{idx_path}: missing; run `melodygen prepare` again")
    try:
        offsets = np.load(idx_path, allow_pickle=False)
    except (OSError, ValueError, EOFError):  # numpy's reasons advise allow_pickle: wrong here
        raise DatasetError(f"{idx_path}: unreadable offsets index (damaged or not a .npy file); "
                           "run `melodygen prepare --force`") from None
    if (offsets.ndim != 1 or len(offsets) == 0 or offsets.dtype != np.int64 or offsets[0] != 0
            or np.any(np.diff(offsets) < 0)):
        raise DatasetError(f"{idx_path}: not a valid offsets index (int64, starting at 0, increasing)")
    return offsets


def _map_ids(bin_path: Path, expected_tokens: int) -> np.ndarray:
    if not bin_path.is_file():
        raise DatasetError(f"{bin_path}: missing; run `melodygen prepare` again")
    size = bin_path.stat().st_size
    if size != 2 * expected_tokens:
        raise DatasetError(f"{bin_path}: {size} bytes, but its index expects {2 * expected_tokens}"
                           " (truncated or mismatched shard); run `melodygen prepare --force`")
    if expected_tokens == 0:  # np.memmap cannot map an empty file
        return np.zeros(0, dtype=np.uint16)
    return np.memmap(bin_path, dtype=np.uint16, mode="r")


def split_ids(data_dir, split: str) -> np.ndarray:
    """The ids of one split of a prepared dataset, to score; `DatasetError` when it has none."""
    ids = TokenDataset(data_dir, split).ids
    if len(ids) < 2:  # no target to score: the figures would be NaN
        hint = " (prepare more files or a larger --val-fraction, or score --split train)" if split == "valid" else ""
        raise DatasetError(f"{data_dir}: the {split} split is empty, nothing to score{hint}")
    return ids
