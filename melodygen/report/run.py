"""Read a training run folder for the report: its resolved config and `metrics.csv`.

The layout is the trainer's (`melodygen.training.rundir`): `config.toml` holds the resolved
config (else we take the `run_config` stored in `best.pt` / `last.pt`); `metrics.csv` has a
header row (step, train_loss, val_nll, val_ppl, val_acc, lr, tokens_per_s, elapsed_s) and
empty cells where a step had no validation, read here as None.
"""

from __future__ import annotations

import csv
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

from melodygen.errors import ReportError

METRICS_FILE = "metrics.csv"
CONFIG_FILE = "config.toml"
CHECKPOINTS = ("best.pt", "last.pt")

Metrics = dict[str, list[float | None]]


@dataclass(frozen=True)
class RunInfo:
    """A run folder's contents: `config` {section: {key: value}} (None if none found; `config_source`
    says which file it came from) and `metrics` {column: one value per row}."""

    path: Path
    config: dict | None
    config_source: str | None
    metrics: Metrics


def read_run(run_dir: Path) -> RunInfo:
    """Read `run_dir`; ReportError when it is not a folder or has neither metrics nor config."""
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: not a folder (expected a training run folder)")
    config, source = read_config(run_dir)
    metrics_path = run_dir / METRICS_FILE
    metrics = read_metrics(metrics_path) if metrics_path.is_file() else {}
    if config is None and not metrics:
        raise ReportError(f"{run_dir}: no {METRICS_FILE} and no config: not a melodygen training run folder")
    return RunInfo(path=run_dir, config=config, config_source=source, metrics=metrics)


def read_config(run_dir: Path) -> tuple[dict | None, str | None]:
    """(config dict, file name it came from), or (None, None) when the folder holds none."""
    path = run_dir / CONFIG_FILE
    if path.is_file():
        try:
            return tomllib.loads(path.read_text(encoding="utf-8")), CONFIG_FILE
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ReportError(f"{path}: unreadable config: {exc}") from None
    for name in CHECKPOINTS:
        if (run_dir / name).is_file():
            return _checkpoint_config(run_dir / name), f"{name} (run_config)"
    return None, None


def _checkpoint_config(path: Path) -> dict | None:
    from melodygen.checkpoint import load_unchecked  # a damaged file: CheckpointError naming it

    checkpoint = load_unchecked(path)
    config = checkpoint.get("run_config") if isinstance(checkpoint, dict) else None
    return config if isinstance(config, dict) else None


def read_metrics(path: Path) -> Metrics:
    """{column: values}; a cell that is not a number is a ReportError naming file, line, column."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            columns: Metrics = {name: [] for name in reader.fieldnames or []}
            for line, row in enumerate(reader, start=2):
                for name in columns:
                    columns[name].append(_number(row.get(name), path, line, name))
    except (UnicodeDecodeError, csv.Error) as exc:  # binary junk, NUL bytes
        raise ReportError(f"{path}: not a CSV text file ({exc})") from None
    return columns


def _number(cell: str | None, path: Path, line: int, column: str) -> float | None:
    if cell is None or cell.strip() == "":
        return None
    try:
        return float(cell)
    except ValueError:
        raise ReportError(f"{path}: line {line}, column {column}: not a number: {cell!r}") from None


def series(metrics: Metrics, key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of the rows where column `key` has a value."""
    steps, values = metrics.get("step"), metrics.get(key)
    if steps is None or values is None:
        return [], []
    pairs = [(s, v) for s, v in zip(steps, values) if s is not None and v is not None]
    return [s for s, _ in pairs], [v for _, v in pairs]


def evaluation_figures(metrics: Metrics) -> list[tuple[str, str]]:
    """(label, formatted value) pairs: best validation NLL and, at that step, perplexity and
    accuracy; then the last step, last training loss, elapsed time and training speed."""
    figures: list[tuple[str, str]] = []
    steps, nll = series(metrics, "val_nll")
    if nll:
        best = min(range(len(nll)), key=nll.__getitem__)
        row = metrics["step"].index(steps[best])
        figures.append(("best validation NLL", f"{nll[best]:.4f} nats/event (step {steps[best]:g})"))
        ppl = _at(metrics, "val_ppl", row)
        figures.append(("perplexity", f"{ppl if ppl is not None else math.exp(nll[best]):.3f}"))
        acc = _at(metrics, "val_acc", row)
        if acc is not None:
            figures.append(("accuracy", f"{100 * acc:.1f} %" if acc <= 1 else f"{acc:.1f} %"))
    for key, label, fmt in (("step", "steps", "{:g}"), ("train_loss", "last training loss", "{:.4f}"),
                            ("elapsed_s", "training time", None), ("tokens_per_s", "tokens/s", "{:,.0f}")):
        values = [v for v in metrics.get(key, []) if v is not None]
        if values:
            figures.append((label, _duration(values[-1]) if fmt is None else fmt.format(values[-1])))
    return figures


def _at(metrics: Metrics, key: str, row: int) -> float | None:
    values = metrics.get(key)
    return values[row] if values is not None else None


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{seconds:.1f} s"
