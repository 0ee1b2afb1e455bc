"""The dataset's record of itself: `manifest.json` and `encoding.json`, written and read here
alone; the input fingerprint and the train/valid split rule.

`DIR/encoding.json` is the encoding's `to_dict()`; `DIR/manifest.json` is written last, so a
folder without a manifest is never a finished dataset. `check_dataset` is the one check that a
folder is a complete dataset of the expected encoding.

The fingerprint covers what decides the output (each input file's resolved path, size and
mtime, the encoding's full JSON with its stream version, the validation fraction, the dataset
format version, the reader's ceiling), so an unchanged fingerprint means a previous result can
be reused without parsing anything.

The stream version (`Encoding.stream_version`) changes whenever an encoder's ids for the same
notes change. A dataset written under another version is stale: `prepare` rebuilds it (its
fingerprint differs, and no file's ids are taken from it), while `check_dataset`, which every
reader of a dataset folder goes through (`train --data`, `evaluate`, the copy check), refuses
it in one line asking for `melodygen prepare` again; so does `load_dataset_encoding`. A dataset
whose `encoding.json` records no stream version was prepared before versions existed: version 1.

The split is keyed on file content (sha1), never on order or path: adding, removing or renaming
files never moves another file between train and valid.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from melodygen import __version__
from melodygen.dataset.shards import SPLITS, TokenDataset
from melodygen.errors import DatasetError, EncodingError
from melodygen.limits import ReadLimits

MANIFEST = "manifest.json"
ENCODING = "encoding.json"
DATASET_FORMAT = "melodygen-dataset"
FORMAT_VERSION = 1
SPLIT_BUCKETS = 1000
SPLIT_RULE = f"valid if int(sha1[:8], 16) % {SPLIT_BUCKETS} < round(val_fraction * {SPLIT_BUCKETS})"


def split_of(sha1: str, val_fraction: float) -> str:
    """'valid' or 'train' for a file with content hash `sha1` (hex)."""
    return "valid" if int(sha1[:8], 16) % SPLIT_BUCKETS < round(val_fraction * SPLIT_BUCKETS) else "train"


def input_fingerprint(files: list[Path], encoding_dict: dict, val_fraction: float) -> str:
    """sha1 over the file list with sizes and mtimes, the encoding, the split settings and the
    reader's ceiling (raising it must re-read the files it refused)."""
    stats = []
    for path in files:
        st = os.stat(path)
        stats.append([str(path), st.st_size, st.st_mtime_ns])
    limits = ReadLimits.from_env()
    blob = json.dumps({"files": stats, "encoding": encoding_dict, "val_fraction": val_fraction,
                       "format_version": FORMAT_VERSION,
                       "read_limits": [limits.max_minutes, limits.max_events]}, sort_keys=True)
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()


def build_manifest(*, sources: list[str], fingerprint: str, encoding_dict: dict, val_fraction: float,
                   files_found: int, files_from_previous: int, pieces: list[dict], skipped: list[dict],
                   seconds: float) -> dict:
    """The `manifest.json` content. `pieces`: one dict per stored piece (path, sha1, split, index,
    ids, notes, seconds); `skipped`: one dict per unused file (path, reason, detail, and sha1 once
    hashed). `files_from_previous`: files whose results came from the previous build, not parsed."""
    totals = _split_totals(pieces)
    return {
        "format": DATASET_FORMAT, "format_version": FORMAT_VERSION, "melodygen_version": __version__,
        "fingerprint": fingerprint, "sources": sources,
        "encoding": {"name": encoding_dict["name"], "settings": encoding_dict["settings"]},
        "settings": {"val_fraction": val_fraction, "split_rule": SPLIT_RULE},
        "files": {"found": files_found, "used": len(pieces), "skipped": len(skipped),
                  "from_previous_build": files_from_previous,
                  "skipped_by_reason": count_reasons(skipped)},
        "splits": {split: _split_totals([p for p in pieces if p["split"] == split]) for split in ("train", "valid")},
        "totals": totals,
        "seconds_taken": seconds,
        # a rate only when every file was parsed in this build
        "notes_per_second": totals["notes"] / seconds if seconds > 0 and not files_from_previous else None,
        "pieces": pieces, "skipped": skipped,
    }


def count_reasons(skipped: list[dict]) -> dict[str, int]:
    """{skip reason: how many files}, reasons in alphabetical order."""
    counts: dict[str, int] = {}
    for entry in skipped:
        counts[entry["reason"]] = counts.get(entry["reason"], 0) + 1
    return dict(sorted(counts.items()))


def _split_totals(pieces: list[dict]) -> dict:
    """Pieces, ids (BOS and EOS included), notes and hours of music of `pieces`."""
    return {"pieces": len(pieces), "tokens": sum(p["ids"] + 2 for p in pieces),
            "notes": sum(p["notes"] for p in pieces), "hours": sum(p["seconds"] for p in pieces) / 3600.0}


def write_json(path: Path, obj: dict) -> None:
    """`obj` as indented JSON at `path` (inside a staging folder that is renamed whole)."""
    path.write_text(json.dumps(obj, indent=1) + "\n", encoding="utf-8")


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

    stored = read_encoding_dict(directory)
    try:
        _check_stream(directory, stored)
        return encoding_from_dict(stored)
    except EncodingError as exc:
        raise DatasetError(f"{Path(directory) / ENCODING}: {exc}") from None


def check_dataset(directory: str | Path, expected_encoding: dict) -> dict:
    """Check that `directory` is a complete dataset made with `expected_encoding` (a `to_dict()`).

    Compares the encoding name, settings, stream version (against this melodygen's encoder) and
    token list; returns the manifest. Raises `DatasetError` when the dataset is missing,
    incomplete, damaged, was prepared with another encoding, or by an encoder that wrote other ids.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    stored = read_encoding_dict(directory)
    for key in ("name", "settings"):
        if stored.get(key) != expected_encoding.get(key):
            raise DatasetError(
                f"{directory}: prepared with encoding {_describe(stored)}, but {_describe(expected_encoding)}"
                " was asked for; prepare it again with that encoding or use another --data folder")
    try:
        _check_stream(directory, stored)
    except EncodingError as exc:
        raise DatasetError(f"{directory / ENCODING}: {exc}") from None
    if "tokens" in expected_encoding and stored.get("tokens") != expected_encoding["tokens"]:
        raise DatasetError(f"{directory}: its token list differs from this melodygen's {stored.get('name')!r} "
                           f"encoding (prepared with melodygen {stored.get('melodygen_version')}); prepare it again")
    for split in SPLITS:
        TokenDataset(directory, split)  # raises on a missing or truncated shard
    return manifest


def _check_stream(directory: str | Path, stored: dict) -> None:
    """Refuse a dataset whose ids another version of its encoder wrote (`DatasetError`, one
    line); `EncodingError` for an unknown encoding or a damaged version."""
    from melodygen.encodings import stream_versions

    written, current = stream_versions(stored)
    if written != current:
        raise DatasetError(
            f"{directory}: prepared with the {stored['name']!r} encoding's stream version {written}, "
            f"but this melodygen's encoder writes version {current}; run `melodygen prepare` again to rebuild it")


def _describe(encoding_dict: dict) -> str:
    settings = encoding_dict.get("settings")
    if not isinstance(settings, dict):  # a damaged encoding.json
        return f"{encoding_dict.get('name')!r} (settings {settings!r})"
    return f"{encoding_dict.get('name')!r} ({', '.join(f'{k}={v}' for k, v in sorted(settings.items()))})"
