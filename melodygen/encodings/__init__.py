"""Event encodings: the registry, and building an encoding from a name or its saved JSON.

    enc = get_encoding("melody", min_pitch=48, max_pitch=83)
    ids = enc.encode(score)                   # np.ndarray[uint16], no BOS/EOS
    notes = enc.decode(ids)
    same = encoding_from_dict(enc.to_dict())  # what datasets and checkpoints store
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from melodygen.encodings.base import Encoding
from melodygen.encodings.melody import MelodyEncoding, MelodySettings
from melodygen.encodings.multitrack import MultitrackEncoding, MultitrackSettings
from melodygen.encodings.performance import PerformanceEncoding, PerformanceSettings
from melodygen.encodings.vocab import BOS_ID, EOS_ID, PAD_ID, EventRange, Vocabulary
from melodygen.errors import ConfigError, EncodingError

ENCODINGS: dict[str, type[Encoding]] = {
    "melody": MelodyEncoding, "performance": PerformanceEncoding, "multitrack": MultitrackEncoding}

__all__ = ["BOS_ID", "ENCODINGS", "EOS_ID", "PAD_ID", "Encoding", "EventRange", "MelodyEncoding",
           "MelodySettings", "MultitrackEncoding", "MultitrackSettings", "PerformanceEncoding", "PerformanceSettings", "Vocabulary",
           "encoding_from_dict", "get_encoding", "load_encoding"]


def get_encoding(name: str, **settings: Any) -> Encoding:
    """The encoding `name` with `settings`; unknown name or setting -> `ConfigError`."""
    if name not in ENCODINGS:
        raise ConfigError(f"unknown encoding {name!r}; choose one of {', '.join(ENCODINGS)}")
    return ENCODINGS[name].from_settings(settings)


def encoding_from_dict(d: dict[str, Any]) -> Encoding:
    """Rebuild an encoding from `Encoding.to_dict()` output, checking its token list."""
    name = d.get("name") if isinstance(d, dict) else None
    if name not in ENCODINGS:
        raise EncodingError(
            f"unknown encoding {name!r} in stored encoding; known: {', '.join(ENCODINGS)}")
    return ENCODINGS[name].from_dict(d)


def load_encoding(path: str | Path) -> Encoding:
    """Read an encoding saved with `Encoding.save_json`; a bad file -> `EncodingError`."""
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EncodingError(f"{path}: cannot read encoding JSON ({exc})") from None
    try:
        return encoding_from_dict(d)
    except EncodingError as exc:
        raise EncodingError(f"{path}: {exc}") from None

