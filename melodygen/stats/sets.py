"""Statistics of a set of MIDI files: per-file metrics, their mean/std and pooled histograms.

Files are read with `dataset.files` (optionally in worker processes), either as they are
(`describe_set`) or as an encoding sees them (`describe_encoded_set`: encoded, cut, decoded).
A file that cannot be read, or holds no non-drum notes, is skipped and listed with its reason;
only a set with no usable file at all is an error. The result is a plain JSON-ready dict (see `describe_set`)
that `compare.compare_sets`, the CLI and the HTML report share.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np

from melodygen.dataset.files import map_files, read_file
from melodygen.errors import NoUsableMusicError
from melodygen.notes import Score
from melodygen.stats.metrics import HISTOGRAM_METRICS, SCALAR_METRICS, ScoreStats, score_stats


def describe_set(paths: Sequence[str | Path], *, workers: int = 1, progress: bool = False) -> dict:
    """Statistics of the MIDI files `paths` as they are: `describe_results` of their
    `file_stats`. Raises NoUsableMusicError when no file is usable."""
    return describe_results(map_files(file_stats, paths, workers=workers, progress=progress))


def describe_encoded_set(paths: Sequence[str | Path], encoding, *, max_events: int | None = None,
                         workers: int = 1, progress: bool = False) -> dict:
    """Statistics of the MIDI files `paths` as `encoding` sees them: each file is encoded, cut to
    its first `max_events` events (None: all), decoded at 120 qpm and measured (`encoded_file_stats`).

    Comparing a model's samples with such a set blames the model only for what its encoding can
    express: through a melody encoding a folk tune loses its chord track, as every sample does.
    A file the encoding cannot use is skipped with the encoding's reason."""
    stats_of = partial(encoded_file_stats, encoding=encoding, max_events=max_events)
    return describe_results(map_files(stats_of, paths, workers=workers, progress=progress))


def describe_results(results: Sequence[tuple[str, ScoreStats | None, str | None]]) -> dict:
    """A set's statistics from (name, stats, None) / (name, None, skip reason) entries, as a
    JSON-ready dict:

    {"count": files used, "skipped": [{"path", "reason"}],
     "per_file": [{"path", "scalars": {metric: value}, "tracks": [per-track dict]}],
     "scalars": {metric: {"mean", "std", "min", "max"}},          # std: population (ddof=0)
     "histograms": {metric: {"labels", "counts", "probs"}}}      # pooled over the files

    Metric names and meanings: `metrics.SCALAR_METRICS`, `metrics.HISTOGRAM_METRICS`.
    Raises NoUsableMusicError when no entry has stats.
    """
    used = [(path, stats) for path, stats, _ in results if stats is not None]
    skipped = [{"path": path, "reason": reason} for path, stats, reason in results if stats is None]
    if not used:
        first = f"; first: {skipped[0]['path']}: {skipped[0]['reason']}" if skipped else ""
        raise NoUsableMusicError(f"no readable MIDI file with notes among {len(results)} file(s){first}")
    return {
        "count": len(used),
        "skipped": skipped,
        "per_file": [{"path": path, "scalars": stats.scalars, "tracks": list(stats.tracks)} for path, stats in used],
        "scalars": {name: _summary([s.scalars[name] for _, s in used]) for name in SCALAR_METRICS},
        "histograms": {
            name: _pooled([s.histograms[name] for _, s in used], labels)
            for name, labels in HISTOGRAM_METRICS.items()
        },
    }


def file_stats(path: str) -> tuple[str, ScoreStats | None, str | None]:
    """(path, stats, None) for a usable file, (path, None, reason) for one to skip."""
    score, reason = measured_score(path)
    return _stats_of(path, score) if score is not None else (path, None, reason)


def encoded_file_stats(path: str, encoding, max_events: int | None = None) -> tuple[str, ScoreStats | None, str | None]:
    """`file_stats` of the file's first `max_events` events in `encoding`, decoded to notes."""
    score, reason = measured_score(path, encoding, max_events)
    return _stats_of(path, score) if score is not None else (path, None, reason)


def measured_score(path: str, encoding=None, max_events: int | None = None) -> tuple[Score | None, str | None]:
    """(the score that is measured, None) or (None, why the file is skipped): the file as it is
    without `encoding`, else its first `max_events` events in `encoding` decoded at 120 qpm."""
    read = read_file(path, encoding, keep_score=encoding is None)
    if read.skipped:
        return None, read.why(f"nothing to encode in the {encoding.name} encoding" if encoding else "")
    if encoding is None:
        return read.score, None
    score = encoding.decode_score([int(i) for i in read.ids[:max_events]], qpm=120.0)
    score.source = path
    return score, None


def _stats_of(path: str, score: Score) -> tuple[str, ScoreStats | None, str | None]:
    try:
        return path, score_stats(score), None
    except NoUsableMusicError as exc:
        return path, None, str(exc).removeprefix(f"{path}: ")


def _summary(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std()), "min": float(arr.min()), "max": float(arr.max())}


def _pooled(histograms: list[np.ndarray], labels: Sequence[str]) -> dict:
    counts = np.sum(histograms, axis=0)
    total = counts.sum()
    probs = counts / total if total > 0 else np.zeros_like(counts)
    return {"labels": list(labels), "counts": counts.tolist(), "probs": probs.tolist()}
