"""The run folder: where the resolved config, metrics.csv and the checkpoints go. This module
owns its layout and metrics.csv, written (`MetricsLog`) and read back (`read_metrics`).

    RUN/config.toml   the resolved run config (reusable: `--config RUN/config.toml`)
    RUN/metrics.csv   step, train_loss, val_nll, val_ppl, val_acc, lr, tokens_per_s, elapsed_s
    RUN/best.pt       the checkpoint with the best validation NLL so far
    RUN/last.pt       the latest checkpoint (every validation, the end, Ctrl-C)

A folder that already holds a run is never overwritten by accident: continue it with
`--resume`, replace it with `--overwrite`, or pick another `--out`.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from melodygen.atomic import atomic_write
from melodygen.dataset.manifest import MANIFEST
from melodygen.errors import CheckpointError, ConfigError, RunFolderError

COLUMNS = ("step", "train_loss", "val_nll", "val_ppl", "val_acc", "lr", "tokens_per_s", "elapsed_s")


@dataclass(frozen=True)
class RunPaths:
    """The files of a run folder (`root`), by what they hold."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.csv"

    @property
    def best(self) -> Path:
        return self.root / "best.pt"

    @property
    def last(self) -> Path:
        return self.root / "last.pt"

    @property
    def checkpoints(self) -> tuple[Path, Path]:
        """Where a run's stored config and encoding are looked for: best.pt, then last.pt."""
        return self.best, self.last


def check_run_dir(root: str | Path, resume: bool, overwrite: bool = False) -> RunPaths:
    """The paths of a run folder, after checking it fits the request (nothing is written).
    `overwrite` lets a new run replace the one in the folder (see `clear_old_run`)."""
    paths = RunPaths(Path(root))
    if paths.root.exists() and not paths.root.is_dir():
        raise ConfigError(f"{paths.root}: exists and is not a folder; choose another --out")
    if (paths.root / MANIFEST).is_file():  # a later `prepare` there would replace the run
        raise ConfigError(f"{paths.root}: is a prepared dataset; choose another --out for the run")
    if resume and overwrite:
        raise ConfigError("--resume continues a run and --overwrite replaces it: choose one")
    if resume and not paths.last.is_file():
        raise CheckpointError(f"{paths.last}: no checkpoint to resume from; run without --resume")
    if not (resume or overwrite) and (paths.last.exists() or paths.best.exists()):
        raise ConfigError(f"{paths.root}: already holds a run (last.pt/best.pt); continue it with "
                          "--resume, replace it with --overwrite, or choose another --out")
    return paths


def clear_old_run(paths: RunPaths) -> None:
    """Removes an earlier run's checkpoints, so none outlives the run that replaces it."""
    for path in (paths.best, paths.last):
        path.unlink(missing_ok=True)


class MetricsLog:
    """Appends rows to metrics.csv; opened once, flushed at each write (a write happens every
    `log_every` steps, never per step). On resume, rows past the resumed step are dropped: the
    file is rewritten atomically, so a run killed right then keeps its history."""

    def __init__(self, path: Path, resume_step: int | None):
        existing = _rows_up_to(path, resume_step) if resume_step is not None else []
        with atomic_write(path, "w", encoding="utf-8", newline="") as file:
            csv.writer(file).writerows([COLUMNS, *existing])
        self._file = path.open("a", newline="", encoding="utf-8")
        self._writer = csv.writer(self._file)

    def write(self, **values) -> None:
        self._writer.writerow([_cell(values.get(c)) for c in COLUMNS])
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def _rows_up_to(path: Path, step: int) -> list[list[str]]:
    if not path.is_file():
        return []
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))[1:]
    except (UnicodeDecodeError, csv.Error) as exc:  # resuming rewrites it: do not lose it silently
        raise RunFolderError(f"{path}: not a CSV text file ({exc}); move it away to resume, "
                             "a new one will be started") from None
    return [r for r in rows if r and r[0].isdigit() and int(r[0]) <= step]


Metrics = dict[str, list[float | None]]


def read_metrics(path: Path) -> Metrics:
    """{column: one value per row}, None where a cell is empty (a step without validation);
    a cell that is not a number is a `RunFolderError` naming file, line and column."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            columns: Metrics = {name: [] for name in reader.fieldnames or []}
            for line, row in enumerate(reader, start=2):
                for name in columns:
                    columns[name].append(_number(row.get(name), path, line, name))
    except (UnicodeDecodeError, csv.Error) as exc:  # binary junk, NUL bytes
        raise RunFolderError(f"{path}: not a CSV text file ({exc})") from None
    return columns


def _number(cell: str | None, path: Path, line: int, column: str) -> float | None:
    if cell is None or cell.strip() == "":
        return None
    try:
        return float(cell)
    except ValueError:
        raise RunFolderError(f"{path}: line {line}, column {column}: not a number: {cell!r}") from None
