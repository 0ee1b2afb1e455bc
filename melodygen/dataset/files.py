"""Reading MIDI files, one or thousands, never failing on one file: the one read-and-encode path.

`read_file` turns one path into a `FileResult`: the file's ids in an encoding (and its `Score`
when asked), or the reason it is skipped: `unreadable` (a `MidiReadError`), `no usable music`
(a `NoUsableMusicError`, or an encoding that kept no events), or `error` for an unexpected
failure of a reader or encoder, kept apart so such bugs stay visible. Every command that reads
MIDI goes through it: `prepare`, primers, `tokens`, `evaluate` on MIDI files, `stats`, `report`.
A caller handling one file the user named turns a skip back into that one-line error with
`FileResult.raise_if_skipped`. `map_files` runs a function over many paths in worker processes
(results in input order) with a progress bar; Ctrl-C is the parent's to handle.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

import numpy as np
from tqdm import tqdm

from melodygen.errors import MelodygenError, MidiReadError, NoUsableMusicError
from melodygen.notes import Score

UNREADABLE, NO_MUSIC, ERROR = "unreadable", "no usable music", "error"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class FileResult:
    """What became of one file: its `ids` (uint16, no BOS/EOS; None without an encoding) and
    `score` (when kept), or a skip `reason` with its `detail` (the path left out)."""

    path: str
    ids: np.ndarray | None = None
    notes: int = 0           # notes read from the file, all tracks
    seconds: float = 0.0     # length of the music
    reason: str | None = None
    detail: str = ""
    score: Score | None = None

    @property
    def skipped(self) -> bool:
        return self.reason is not None

    def why(self, failure: str = "") -> str:
        """Why the file was skipped: `DETAIL`, or for a file without usable music
        `FAILURE (DETAIL)` when a `failure` ("no usable primer") is given."""
        return f"{failure} ({self.detail})" if self.reason == NO_MUSIC and failure else self.detail

    def message(self, failure: str = "") -> str:
        """The skip as one line naming the file once: `PATH: ` + `why(failure)`."""
        return f"{self.path}: {self.why(failure)}"

    def raise_if_skipped(self, failure: str) -> FileResult:
        """This result, or its skip raised as `MidiReadError` / `NoUsableMusicError` /
        `MelodygenError` (see `message`)."""
        if self.reason == UNREADABLE:
            raise MidiReadError(self.message())
        if self.reason == NO_MUSIC:
            raise NoUsableMusicError(self.message(failure))
        if self.reason == ERROR:
            raise MelodygenError(self.message())
        return self


def read_file(path: str | Path, encoding=None, *, keep_score: bool = False) -> FileResult:
    """Read one file and, given an `encoding`, encode it; every failure becomes a skip reason,
    never an exception."""
    from melodygen.midi_io import read_score

    path = str(path)
    try:
        score = read_score(path, include_drums=encoding is not None and encoding.reads_drums)
    except MidiReadError as exc:
        return FileResult(path, reason=UNREADABLE, detail=_without_path(path, exc))
    except Exception as exc:  # noqa: BLE001 - one odd file must not end a run over thousands
        return FileResult(path, reason=ERROR, detail=f"reading: {type(exc).__name__}: {exc}")
    notes, seconds, kept = score.note_count(), float(score.end_time), score if keep_score else None
    if encoding is None:
        return FileResult(path, None, notes, seconds, score=kept)
    try:
        ids = encoding.encode(score)
    except NoUsableMusicError as exc:
        return FileResult(path, None, notes, seconds, NO_MUSIC, _without_path(path, exc), kept)
    except Exception as exc:  # noqa: BLE001 - as above
        return FileResult(path, None, notes, seconds, ERROR, f"encoding: {type(exc).__name__}: {exc}", kept)
    if len(ids) == 0:
        return FileResult(path, None, notes, seconds, NO_MUSIC, "the encoding kept no events", kept)
    return FileResult(path, np.asarray(ids, dtype=np.uint16), notes, seconds, score=kept)


def _without_path(path: str, exc: Exception) -> str:
    """The message without a leading "PATH: " (the path is recorded beside it)."""
    return str(exc).removeprefix(f"{path}: ")


def read_files(paths: Sequence[str | Path], encoding=None, *, workers: int | None = None,
               progress: bool = True) -> list[FileResult]:
    """`read_file` over `paths` (scores not kept), in that order, across `workers` processes."""
    return map_files(partial(read_file, encoding=encoding), paths, workers=workers, progress=progress)


def default_workers() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def map_files(fn: Callable[[str], T], paths: Sequence[str | Path], *, workers: int | None = None,
              progress: bool = True, desc: str = "reading MIDI") -> list[T]:
    """`fn(path)` for each of `paths` (as str), in order, across `workers` processes (None: every
    CPU; 1: in this process). `fn` must pickle (a module-level function or a `partial` of one)."""
    paths = [str(p) for p in paths]
    workers = max(1, min(workers or default_workers(), len(paths)))
    bar = tqdm(total=len(paths), desc=desc, unit="file", disable=not progress, leave=False)
    with bar:
        if workers == 1:
            return [_tick(bar, fn(p)) for p in paths]
        chunksize = max(1, min(32, len(paths) // (workers * 8)))
        pool = ProcessPoolExecutor(workers, initializer=_ignore_sigint)
        try:
            results = [_tick(bar, r) for r in pool.map(fn, paths, chunksize=chunksize)]
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        return results


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle


def _tick(bar: tqdm, result: T) -> T:
    bar.update()
    return result
