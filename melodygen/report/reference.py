"""The report's reference set: the files as the run's encoding sees them, or as they are.

A melody model's samples have one voice and a few hundred events; the corpus it learned from
may hold chord tracks, drums and long pieces. By default each reference file is passed through
the run's encoding (the checkpoint's, else the config's `[encoding]`) and cut to the longest
sample's length in events, so the samples are compared with what the model could express.
`raw=True` measures the files as they are. `sample_copies`: the samples' copy check against
the run's own training data (`stats.copies`), where that dataset is still there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from melodygen.errors import ConfigError, EncodingError, ReportError
from melodygen.notes import Score
from melodygen.report.run import RunInfo

RAW_MODE = "reference measured as raw files, as they are"


EXAMPLES = 3  # reference pieces whose structure the page draws beside the samples'


@dataclass(frozen=True)
class Reference:
    """The reference folder, its `stats.describe_set`-shaped statistics, how its files were
    measured (`mode`, shown on the page) and its first usable pieces as measured
    (`examples`: (path, score)), for pictures."""

    folder: Path
    described: dict
    mode: str
    examples: tuple[tuple[str, Score], ...] = ()


def describe_reference(folder: Path, run: RunInfo, sample_paths: list[Path], *, raw: bool = False) -> Reference:
    """The reference statistics: through the run's encoding (default) or `raw`."""
    from melodygen.dataset.sources import find_midi_files
    from melodygen.stats import describe_encoded_set, describe_set

    files = find_midi_files([folder])
    if raw:
        return Reference(folder, describe_set(files), RAW_MODE, _examples(files))
    encoding, source = run_encoding(run)
    max_events = longest_in_events(sample_paths, encoding)
    described = describe_encoded_set(files, encoding, max_events=max_events)
    cut = f", first {max_events} events of each file (the longest sample)" if max_events else ""
    return Reference(folder, described, f"reference passed through the run's {encoding.name} encoding "
                                        f"(from {source}){cut}", _examples(files, encoding, max_events))


def _examples(files: list[Path], encoding=None, max_events: int | None = None) -> tuple:
    """The first `EXAMPLES` usable files as the set measures them."""
    from melodygen.stats.sets import measured_score

    examples = []
    for path in files:
        score, _ = measured_score(str(path), encoding, max_events)
        if score is not None and score.note_count():
            examples.append((str(path), score))
        if len(examples) == EXAMPLES:
            break
    return tuple(examples)


def run_encoding(run: RunInfo):
    """(encoding, where it came from): the run checkpoint's stored encoding, else the config's
    `[encoding]` section; ReportError when the run has neither."""
    found = stored_encoding(run)
    if found is None:
        raise ReportError(f"{run.path}: no checkpoint and no [encoding] in the config, so the reference cannot be "
                          "passed through the run's encoding; add --raw-reference to compare with the files as "
                          "they are")
    return found


def stored_encoding(run: RunInfo):
    """`run_encoding`, or None when the run has neither a checkpoint's encoding nor an
    `[encoding]` section; ReportError for a damaged one."""
    from melodygen.encodings import encoding_from_dict, get_encoding

    checkpoint, path = run.checkpoint
    if checkpoint is not None and "encoding" in checkpoint:
        try:
            return encoding_from_dict(checkpoint["encoding"]), path.name
        except EncodingError as exc:
            raise ReportError(f"{path}: damaged checkpoint: {exc}") from None
    section = (run.config or {}).get("encoding")
    if isinstance(section, dict) and isinstance(section.get("name"), str):
        settings = {k: v for k, v in section.items() if k != "name"}
        try:
            return get_encoding(section["name"], **settings), f"{run.config_source} [encoding]"
        except ConfigError as exc:
            raise ReportError(f"{run.path}: {run.config_source} [encoding]: {exc}") from None
    return None


def longest_in_events(paths: list[Path], encoding) -> int | None:
    """The most events any of `paths` takes in `encoding` (None when none can be encoded)."""
    from melodygen.dataset.files import read_files

    # unreadable or empty samples are left out here (the gallery lists them)
    lengths = [len(r.ids) for r in read_files(paths, encoding, workers=1, progress=False) if not r.skipped]
    return max(lengths, default=None)


@dataclass(frozen=True)
class SampleCopies:
    """The samples' copy check against the run's training data: `checks` {sample path: CopyCheck},
    the set `summary` (`stats.copies.summarize`), or only a `note` saying why there is none."""

    checks: dict
    summary: dict | None
    note: str | None = None


def sample_copies(run: RunInfo, sample_paths: list[Path]) -> SampleCopies:
    """The copy check of `sample_paths` against the dataset `run` trained on, where it is found."""
    from melodygen.stats.copies import check_files, run_training_set, summarize

    try:
        encoding, _ = run_encoding(run)
    except ReportError as exc:
        return SampleCopies({}, None, f"copy check skipped: {exc}")
    if not run.config:
        return SampleCopies({}, None, "copy check skipped: the run has no config naming its training data")
    found = run_training_set(run.config, encoding, str(run.path))
    if found.index is None:
        return SampleCopies({}, None, found.note)
    rows = check_files(sample_paths, found.index)
    return SampleCopies({r["path"]: r["check"] for r in rows if "check" in r}, summarize(rows))
