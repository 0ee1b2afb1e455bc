"""`melodygen stats`: musical statistics of a MIDI set, optionally against a reference set."""

from __future__ import annotations

import click

from melodygen.commands.params import ENCODING_NAME


@click.command("stats")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option(
    "--reference",
    type=click.Path(),
    help="A folder (or file, or bundled:NAME) of real music to compare against: overlapping area and "
         "KL per metric, and a classifier's accuracy at telling the two sets apart.",
)
@click.option("--encoding", "encoding_name", type=ENCODING_NAME, default=None,
              help="Measure every file as encoding NAME (default settings) sees it: encoded, then decoded.")
@click.option("--max-events", type=click.IntRange(min=1), default=None,
              help="With --encoding: keep each file's first N events (e.g. the samples' --length).")
@click.option("--train", "train", type=click.Path(), default=None, metavar="DATASET|CHECKPOINT",
              help="Copy check: per file, the longest stretch (events and bars, exact and transposed) "
                   "also found in a training piece of this prepared dataset, or of the dataset a "
                   "checkpoint's (or bundled model's) run trained on, and which piece.")
@click.option("--judge", type=click.Path(), default=None, metavar="MASKED_MODEL",
              help="With --reference: a second real-vs-generated test, in the space of a masked model's "
                   "embedding of each piece (a checkpoint or bundled name of kind masked).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Processes reading files.")
def command(inputs: tuple[str, ...], reference: str | None, encoding_name: str | None, max_events: int | None,
            train: str | None, judge: str | None, as_json: bool, workers: int) -> None:
    """Musical statistics of the MIDI files in INPUTS (folders are searched for .mid/.midi).

    Per file, over all non-drum notes: pitch-class histogram and entropy, pitch range, used
    pitches, note density, polyphony, note-length and inter-onset histograms (quarter notes),
    scale consistency, repeated 4-grams, empty-beat rate and mean velocity, and structure
    (repeated 8- and 16-grams, bars repeating an earlier bar exactly or transposed, the
    longest repeated run of bars); then mean ± std
    over the set and pooled histograms. With --reference, each metric's distributions in the
    two sets are compared (Yang & Lerch 2020): overlapping area (1 = same, 0 = disjoint) and
    KL(set || reference) in nats. Then all the metrics together: a real-vs-generated test, a
    logistic regression's 5-fold cross-validated balanced accuracy at telling a set's piece from a
    reference piece (50% = indistinguishable; with its standard error and 95% interval; at least
    10 pieces in each set), and the metrics that alone give the set away, with their direction.
    Unreadable files are skipped and listed.

    With --encoding (melody, performance, multitrack), each file is first passed through that encoding,
    so a folk tune is measured without its chord track, as a melody model's samples are.

    With --train, each file is also read with the training set's encoding and looked up in its
    copy index (built by `prepare`; built and saved on first use for an older dataset).

    With --judge, a second real-vs-generated test reads no statistics: each piece is what a
    masked model (trained on real music) makes of it, its final states averaged, and the same
    classifier tries to tell the sets apart in that space.

    \b
    Examples:
      melodygen stats samples/
      melodygen stats samples/ --reference bundled:nottingham --workers 4
      melodygen stats a.mid b.mid --json > stats.json
      melodygen stats samples/ --reference bundled:nottingham --encoding melody --max-events 512
      melodygen stats samples/ --train runs/melody_lstm/best.pt
      melodygen stats samples/ --reference data/bach-chorales --judge chorale-infiller
    """
    import json

    from melodygen import stats
    from melodygen.dataset.sources import find_midi_files
    from melodygen.stats import tables

    describe = _describer(encoding_name, max_events, workers=workers, progress=not as_json)
    files = find_midi_files(inputs)
    reference_files = find_midi_files([reference]) if reference is not None else None  # fail before the work
    if judge is not None and reference_files is None:
        raise click.UsageError("--judge tells the set from a --reference set: add --reference")
    described = describe(files)
    result = {"set": described}
    copies = _copies(train, files) if train is not None else None
    if copies is not None:
        result["copies"] = copies[0]
    if reference_files is not None:
        ref = describe(reference_files)
        result.update(reference=ref, comparison=stats.compare_sets(described, ref))
    if judge is not None:
        from melodygen.stats.judge import embedding_test

        result["comparison"]["judge"] = {"model": judge, **embedding_test(judge, files, reference_files).to_json()}
    if as_json:
        click.echo(json.dumps(result, indent=2))
    elif reference is None:
        click.echo(tables.format_set(described, "set"))
    else:
        click.echo(tables.format_comparison(described, result["reference"], result["comparison"]))
    if judge is not None and not as_json:
        from melodygen.stats.two_sample import describe_result

        found = result["comparison"]["judge"]
        note = f" ({found['note']})" if found["note"] and found["accuracy"] is not None else ""
        click.echo(f"\nsecond judge, in the space of {judge}'s embedding of each piece: "
                   + describe_result(found, "set") + note)
    if copies is not None and not as_json:
        click.echo(copies[1])
    for title in ("set", "reference"):
        skipped = tables.format_skipped(result[title], title) if title in result else ""
        if skipped:
            click.echo(skipped, err=True)


def _describer(encoding_name: str | None, max_events: int | None, **options):
    """`describe_set`, or `describe_encoded_set` through the encoding `encoding_name`, with `options`."""
    from functools import partial

    from melodygen import stats

    if encoding_name is None:
        if max_events is not None:
            raise click.UsageError("--max-events counts events of an --encoding; add --encoding NAME")
        return partial(stats.describe_set, **options)
    from melodygen.encodings import get_encoding

    return partial(stats.describe_encoded_set, encoding=get_encoding(encoding_name), max_events=max_events, **options)


def _copies(train: str, files) -> tuple[dict, str] | None:
    """(JSON figures, table or note) of the copy check of `files` against `train`."""
    from melodygen.stats import copies

    found = copies.training_set(train)
    if found.index is None:
        return {"note": found.note}, found.note
    rows = copies.check_files(files, found.index)
    summary = copies.summarize(rows)
    return copies.to_json(rows, summary), copies.format_copies(rows, summary)
