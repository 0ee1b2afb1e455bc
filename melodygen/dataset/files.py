"""Reading MIDI files, one or thousands, never failing on one file: the one read-and-encode path.

`read_file` turns one path into a `FileResult`: the file's ids in an encoding (and its `Score`
when asked), or the reason it is skipped: `unreadable` (a `MidiReadError`), `over the length
ceiling` (a `MusicTooLongError`: more music than `limits` allows), `no usable music`
(a `NoUsableMusicError`, or an encoding that kept no events), or `error` for an unexpected
failure of a reader or encoder, kept apart so such bugs stay visible. Every command that reads
MIDI goes through it: `prepare`, primers, `tokens`, `evaluate` on MIDI files, `stats`, `report`.
A caller handling one file the user named turns a skip back into that one-line error with
`FileResult.raise_if_skipped`. `map_files` runs a function over many paths in worker processes
(results in input order) with a progress bar; Ctrl-C is the parent's to handle, and a worker
exits when its parent dies, even by kill -9.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

import numpy as np
from tqdm import tqdm

from melodygen.errors import ConfigError, MelodygenError, MidiReadError, MusicTooLongError, NoUsableMusicError
from melodygen.notes import Score

UNREADABLE, NO_MUSIC, ERROR = "unreadable", "no usable music", "error"
TOO_LONG = "over the length ceiling"  # not cached by `prepare`: the ceiling is a setting
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
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
        if self.reason == TOO_LONG:
            raise MusicTooLongError(self.message())
        if self.reason == NO_MUSIC:
            raise NoUsableMusicError(self.message(failure))
        if self.reason == ERROR:
            raise MelodygenError(self.message())
        return self


def read_file(path: str | Path, encoding=None, *, keep_score: bool = False, drums: bool = False) -> FileResult:
    """Read one file and, given an `encoding`, encode it; every failure becomes a skip reason,
    never an exception. Drum tracks are read where the encoding reads them (without one, where
    `drums` asks)."""
    from melodygen.midi_io import read_score

    path = str(path)
    try:
        score = read_score(path, include_drums=encoding.reads_drums if encoding is not None else drums)
    except MusicTooLongError as exc:
        return FileResult(path, reason=TOO_LONG, detail=_without_path(path, exc))
    except MidiReadError as exc:
        return FileResult(path, reason=UNREADABLE, detail=_without_path(path, exc))
    except ConfigError:
        raise  # a bad ceiling in the environment is the run's problem, not this file's
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
        pool = ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(os.getpid(),))
        try:
            results = [_tick(bar, r) for r in pool.map(fn, paths, chunksize=chunksize)]
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        return results


def _init_worker(main_pid: int) -> None:
    """Ctrl-C is the parent's to handle; and the worker ends with its parent (`main_pid`, or the
    fork server between them): a worker whose parent was killed would wait for work forever."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if _set_parent_death_signal():
        try:
            os.kill(main_pid, 0)  # it may have died before the signal was set
        except ProcessLookupError:
            os._exit(1)
    else:
        threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True).start()


def _set_parent_death_signal() -> bool:
    """Linux: the kernel sends this process SIGKILL when the thread that started it ends
    (prctl PR_SET_PDEATHSIG; `map_files` runs its pool in one thread until it is done).
    False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):  # no C library to load, or no prctl in it
        return False


def _exit_when_orphaned(parent: int) -> None:
    """Elsewhere, a watcher thread: a process whose parent dies gets another one."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _tick(bar: tqdm, result: T) -> T:
    bar.update()
    return result
