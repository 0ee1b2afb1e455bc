"""The training data of a run: a prepared dataset (given, or prepared and cached from MIDI
sources), the random training batches and the validation windows."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from melodygen.config import RunConfig
from melodygen.dataset.runs import existing_source, prepared_dir
from melodygen.errors import ConfigError
from melodygen.training import distributed
from melodygen.training.distributed import DistInfo


def dataset_dir(config: RunConfig, encoding, info: DistInfo, progress: bool = True
                ) -> tuple[Path, dict]:
    """The folder of the run's prepared dataset, checked against the config's encoding.

    `data.dataset` is used as given. Otherwise `data.sources` are prepared (rank 0 only) into
    `dataset.runs.prepared_dir` (`cache_root/<first source>-<encoding>-<hash>`); the
    dataset module reuses that folder while the source files are unchanged. Returns the
    folder and its manifest."""
    from melodygen.dataset.manifest import check_dataset

    if config.data.dataset:
        return Path(config.data.dataset), check_dataset(config.data.dataset, encoding.to_dict())
    sources = [existing_source(s) for s in config.data.sources]
    out = prepared_dir(config, encoding)
    if info.is_main:
        from melodygen.dataset.prepare import prepare

        prepare(sources, encoding, out, val_fraction=config.data.val_fraction, progress=progress)
    distributed.barrier(info)
    return out, check_dataset(out, encoding.to_dict())


def train_batches(directory: Path, config: RunConfig, encoding, info: DistInfo, model):
    """The endless `WindowSampler` of this rank: its own random stream (seed, rank); an
    encoder-decoder's windows carry their sources."""
    from melodygen.dataset.shards import TokenDataset
    from melodygen.dataset.windows import WindowSampler, shift_tables_for

    cfg = config.training
    train = TokenDataset(directory, "train")
    sources = None
    if model.reads_source:
        from melodygen.dataset.pairs import SourceTable

        sources = SourceTable(train, encoding, cfg.given_tracks, model.settings.max_source, cfg.source_dropout,
                              model.settings.bar_id)
    sampler = WindowSampler(
        train, cfg.seq_len, cfg.batch_size, sources=sources,
        generator=np.random.default_rng([cfg.seed, info.rank]),
        transpose_range=cfg.transpose_range,
        shift_tables=shift_tables_for(encoding, cfg.transpose_range),
        piece_starts=cfg.window_starts == "pieces",
        piece_weights=minor_weights(train, encoding, cfg.minor_share) if cfg.minor_share else None,
        controls=list(encoding.control_ids().values()), control_dropout=cfg.control_dropout)
    if cfg.given_weight != 1:
        if sources is None:
            raise ConfigError(f"training.given_weight weighs the given tracks an encoder-decoder reads; a "
                              f"{config.model.kind} model reads none (set it back to 1)")
        from melodygen.dataset.pairs import GivenWeights

        return GivenWeights(sampler, encoding, cfg.given_tracks, cfg.given_weight)
    if not model.fills_blanks:
        return sampler
    from melodygen.dataset.blanks import ErasedWindows

    return ErasedWindows(sampler, encoding)  # a masked model learns from erased cells


class ValidationWindows:
    """Re-iterable validation batches: the first `eval_max_batches` of the batches `model` is
    scored on over the valid split (`metrics.scoring_batches`; all of them when 0), dealt
    round-robin to the ranks."""

    def __init__(self, directory: Path, config: RunConfig, info: DistInfo, encoding, model):
        from melodygen.dataset.shards import TokenDataset

        self.dataset = TokenDataset(directory, "valid")
        self.seq_len, self.batch_size = config.training.seq_len, config.training.batch_size
        self.max_batches = config.training.eval_max_batches or None
        self.given_tracks = config.training.given_tracks
        self.info, self.encoding, self.model = info, encoding, model

    @property
    def empty(self) -> bool:
        return self.dataset.num_tokens < 2

    def __iter__(self):
        from melodygen.metrics import scoring_batches

        batches = scoring_batches(self.model, self.encoding, self.dataset, self.seq_len, self.batch_size,
                                  self.given_tracks)
        return itertools.islice(batches, self.info.rank, self.max_batches, self.info.world_size)


def instruments_in(directory: Path, encoding) -> list[int] | None:
    """The instruments (GM programs, `Encoding.program_ids`) of a dataset's train split; None for an encoding whose
    ids carry no instruments."""
    from melodygen.dataset.shards import TokenDataset

    program_ids = encoding.program_ids()
    if program_ids is None:
        return None
    counts = np.bincount(np.asarray(TokenDataset(directory, "train").ids, dtype=np.int64),
                         minlength=int(program_ids.max()) + 1)
    return np.flatnonzero(counts[program_ids]).tolist()


def minor_weights(split, encoding, share: float) -> np.ndarray:
    """Per piece of `split`, how often its window is drawn so that pieces in a minor key (by their
    first KEY token) make up `share` of the windows (`training.minor_share`)."""
    from melodygen import harmony

    keys = encoding.control_ids().get("key")
    if keys is None:
        raise ConfigError(f"training.minor_share needs an encoding with the key control; {encoding.name!r} has "
                          "none (encoding.controls)")
    minor = np.zeros(len(split.offsets) - 1, dtype=bool)
    for piece in range(len(minor)):
        ids = np.asarray(split.ids[split.offsets[piece]:split.offsets[piece + 1]])
        found = ids[(ids >= keys[0]) & (ids <= keys[-1])]
        minor[piece] = len(found) > 0 and harmony.is_minor(int(found[0] - keys[0]))
    if not minor.any() or minor.all():
        raise ConfigError(f"training.minor_share: the training pieces are all {'minor' if minor.all() else 'major'} "
                          "(or unlabelled): nothing to balance")
    return np.where(minor, share / minor.sum(), (1 - share) / (~minor).sum())
