"""Where a run's dataset is: the folder `data.dataset` names, or the cache folder its
`data.sources` are prepared into (by `melodygen train`, or on demand for a checkpoint trained on
bundled corpora). Read by training, `evaluate`, the copy check and the report, which is why it
lives with the datasets and not in `training/`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from melodygen.config import RunConfig
from melodygen.dataset.sources import BUNDLED_PREFIX, resolve_source
from melodygen.errors import DatasetError


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


def existing_source(source: str) -> Path:
    """The absolute path of one of `data.sources` (a path, or `bundled:NAME`)."""
    path = resolve_source(source)
    if not path.exists():
        raise DatasetError(f"{source}: no such MIDI file or folder (data.sources)")
    return path.resolve()


def _cache_name(config: RunConfig, encoding) -> str:
    """`<first source>-<encoding>-<hash of sources, encoding, val_fraction>`."""
    sources = [existing_source(s) for s in config.data.sources]
    spec = {"sources": [str(s) for s in sources], "val_fraction": config.data.val_fraction,
            "encoding": {k: encoding.to_dict()[k] for k in ("name", "settings")}}
    digest = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
    return f"{sources[0].stem}-{encoding.name}-{digest}"


def run_dataset_dir(config: RunConfig, encoding) -> Path:
    """The dataset a run trained on (`prepared_dir`), read where the run left it. A run trained
    on bundled corpora only (the bundled models, whose configs carry no dataset folder) whose
    dataset is not there gets them prepared into the user's cache (`user_cache_root`; a few
    seconds once, then reused while fresh): a config read from a checkpoint chooses no folder to
    write in, since whoever made the file chose its `data.cache_dir`. `DatasetError` when a
    source is gone."""
    directory = prepared_dir(config, encoding)
    sources = [str(s) for s in config.data.sources]
    if (directory.is_dir() or config.data.dataset or not sources
            or not all(s.startswith(BUNDLED_PREFIX) for s in sources)):
        return directory
    from melodygen.dataset.prepare import prepare

    directory = user_cache_root() / _cache_name(config, encoding)
    # reused while fresh; rebuilt when this melodygen's encoder writes another stream version
    prepare(sources, encoding, directory, val_fraction=config.data.val_fraction, progress=False)
    return directory
