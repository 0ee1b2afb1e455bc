"""Reading and encoding many MIDI files, in parallel worker processes, never failing on one file.

`encode_file` turns one path into a `FileResult`: the ids, or the reason the file is skipped
(`unreadable`, `no usable music`, or `error` for an unexpected failure of a reader or encoder,
kept apart so such bugs stay visible in the summary). `encode_files` runs it over a list of
paths with a `ProcessPoolExecutor` (results in input order) and a tqdm progress bar.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from melodygen.errors import MidiReadError, NoUsableMusicError

UNREADABLE, NO_MUSIC, ERROR = "unreadable", "no usable music", "error"


@dataclass(frozen=True, slots=True)
class FileResult:
    """What became of one file: `ids` (uint16, no BOS/EOS) or a skip `reason` with its `detail`."""

    path: str
    ids: np.ndarray | None
    notes: int = 0           # notes read from the file, all tracks
    seconds: float = 0.0     # length of the music
    reason: str | None = None
    detail: str = ""


def encode_file(path: str | Path, encoding) -> FileResult:
    """Read and encode one file; every failure becomes a skip reason, never an exception."""
    from melodygen.midi_io import read_score

    path = str(path)
    try:
        score = read_score(path)
    except MidiReadError as exc:
        return FileResult(path, None, reason=UNREADABLE, detail=_without_path(path, exc))
    except Exception as exc:  # noqa: BLE001 - one odd file must not end a run over thousands
        return FileResult(path, None, reason=ERROR, detail=f"reading: {type(exc).__name__}: {exc}")
    notes, seconds = score.note_count(), float(score.end_time)
    try:
        ids = encoding.encode(score)
    except NoUsableMusicError as exc:
        return FileResult(path, None, notes, seconds, NO_MUSIC, _without_path(path, exc))
    except Exception as exc:  # noqa: BLE001 - as above
        return FileResult(path, None, notes, seconds, ERROR, f"encoding: {type(exc).__name__}: {exc}")
    if len(ids) == 0:
        return FileResult(path, None, notes, seconds, NO_MUSIC, "the encoding kept no events")
    return FileResult(path, np.asarray(ids, dtype=np.uint16), notes, seconds)


def _without_path(path: str, exc: Exception) -> str:
    """The message without a leading "PATH: " (the path is recorded beside it)."""
    message = str(exc)
    return message[len(path) + 2:] if message.startswith(f"{path}: ") else message


_worker_encoding = None  # set once per worker process by `_init_worker`


def _init_worker(encoding_dict: dict) -> None:
    from melodygen.encodings import encoding_from_dict

    global _worker_encoding
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _worker_encoding = encoding_from_dict(encoding_dict)


def _encode_in_worker(path: str) -> FileResult:
    return encode_file(path, _worker_encoding)


def default_workers() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def encode_files(paths: Sequence[str | Path], encoding, *, workers: int | None = None,
                 progress: bool = True) -> list[FileResult]:
    """`encode_file` over `paths`, in that order, across `workers` processes (1: in this process)."""
    paths = [str(p) for p in paths]
    workers = max(1, min(workers or default_workers(), len(paths)))
    bar = tqdm(total=len(paths), desc="reading MIDI", unit="file", disable=not progress, leave=False)
    with bar:
        if workers == 1:
            return [_tick(bar, encode_file(p, encoding)) for p in paths]
        chunksize = max(1, min(32, len(paths) // (workers * 8)))
        pool = ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(encoding.to_dict(),))
        try:
            results = [_tick(bar, r) for r in pool.map(_encode_in_worker, paths, chunksize=chunksize)]
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        return results


def _tick(bar: tqdm, result: FileResult) -> FileResult:
    bar.update()
    return result
