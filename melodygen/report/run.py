"""Read a training run folder for the report: its config, metrics and stored checkpoint.

The folder's layout and metrics.csv belong to the trainer (`melodygen.training.rundir`), the
config's TOML to `melodygen.config`; here they are gathered once. The config is `config.toml`,
else the `run_config` stored in the run's checkpoint (best.pt, else last.pt), which is loaded
at most once, when first needed (`RunInfo.checkpoint`: the run's config or encoding).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from melodygen.errors import ConfigError, ReportError
from melodygen.training.rundir import Metrics, RunPaths, read_metrics


@dataclass(frozen=True)
class RunInfo:
    """A run folder's contents: `config` {section: {key: value}} (None if none found; `config_source`
    says which file it came from) and `metrics` {column: one value per row}."""

    path: Path
    config: dict | None
    config_source: str | None
    metrics: Metrics

    @cached_property
    def checkpoint(self) -> tuple[dict | None, Path | None]:
        """(the first stored checkpoint's dict as loaded, unchecked; its path), (None, None) when
        the run has none; loaded on first use, once."""
        return _first_checkpoint(RunPaths(self.path))


def _first_checkpoint(paths: RunPaths) -> tuple[dict | None, Path | None]:
    from melodygen.checkpoint import load_unchecked  # a damaged file: CheckpointError naming it

    path = next((p for p in paths.checkpoints if p.is_file()), None)
    loaded = load_unchecked(path) if path else None
    return (loaded, path) if isinstance(loaded, dict) else (None, path)


def read_run(run_dir: Path) -> RunInfo:
    """Read `run_dir`; ReportError when it is not a folder or has neither metrics nor config."""
    from melodygen.config import read_config_dict

    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: not a folder (expected a training run folder)")
    paths = RunPaths(run_dir)
    metrics = read_metrics(paths.metrics) if paths.metrics.is_file() else {}
    if paths.config.is_file():
        try:
            return RunInfo(run_dir, read_config_dict(paths.config), paths.config.name, metrics)
        except ConfigError as exc:
            raise ReportError(str(exc)) from None
    run = RunInfo(run_dir, None, None, metrics)
    checkpoint, path = run.checkpoint
    if checkpoint is not None and isinstance(checkpoint.get("run_config"), dict):
        found = RunInfo(run_dir, checkpoint["run_config"], f"{path.name} (run_config)", metrics)
        found.__dict__["checkpoint"] = run.checkpoint  # the cached_property's slot: loaded once
        return found
    if not metrics:
        raise ReportError(f"{run_dir}: no {paths.metrics.name} and no config: not a melodygen training run folder")
    return run


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
