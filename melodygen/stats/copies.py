"""The copy check of MIDI files against a training set: per file, the longest stretch also found
in a training piece (exactly and transposed, in events and bars, with its source), a summary over
the set, and the lines `sample`, `stats` and `report` show.

The training set is a prepared dataset folder, or the one a checkpoint's run trained on (its run
config's `data.dataset`, else the cache folder `melodygen train` prepared its sources into:
`dataset.runs.prepared_dir`). A run trained on bundled corpora only (the bundled models) has
them prepared there on first use, a few seconds once. Where the folder is gone otherwise, the
check is skipped with a one-line note, never an error. The lookup itself and its index file are `dataset.copies`'.
`sample`'s check (`check_pieces`, `piece_warnings`) runs over the pieces in memory and judges
only the music the model wrote: what the user gave (each `Piece.given`: a primer, the given
tracks of `--accompany`, the bars outside `--infill A-B`) is masked out of each piece's ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from melodygen.dataset.copies import CopyCheck, CopyIndex
from melodygen.errors import MelodygenError

DEFAULT_MAX_COPY_BARS = 4.0  # `sample` warns about a piece copying more than this


@dataclass(frozen=True)
class TrainingSet:
    """The copy index of a training set (None when it cannot be found) and, then, why."""

    index: CopyIndex | None
    note: str | None = None


def training_set(source: str | Path) -> TrainingSet:
    """The training set named by `source`: a prepared dataset folder (checked with its own
    encoding) or a checkpoint file or bundled model name (the dataset its run trained on, read
    with its encoding). A
    dataset folder that is not one raises `DatasetError`; a checkpoint whose data is gone gives
    a `TrainingSet` with only a note."""
    from melodygen.dataset.manifest import read_manifest

    source = Path(source)
    if source.is_dir():
        read_manifest(source)  # a clear error for a folder that is not a dataset
        return TrainingSet(CopyIndex.open(source))
    from melodygen.checkpoint import load, resolve_checkpoint
    from melodygen.encodings import encoding_from_dict

    ckpt = load(resolve_checkpoint(source))  # a file, or a bundled model's name
    return run_training_set(ckpt["run_config"], encoding_from_dict(ckpt["encoding"]), str(source))


def run_training_set(run_config: dict, encoding, origin: str) -> TrainingSet:
    """The training set of a run from its resolved config and encoding; `origin` names the
    run or checkpoint in the note given when the data cannot be found."""
    from melodygen.config import config_from_dict
    from melodygen.dataset.manifest import check_dataset
    from melodygen.dataset.runs import run_dataset_dir

    try:
        directory = run_dataset_dir(config_from_dict(run_config, origin), encoding)
    except MelodygenError as exc:
        return TrainingSet(None, f"copy check skipped: the training data of {origin} is not found ({exc})")
    if not directory.is_dir():
        return TrainingSet(None, f"copy check skipped: the training data of {origin} is not at {directory} "
                                 "(prepare it there to check samples against it)")
    try:
        check_dataset(directory, encoding.to_dict())
        # The folder is the run's (a path stored in the checkpoint): read, never written.
        return TrainingSet(CopyIndex.open(directory, encoding, save=False))
    except MelodygenError as exc:
        return TrainingSet(None, f"copy check skipped: the training data of {origin} is not usable ({exc})")


def check_files(paths: Sequence[str | Path], index: CopyIndex, given: Sequence | None = None) -> list[dict]:
    """Per file, as `index`'s encoding reads it: {"path", "check": CopyCheck} or {"path",
    "skipped": reason}. `given`, one per path (None: all the file is new): what the user gave
    of a generated file (`Piece.given`, whose `given_mask(ids)` marks it); no copy includes it."""
    from melodygen.dataset.files import read_file

    rows = []
    for path, supplied in zip(paths, given or [None] * len(paths)):
        read = read_file(path, index.encoding)
        rows.append({"path": str(path), "skipped": read.why()} if read.skipped else
                    {"path": str(path), "check": _check(index, index.encoding.written_out(read.ids), supplied)})
    return rows


def check_pieces(pieces: Sequence, encoding, run_config: dict, origin: str) -> None:
    """`sample`'s check, over the pieces in memory (no file read back, no checkpoint loaded
    again): each piece's `copy_check` becomes its row as `check_files` gives it, judged on its
    score as `encoding` reads it with what the user gave masked, against the training data of
    the run `run_config` describes (`origin` names it); where that data is not found, a row
    {"path", "skipped": note} saying so."""
    found = run_training_set(run_config, encoding, origin)
    for piece in pieces:
        piece.copy_check = _piece_row(piece, encoding, found)


def _piece_row(piece, encoding, found: TrainingSet) -> dict:
    from melodygen.errors import NoUsableMusicError

    if found.index is None:
        return {"path": str(piece.path), "skipped": found.note}
    try:
        ids = encoding.written_out(encoding.encode(piece.score))
    except NoUsableMusicError as exc:  # a piece without notes copies nothing
        return {"path": str(piece.path), "skipped": str(exc)}
    return {"path": str(piece.path), "check": _check(found.index, ids, piece.given)}


def _check(index: CopyIndex, ids, given) -> CopyCheck:
    return index.check(ids, None if given is None else given.given_mask(ids))


def piece_warnings(pieces: Sequence, max_bars: float) -> list[str]:
    """`sample`'s lines after `check_pieces`: a warning per piece copying more than `max_bars`
    bars of a training piece, or once, the note saying why the check was skipped."""
    rows = [p.copy_check for p in pieces if p.copy_check is not None]
    notes = dict.fromkeys(r["skipped"] for r in rows if str(r.get("skipped", "")).startswith("copy check skipped"))
    return warning_lines(rows, max_bars) + list(notes)


def longest_bars(check: CopyCheck) -> float:
    """The longest copy's length in bars (0 when none or when the encoding has no time)."""
    return (check.longest.bars or 0.0) if check.longest else 0.0


