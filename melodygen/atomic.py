"""Atomic file writes: every output melodygen writes (MIDI, WAV, PNG, HTML, checkpoints, config,
encoding files) goes to a temp file in the target's folder, renamed over the target once
complete, so a crash or Ctrl-C never leaves a half-written file and never loses the old one.

A kill -9 (or a power cut) gives no chance to clean up, so work in progress is named after the
process doing it: `.NAME.KIND-PID-HEX` beside its target (`scratch`; KIND "tmp" for these temp
files, "partial"/"old" for `prepare`'s folders). `remove_leftovers` removes those whose process
is gone; the first write into a folder in each process does it for that folder's temp files.
Temporary folders in the system's temp folder (`scratch_folder`) are named and removed the same way.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from melodygen.errors import OutputError

_SCRATCH = re.compile(r"\.(?P<name>.+)\.(?P<kind>[a-z]+)-(?P<pid>[1-9][0-9]{0,8})-[0-9a-f]{8}")
_held: set[str] = set()  # names of this process's work in progress (see `_abandoned`)
_swept: set[str] = set()  # folders whose stale temp files this process has removed


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None,
                 errors: str | None = None, newline: str | None = None) -> Iterator[IO]:
    """Yields a file open for writing (`mode` "wb" or "w", text with `encoding`, `errors` and
    `newline` as for `open`); when the block ends without an exception, the file replaces
    `path`. The temp file is always removed (after a kill -9, by a later write: see above). An
    `OSError` while writing or renaming becomes an `OutputError` naming `path` (not the temp file)."""
    path = Path(path)
    folder = os.path.abspath(path.parent)
    if folder not in _swept:  # once per folder: a folder of 10,000 renders is listed once, not 10,000 times
        _swept.add(folder)
        remove_leftovers(path.parent, ("tmp",))
    # A unique name in the same folder, created with the usual permissions (mkstemp's are 0600).
    with scratch(path, "tmp") as tmp:
        try:
            with open(tmp, mode.replace("w", "x"), encoding=encoding, errors=errors, newline=newline) as file:
                yield file
            os.replace(tmp, path)
        except OSError as exc:
            raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None
        finally:
            tmp.unlink(missing_ok=True)


@contextmanager
def scratch(target: Path, kind: str) -> Iterator[Path]:
    """A new name beside `target` for this process's work in progress, `.NAME.KIND-PID-HEX`,
    held while the block runs (`remove_leftovers` leaves it alone); the caller creates it and
    removes it."""
    path = target.with_name(f".{target.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}")
    _held.add(path.name)
    try:
        yield path
    finally:
        _held.discard(path.name)


@contextmanager
def scratch_folder(kind: str) -> Iterator[Path]:
    """A new folder of this process's in the system's temp folder (`.melodygen.KIND-PID-HEX`),
    removed with what it holds when the block ends. Those of `kind` a killed process left there
    are removed first."""
    temp = Path(tempfile.gettempdir())
    remove_leftovers(temp, (kind,), "melodygen")
    with scratch(temp / "melodygen", kind) as folder:
        try:
            folder.mkdir()
        except OSError as exc:
            raise OutputError(f"{folder}: cannot create a temporary folder ({exc.strerror or exc})") from None
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def remove_leftovers(folder: Path, kinds: Collection[str], name: str | None = None) -> None:
    """Removes from `folder` the files and folders `scratch` named, of one of `kinds` (and of the
    target `name`, when given), whose process is gone: what a killed run left behind. Entries it
    cannot remove stay; it never raises."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        match = _SCRATCH.fullmatch(entry.name)
        if (match is None or match["kind"] not in kinds or name not in (None, match["name"])
                or not _abandoned(int(match["pid"]), entry.name)):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            pass  # not ours to remove after all (permissions), or gone already


def _abandoned(pid: int, name: str) -> bool:
    """Whether no live process is working on the leftover `name` that process `pid` made. Our
    own pid counts as gone unless this process holds the name: in a container each run may get
    the same pid. A live pid may be an unrelated process that reused it: then the leftover
    stays, which is the safe mistake. (A writer on another machine or in another pid namespace,
    sharing the folder, would look gone: its write then fails with an `OutputError`.)"""
    if pid == os.getpid():
        return name not in _held
    if os.name != "posix":
        return False  # no harmless way to ask about a pid (Windows' os.kill ends the process)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: alive, another user's
        return False
    return False
