"""The dataset's record of itself: input fingerprint, train/valid split rule and `manifest.json`.

The fingerprint covers what decides the output (each input file's resolved path, size and
mtime, the encoding's full JSON, the validation fraction, the dataset format version), so an
unchanged fingerprint means a previous result can be reused without parsing anything.

The split is keyed on file content (sha1), never on order or path: adding, removing or renaming
files never moves another file between train and valid.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from melodygen import __version__
from melodygen.dataset.shards import DATASET_FORMAT

FORMAT_VERSION = 1
SPLIT_BUCKETS = 1000
SPLIT_RULE = f"valid if int(sha1[:8], 16) % {SPLIT_BUCKETS} < round(val_fraction * {SPLIT_BUCKETS})"


def split_of(sha1: str, val_fraction: float) -> str:
    """'valid' or 'train' for a file with content hash `sha1` (hex)."""
    return "valid" if int(sha1[:8], 16) % SPLIT_BUCKETS < round(val_fraction * SPLIT_BUCKETS) else "train"


def input_fingerprint(files: list[Path], encoding_dict: dict, val_fraction: float) -> str:
    """sha1 over the file list with sizes and mtimes, the encoding and the split settings."""
    stats = []
    for path in files:
        st = os.stat(path)
        stats.append([str(path), st.st_size, st.st_mtime_ns])
    blob = json.dumps({"files": stats, "encoding": encoding_dict, "val_fraction": val_fraction,
                       "format_version": FORMAT_VERSION}, sort_keys=True)
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
        "files": {"found": files_found, "used": len(pieces), "skipped": len(skipped), "from_previous_build": files_from_previous,
                  "skipped_by_reason": count_reasons(skipped)},
        "splits": {split: _split_totals([p for p in pieces if p["split"] == split]) for split in ("train", "valid")},
        "totals": totals,
        "seconds_taken": seconds,
        # a rate only when every file was parsed in this build
        "notes_per_second": totals["notes"] / seconds if seconds > 0 and not files_from_previous else None,
        "pieces": pieces, "skipped": skipped,
    }


def count_reasons(skipped: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in skipped:
        counts[entry["reason"]] = counts.get(entry["reason"], 0) + 1
    return dict(sorted(counts.items()))


def _split_totals(pieces: list[dict]) -> dict:
    """Pieces, ids (BOS and EOS included), notes and hours of music of `pieces`."""
    return {"pieces": len(pieces), "tokens": sum(p["ids"] + 2 for p in pieces),
            "notes": sum(p["notes"] for p in pieces), "hours": sum(p["seconds"] for p in pieces) / 3600.0}


def write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=1) + "\n", encoding="utf-8")
