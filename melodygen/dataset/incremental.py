"""Incremental rebuilds: what the dataset already in `out_dir` knows about files, by content hash.

When `prepare` rebuilds a dataset whose inputs changed (files added, removed, renamed, touched),
a file whose content was encoded by the previous build with the very same encoding (its whole
`to_dict()`, melodygen version included) is not parsed again: its ids come from the previous
shards. Files skipped as unreadable or without usable music stay skipped; files that failed with
an unexpected `error` are retried, as that may have been a bug fixed since.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from melodygen.dataset.files import NO_MUSIC, UNREADABLE, FileResult
from melodygen.dataset.manifest import FORMAT_VERSION, check_dataset, read_encoding_dict
from melodygen.dataset.shards import SPLITS, TokenDataset
from melodygen.errors import DatasetError


def earlier_results(out_dir: Path, encoding_dict: dict) -> dict[str, FileResult]:
    """{sha1: result} of the files the dataset in `out_dir` holds or skipped for good; {} when
    there is no such dataset or it was made with another encoding, melodygen version or dataset
    format version (what the reader gives changed)."""
    try:
        manifest = check_dataset(out_dir, encoding_dict)
        if read_encoding_dict(out_dir) != encoding_dict or manifest.get("format_version") != FORMAT_VERSION:
            return {}  # ids of another encoder or reader
        splits = {split: TokenDataset(out_dir, split) for split in SPLITS}
    except DatasetError:
        return {}
    known = {}
    for piece in manifest["pieces"]:
        ids = np.array(splits[piece["split"]].piece(piece["index"])[1:-1])  # without BOS/EOS
        known[piece["sha1"]] = FileResult(piece["path"], ids, piece["notes"], piece["seconds"])
    for entry in manifest["skipped"]:
        if entry.get("sha1") and entry["reason"] in (UNREADABLE, NO_MUSIC):
            known[entry["sha1"]] = FileResult(entry["path"], None, reason=entry["reason"], detail=entry["detail"])
    return known
