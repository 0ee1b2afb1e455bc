"""Finding the MIDI files a dataset is built from, hashing their content, and the bundled corpora.

A source is a MIDI file (taken as given, whatever its suffix), a folder searched recursively
for `.mid` / `.midi` files (any case), or `bundled:NAME`, a corpus shipped inside the package
(the repository's `data/` folder, installed as the package `melodygen.corpora`), so presets
work the same from a clone and from an installed wheel. Missing paths, unknown corpora and
folders without MIDI files are `DatasetError`s naming the source; the order of the result is
sorted, so runs are reproducible.
"""

from __future__ import annotations

import hashlib
import importlib.resources
from collections.abc import Sequence
from pathlib import Path

from melodygen.errors import DatasetError

MIDI_SUFFIXES = frozenset({".mid", ".midi"})
BUNDLED_PREFIX = "bundled:"
DEFAULT_CORPUS = f"{BUNDLED_PREFIX}nottingham"


def bundled_corpora() -> dict[str, Path]:
    """{name: folder} of the corpora shipped with melodygen; `DatasetError` where they are not
    installed (a source tree on the path, not installed: the repository's `data/` becomes the
    package `melodygen.corpora` only on installing)."""
    try:
        root = Path(str(importlib.resources.files("melodygen.corpora")))
    except ModuleNotFoundError:
        raise DatasetError("the bundled corpora are not installed with this melodygen (a source tree "
                           "on the path?): install it, e.g. `pip install -e .` in the clone") from None
    return {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith("_")}


def resolve_source(source: str | Path) -> Path:
    """The path a source names: `bundled:NAME` -> that bundled corpus, else the path itself
    (`~` expanded). Relative paths are the caller's business (`melodygen.config` resolves a
    config's against its folder)."""
    text = str(source)
    if not text.startswith(BUNDLED_PREFIX):
        return Path(text).expanduser()
    name, corpora = text[len(BUNDLED_PREFIX):], bundled_corpora()
    if name not in corpora:
        raise DatasetError(f"{text}: no such bundled corpus (there are: "
                           f"{', '.join(BUNDLED_PREFIX + n for n in corpora)})")
    return corpora[name]


def find_midi_files(sources: Sequence[str | Path]) -> list[Path]:
    """Every MIDI file under `sources`, each once, sorted by path."""
    if not sources:
        raise DatasetError("no MIDI sources given")
    found: dict[Path, None] = {}
    for source in sources:
        path = resolve_source(source)
        if path.is_dir():
            files = [f for f in path.rglob("*") if f.suffix.lower() in MIDI_SUFFIXES and f.is_file()]
            if not files:
                raise DatasetError(f"{source}: no .mid or .midi files in this folder")
        elif path.is_file():
            files = [path]
        else:
            raise DatasetError(f"{source}: no such file or folder")
        found.update(dict.fromkeys(f.resolve() for f in files))
    return sorted(found)


def content_hash(path: Path) -> str:
    """sha1 of the file's bytes (hex): what duplicates and the train/valid split are keyed on."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha1").hexdigest()


def default_dataset_dir(sources, encoding_name: str) -> Path:
    """Where `melodygen prepare` writes without --out: `runs/data/<first source's name>-<encoding>`."""
    return Path("runs") / "data" / f"{resolve_source(sources[0]).resolve().stem}-{encoding_name}"
