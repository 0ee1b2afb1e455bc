"""The held-out pieces of a fit and how every model is measured on them.

Held out: the pieces whose content hash falls lowest in the dataset's split buckets
(`dataset.manifest.split_of`), so the same files are held out whatever their names or order,
and `prepare` puts exactly them in the valid split.

Measured: nats per note, the total NLL of each piece's ids divided by the notes they hold. A
bundled model, the fitted one and an n-gram may read the music in different encodings (other
ids per note), so per event they are not comparable; per note they are, as the cost of the
same music.
"""

from __future__ import annotations

from pathlib import Path

from melodygen.dataset.manifest import SPLIT_BUCKETS


def held_out_fraction(hashes: list[str], count: int) -> float:
    """The `val_fraction` whose valid split holds the `count` pieces lowest in the split buckets
    (more only where buckets tie)."""
    buckets = sorted(int(h[:8], 16) % SPLIT_BUCKETS for h in hashes)
    return (buckets[count - 1] + 1) / SPLIT_BUCKETS


def is_held_out(sha1: str, fraction: float) -> bool:
    """Whether `prepare` puts the file of content hash `sha1` in the valid split at `fraction`."""
    from melodygen.dataset.manifest import split_of

    return split_of(sha1, fraction) == "valid"


def notes_in(ids, encoding) -> int:
    """The notes a piece's ids hold (repeats written out): what its NLL is divided by."""
    return len(encoding.decode(list(map(int, ids))))


def score_files(checkpoint, files: list[str]) -> dict:
    """`checkpoint` (a file or bundled name) on MIDI `files`: nats per note and per event, and
    where the checkpoint knows what it saw in training, `unseen`: the share of the files' ids it
    never saw, and per kind of id (VEL, PROGRAM, TIMESIG...) how many."""
    from melodygen.checkpoint import load
    from melodygen.dataset.files import read_files
    from melodygen.encodings import encoding_from_dict
    from melodygen.evaluation import evaluate_checkpoint

    figures = evaluate_checkpoint(checkpoint, sources=tuple(files))
    encoding = encoding_from_dict(load(checkpoint)["encoding"])
    notes = sum(notes_in(r.ids, encoding) for r in read_files(files, encoding, workers=1, progress=False)
                if not r.skipped)
    unseen = figures.get("unseen")
    extra = {"unseen": {"share": unseen["share"], "kinds": unseen["kinds"]}} if unseen else {}
    return {**_figures(figures["nll"], figures["events"], notes), **extra}


def score_run(run_dir: Path, dataset: Path, notes: int) -> dict:
    """A training run's best.pt (else last.pt) on the dataset's valid split, which holds
    `notes` notes (`valid_notes`)."""
    from melodygen.evaluation import evaluate_checkpoint
    from melodygen.training.rundir import RunPaths

    paths = RunPaths(run_dir)
    figures = evaluate_checkpoint(paths.best if paths.best.is_file() else paths.last, data_dir=dataset)
    return _figures(figures["nll"], figures["events"], notes)


def score_ngram(dataset: Path, order: int, seq_len: int, notes: int) -> dict:
    """A Witten-Bell n-gram fitted on the dataset's train split, on its valid split (`notes`
    notes)."""
    from melodygen.baseline import evaluate_baseline

    figures = evaluate_baseline(dataset, order=order, split="valid", seq_len=seq_len)
    return _figures(figures["nll"], figures["events"], notes)


def valid_notes(dataset: Path) -> int:
    """The notes of a dataset's valid split (counted once per fit, when it is prepared)."""
    from melodygen.dataset.manifest import load_dataset_encoding
    from melodygen.dataset.shards import TokenDataset

    encoding = load_dataset_encoding(dataset)
    valid = TokenDataset(dataset, "valid")
    return sum(notes_in(valid.piece(i), encoding) for i in range(len(valid)))


def _figures(nll: float, events: int, notes: int) -> dict:
    return {"nats_per_note": nll * events / max(notes, 1), "nats_per_event": nll, "events": events, "notes": notes}
