"""The training data of a run: a prepared dataset (given, or prepared and cached from MIDI
sources), the random training batches and the validation windows."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from pathlib import Path

import numpy as np

from melodygen.config import RunConfig
from melodygen.dataset.sources import BUNDLED_PREFIX, resolve_source
from melodygen.errors import DatasetError
from melodygen.training import distributed
from melodygen.training.distributed import DistInfo


def dataset_dir(config: RunConfig, encoding, info: DistInfo, progress: bool = True
                ) -> tuple[Path, dict]:
    """The folder of the run's prepared dataset, checked against the config's encoding.

    `data.dataset` is used as given. Otherwise `data.sources` are prepared (rank 0 only) into
    `cache_root/<first source>-<encoding>-<hash of sources, encoding, val_fraction>`; the
    dataset module reuses that folder while the source files are unchanged. Returns the
    folder and its manifest."""
    from melodygen.dataset.manifest import check_dataset

    if config.data.dataset:
        return Path(config.data.dataset), check_dataset(config.data.dataset, encoding.to_dict())
    sources = [_existing_source(s) for s in config.data.sources]
    out = prepared_dir(config, encoding)
    if info.is_main:
        from melodygen.dataset.prepare import prepare

        prepare(sources, encoding, out, val_fraction=config.data.val_fraction, progress=progress)
    distributed.barrier(info)
    return out, check_dataset(out, encoding.to_dict())


def prepared_dir(config: RunConfig, encoding) -> Path:
    """Where the run's dataset is (or will be) prepared, without preparing it: `data.dataset`,
    else its cache folder; `DatasetError` when a source no longer exists."""
    if config.data.dataset:
        return Path(config.data.dataset)
    return cache_root(config) / _cache_name(config, encoding)


def cache_root(config: RunConfig) -> Path:
    """Where `melodygen train` caches datasets prepared from `data.sources`: `data.cache_dir`,
    else the user's cache folder (`user_cache_root`), shared by every run of the same sources
    and encoding."""
    return Path(config.data.cache_dir) if config.data.cache_dir else user_cache_root()


def user_cache_root() -> Path:
    """The user's dataset cache: `$XDG_CACHE_HOME/melodygen/datasets`, by default
    `~/.cache/melodygen/datasets`."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "melodygen" / "datasets"


def _existing_source(source: str) -> Path:
    """The absolute path of one of `data.sources` (a path, or `bundled:NAME`)."""
    path = resolve_source(source)
    if not path.exists():
        raise DatasetError(f"{source}: no such MIDI file or folder (data.sources)")
    return path.resolve()


def _cache_name(config: RunConfig, encoding) -> str:
    """`<first source>-<encoding>-<hash of sources, encoding, val_fraction>`."""
    sources = [_existing_source(s) for s in config.data.sources]
    spec = {"sources": [str(s) for s in sources], "val_fraction": config.data.val_fraction,
            "encoding": {k: encoding.to_dict()[k] for k in ("name", "settings")}}
    digest = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
    return f"{sources[0].stem}-{encoding.name}-{digest}"


def train_batches(directory: Path, config: RunConfig, encoding, info: DistInfo):
    """The endless `WindowSampler` of this rank: its own random stream (seed, rank)."""
    from melodygen.dataset.shards import TokenDataset
    from melodygen.dataset.windows import WindowSampler, shift_tables_for

    cfg = config.training
    return WindowSampler(
        TokenDataset(directory, "train"), cfg.seq_len, cfg.batch_size,
        generator=np.random.default_rng([cfg.seed, info.rank]),
        transpose_range=cfg.transpose_range,
        shift_tables=shift_tables_for(encoding, cfg.transpose_range),
        piece_starts=cfg.window_starts == "pieces",
        controls=list(encoding.control_ids().values()), control_dropout=cfg.control_dropout)


class ValidationWindows:
    """Re-iterable validation batches: the first `eval_max_batches` sequential batches of the
    valid split (all of them when 0), dealt round-robin to the ranks."""

    def __init__(self, directory: Path, config: RunConfig, info: DistInfo):
        from melodygen.dataset.shards import TokenDataset

        self.dataset = TokenDataset(directory, "valid")
        self.seq_len, self.batch_size = config.training.seq_len, config.training.batch_size
        self.max_batches = config.training.eval_max_batches or None
        self.info = info

    @property
    def empty(self) -> bool:
        return self.dataset.num_tokens < 2

    def __iter__(self):
        from melodygen.dataset.windows import iter_sequential_windows

        batches = iter_sequential_windows(self.dataset, self.seq_len, self.batch_size)
        return itertools.islice(batches, self.info.rank, self.max_batches, self.info.world_size)


def instruments_in(directory: Path, encoding) -> list[int] | None:
    """The instruments (`PROGRAM` values) of a dataset's train split; None for an encoding whose
    ids carry no instruments."""
    from melodygen.dataset.shards import TokenDataset

    if not encoding.keeps_instruments:
        return None
    first, size = encoding.vocab.offset("PROGRAM"), encoding.vocab.range("PROGRAM").size
    counts = np.bincount(np.asarray(TokenDataset(directory, "train").ids, dtype=np.int64), minlength=first + size)
    return np.flatnonzero(counts[first:first + size]).tolist()


def run_dataset_dir(config: RunConfig, encoding) -> Path:
    """The dataset a run trained on (`prepared_dir`), read where the run left it. A run trained
    on bundled corpora only (the bundled models, whose configs carry no dataset folder) whose
    dataset is not there gets them prepared first, a few seconds once, into the user's cache
    (`user_cache_root`): a config read from a checkpoint chooses no folder to write in, since
    whoever made the file chose its `data.cache_dir`. `DatasetError` when a source is gone."""
    directory = prepared_dir(config, encoding)
    sources = [str(s) for s in config.data.sources]
    if (directory.is_dir() or config.data.dataset or not sources
            or not all(s.startswith(BUNDLED_PREFIX) for s in sources)):
        return directory
    directory = user_cache_root() / _cache_name(config, encoding)
    if not directory.is_dir():
        from melodygen.dataset.prepare import prepare

        prepare(sources, encoding, directory, val_fraction=config.data.val_fraction, progress=False)
    return directory
