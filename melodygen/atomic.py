"""Atomic file writes: every output melodygen writes (MIDI, WAV, PNG, HTML, checkpoints, config,
encoding files) goes to a temp file in the target's folder, renamed over the target once
complete, so a crash or Ctrl-C never leaves a half-written file and never loses the old one."""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

from melodygen.errors import OutputError


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None,
                 errors: str | None = None) -> Iterator[IO]:
    """Yields a file open for writing (`mode` "wb" or "w", text with `encoding` and `errors`
    as for `open`); when the block ends without an
    exception, the file replaces `path`. The temp file is always removed. An `OSError` while
    writing or renaming becomes an `OutputError` naming `path` (not the temp file)."""
    path = Path(path)
    # A unique name in the same folder, created with the usual permissions (mkstemp's are 0600).
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, mode.replace("w", "x"), encoding=encoding, errors=errors) as file:
            yield file
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    finally:
        tmp.unlink(missing_ok=True)
