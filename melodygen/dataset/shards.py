"""The on-disk token shards of a prepared dataset: writing them, memory-mapping them, checking them.

Layout (docs/ARCHITECTURE.md): `DIR/{split}.bin` holds uint16 ids, each piece stored as
`BOS ids... EOS` and the pieces concatenated; `DIR/{split}.idx.npy` holds int64 offsets into it,
`len == pieces + 1`, so piece i is `ids[offsets[i]:offsets[i + 1]]`. `DIR/encoding.json` is the
encoding's `to_dict()` and `DIR/manifest.json` is written last, so a folder without a manifest is
never a finished dataset.

The batch samplers live in `windows.py`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from melodygen.errors import DatasetError, EncodingError

SPLITS = ("train", "valid")
MANIFEST = "manifest.json"
ENCODING = "encoding.json"
DATASET_FORMAT = "melodygen-dataset"


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


def read_manifest(directory: str | Path) -> dict:
    """The manifest of a finished dataset; `DatasetError` when there is none or it is unreadable."""
    path = Path(directory) / MANIFEST
    if not Path(directory).is_dir():
        raise DatasetError(f"{directory}: no such dataset folder; create it with `melodygen prepare`")
    if not path.exists() and not (Path(directory) / ENCODING).exists():
        raise DatasetError(f"{directory}: not a prepared dataset (no {MANIFEST}); make one from MIDI "
                           "files with `melodygen prepare`")
    manifest = _read_json(path, "manifest")
    if manifest.get("format") != DATASET_FORMAT:
        raise DatasetError(f"{path}: not a melodygen dataset manifest")
    return manifest


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise DatasetError(f"{path}: missing {what}; the dataset is incomplete, run `melodygen prepare` again")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: unreadable {what} ({exc})") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: unreadable {what} (not a JSON object)")
    return data


def read_encoding_dict(directory: str | Path) -> dict:
    """The dataset's `encoding.json` as stored (the encoding's `to_dict()` at prepare time)."""
    return _read_json(Path(directory) / ENCODING, "encoding file")


def load_dataset_encoding(directory: str | Path):
    """The `Encoding` a dataset was prepared with, rebuilt from its `encoding.json`."""
    from melodygen.encodings import encoding_from_dict

    try:
        return encoding_from_dict(read_encoding_dict(directory))
    except EncodingError as exc:
        raise DatasetError(f"{Path(directory) / ENCODING}: {exc}") from None


def check_dataset(directory: str | Path, expected_encoding: dict) -> dict:
    """Check that `directory` is a complete dataset made with `expected_encoding` (a `to_dict()`).

    Compares the encoding name, settings and token list; returns the manifest. Raises `DatasetError` when the
    dataset is missing, incomplete, damaged, or was prepared with another encoding.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    stored = read_encoding_dict(directory)
    for key in ("name", "settings"):
        if stored.get(key) != expected_encoding.get(key):
            raise DatasetError(
                f"{directory}: prepared with encoding {_describe(stored)}, but {_describe(expected_encoding)}"
                " was asked for; prepare it again with that encoding or use another --data folder")
    if "tokens" in expected_encoding and stored.get("tokens") != expected_encoding["tokens"]:
        raise DatasetError(f"{directory}: its token list differs from this melodygen's {stored.get('name')!r} "
                           f"encoding (prepared with melodygen {stored.get('melodygen_version')}); prepare it again")
    for split in SPLITS:
        TokenDataset(directory, split)  # raises on a missing or truncated shard
    return manifest


def _describe(encoding_dict: dict) -> str:
    settings = encoding_dict.get("settings")
    if not isinstance(settings, dict):  # a damaged encoding.json
        return f"{encoding_dict.get('name')!r} (settings {settings!r})"
    return f"{encoding_dict.get('name')!r} ({', '.join(f'{k}={v}' for k, v in sorted(settings.items()))})"


def split_ids(data_dir, split: str, encoding=None) -> np.ndarray:
    """The ids of one split of a prepared dataset; with `encoding`, checks the dataset was
    prepared with it (`DatasetError` otherwise)."""
    if encoding is not None:
        check_dataset(data_dir, encoding.to_dict())
    ids = TokenDataset(data_dir, split).ids
    if len(ids) < 2:  # no target to score: the figures would be NaN
        hint = " (prepare more files or a larger --val-fraction, or score --split train)" if split == "valid" else ""
        raise DatasetError(f"{data_dir}: the {split} split is empty, nothing to score{hint}")
    return ids
