"""`melodygen stats`: musical statistics of a MIDI set, optionally against a reference set."""

from __future__ import annotations

import click


@click.command("stats")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--reference",
    type=click.Path(exists=True),
    help="A folder (or file) of real music to compare against: overlapping area and KL per metric.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Processes reading files.")
def command(inputs: tuple[str, ...], reference: str | None, as_json: bool, workers: int) -> None:
    """Musical statistics of the MIDI files in INPUTS (folders are searched for .mid/.midi).

    Per file, over all non-drum notes: pitch-class histogram and entropy, pitch range, used
    pitches, note density, polyphony, note-length and inter-onset histograms (quarter notes),
    scale consistency, repeated 4-grams, empty-beat rate and mean velocity; then mean ± std
    over the set and pooled histograms. With --reference, each metric's distributions in the
    two sets are compared (Yang & Lerch 2020): overlapping area (1 = same, 0 = disjoint) and
    KL(set || reference) in nats. Unreadable files are skipped and listed.

    \b
    Examples:
      melodygen stats samples/
      melodygen stats samples/ --reference data/nottingham --workers 4
      melodygen stats a.mid b.mid --json > stats.json
    """
    import json

    from melodygen import stats
    from melodygen.dataset.sources import find_midi_files
    from melodygen.stats import tables

    progress = not as_json
    files = find_midi_files(inputs)
    reference_files = find_midi_files([reference]) if reference is not None else None  # fail before the work
    described = stats.describe_set(files, workers=workers, progress=progress)
    result = {"set": described}
    if reference_files is not None:
        ref = stats.describe_set(reference_files, workers=workers, progress=progress)
        result.update(reference=ref, comparison=stats.compare_sets(described, ref))
    if as_json:
        click.echo(json.dumps(result, indent=2))
    elif reference is None:
        click.echo(tables.format_set(described, "set"))
    else:
        click.echo(tables.format_comparison(described, result["reference"], result["comparison"]))
    for title in ("set", "reference"):
        skipped = tables.format_skipped(result[title], title) if title in result else ""
        if skipped:
            click.echo(skipped, err=True)
