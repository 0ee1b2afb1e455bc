"""Finding the MIDI files a dataset is built from, hashing their content, and the bundled default.

A source is a MIDI file (taken as given, whatever its suffix) or a folder searched recursively
for `.mid` / `.midi` files (any case). Missing paths and folders without MIDI files are
`DatasetError`s naming the path; the order of the result is sorted, so runs are reproducible.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from melodygen.errors import DatasetError

MIDI_SUFFIXES = frozenset({".mid", ".midi"})
DEFAULT_CORPUS = "nottingham"


def default_corpus() -> Path:
    """The bundled corpus (`data/nottingham` in the melodygen repository)."""
    path = Path(__file__).resolve().parents[2] / "data" / DEFAULT_CORPUS
    if not path.is_dir():
        raise DatasetError(f"no SRC given and the bundled corpus {path} is not there "
                           "(melodygen installed outside its repository?); pass a MIDI file or folder")
    return path


def find_midi_files(sources: Sequence[str | Path]) -> list[Path]:
    """Every MIDI file under `sources`, each once, sorted by path."""
    if not sources:
        raise DatasetError("no MIDI sources given")
    found: dict[Path, None] = {}
    for source in sources:
        path = Path(source)
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
