"""Event encodings: the registry, and building an encoding from a name or its saved JSON.

    enc = get_encoding("melody", min_pitch=48, max_pitch=83)
    ids = enc.encode(score)                   # np.ndarray[uint16], no BOS/EOS
    notes = enc.decode(ids)
    same = encoding_from_dict(enc.to_dict())  # what datasets and checkpoints store

A stored encoding also records the version of the stream its encoder wrote
(`Encoding.stream_version`); `stream_versions` says which it was and which this melodygen writes,
so that datasets and checkpoints can refuse a stale one in their own words.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from melodygen.encodings.base import Encoding, stored_stream_version
from melodygen.encodings.melody import MelodyEncoding, MelodySettings
from melodygen.encodings.multitrack import MultitrackEncoding, MultitrackSettings
from melodygen.encodings.performance import PerformanceEncoding, PerformanceSettings
from melodygen.encodings.vocab import BOS_ID, EOS_ID, PAD_ID, EventRange, Vocabulary
from melodygen.encodings.voices import VoicesEncoding, VoicesSettings
from melodygen.errors import ConfigError, EncodingError

ENCODINGS: dict[str, type[Encoding]] = {
    "melody": MelodyEncoding, "performance": PerformanceEncoding, "multitrack": MultitrackEncoding,
    "voices": VoicesEncoding}

__all__ = ["BOS_ID", "ENCODINGS", "EOS_ID", "PAD_ID", "Encoding", "EventRange", "MelodyEncoding",
           "MelodySettings", "MultitrackEncoding", "MultitrackSettings", "PerformanceEncoding", "PerformanceSettings",
           "Vocabulary", "VoicesEncoding", "VoicesSettings", "encoding_from_dict", "get_encoding", "load_encoding",
           "stream_versions"]


def get_encoding(name: str, **settings: Any) -> Encoding:
    """The encoding `name` with `settings`; unknown name or setting -> `ConfigError`."""
    if name not in ENCODINGS:
        raise ConfigError(f"unknown encoding {name!r}; choose one of {', '.join(ENCODINGS)}")
    return ENCODINGS[name].from_settings(settings)


def encoding_from_dict(d: dict[str, Any]) -> Encoding:
    """Rebuild an encoding from `Encoding.to_dict()` output, checking its stream version and
    token list."""
    return _stored_class(d).from_dict(d)


def stream_versions(d: dict[str, Any]) -> tuple[int, int]:
    """(the stream version the stored encoding `d` was written with, the one this melodygen's
    encoder of that name writes); an unknown name or a damaged version -> `EncodingError`."""
    current = _stored_class(d).stream_version
    return stored_stream_version(d), current


def _stored_class(d: dict[str, Any]) -> type[Encoding]:
    name = d.get("name") if isinstance(d, dict) else None
    if name not in ENCODINGS:
        raise EncodingError(
            f"unknown encoding {name!r} in stored encoding; known: {', '.join(ENCODINGS)}")
    return ENCODINGS[name]


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