def summarize(rows: list[dict], max_bars: float = DEFAULT_MAX_COPY_BARS) -> dict:
    """The set's copy figures: files checked, mean and max of the longest copy in bars and
    events, and how many copy more than `max_bars` bars."""
    checks = [r["check"] for r in rows if "check" in r]
    bars = np.array([longest_bars(c) for c in checks] or [0.0])
    events = np.array([c.longest.events if c.longest else 0 for c in checks] or [0])
    return {"files": len(checks), "max_bars": max_bars, "copying": int((bars > max_bars).sum()),
            "longest_bars": {"mean": float(bars.mean()), "max": float(bars.max())},
            "longest_events": {"mean": float(events.mean()), "max": int(events.max())}}


def to_json(rows: list[dict], summary: dict) -> dict:
    """`check_files` rows and their summary as a JSON-ready dict."""
    files = [{"path": r["path"], **(r["check"].to_dict() if "check" in r else {"skipped": r["skipped"]})}
             for r in rows]
    return {"files": files, "summary": summary}


def describe(check: CopyCheck) -> str:
    """One line: the longest exact and transposed copies, e.g. 'exact 12 events (0.75 bars) from
    a.mid; transposed -: none'."""
    parts = []
    for label, copy in (("exact", check.exact), ("transposed", check.transposed)):
        if copy is None:
            parts.append(f"{label}: none")
            continue
        bars = f" ({copy.bars:.2f} bars)" if copy.bars is not None else ""
        moved = f" {copy.transposition:+d} semitones" if copy.transposition else ""
        parts.append(f"{label}: {copy.events} events{bars} of {Path(copy.source).name}{moved}")
    return "; ".join(parts)


def format_copies(rows: list[dict], summary: dict) -> str:
    """The terminal table of `check_files` rows and the set summary."""
    lines = ["copies of training pieces (longest stretch per file, events and bars):"]
    width = max(len(Path(r["path"]).name) for r in rows)
    for r in rows:
        what = describe(r["check"]) if "check" in r else f"skipped: {r['skipped']}"
        lines.append(f"  {Path(r['path']).name:<{width}}  {what}")
    b, e = summary["longest_bars"], summary["longest_events"]
    lines.append(f"  {summary['files']} file(s): longest copy {b['mean']:.2f} bars on average (max {b['max']:.2f}), "
                 f"{e['mean']:.1f} events (max {e['max']}); {summary['copying']} copy more than "
                 f"{summary['max_bars']:g} bars")
    return "\n".join(lines)


def warning_lines(rows: list[dict], max_bars: float) -> list[str]:
    """A line per file whose longest copy is longer than `max_bars` bars, naming its source."""
    lines = []
    for r in rows:
        copy = r["check"].longest if "check" in r else None
        if copy is not None and (copy.bars or 0.0) > max_bars:
            moved = f", transposed {copy.transposition:+d} semitones" if copy.transposition else ""
            lines.append(f"warning: {Path(r['path']).name} copies {copy.bars:.1f} bars ({copy.events} events) "
                         f"of training piece {copy.source} from event {copy.piece_offset}{moved}")
    return lines
