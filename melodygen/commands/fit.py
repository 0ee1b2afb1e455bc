"""`melodygen fit`: a folder of your MIDI files in, a model of that music out."""

from __future__ import annotations

import click

from melodygen.commands.params import FiniteFloatRange, threads_option


@click.command("fit")
@click.argument("folder", type=click.Path(path_type=str))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=str),
              help="The fit's folder: model.pt, report.html, MODEL.md, samples/, and its runs and dataset.")
@click.option("--minutes", type=FiniteFloatRange(0, None, min_open=True), default=12.0, show_default=True,
              help="Time budget of the whole fit, reading and report included.")
@click.option("--from", "start", metavar="MODEL",
              help="Fine-tune this bundled model or checkpoint, or 'scratch' [default: measure the best "
                   "bundled model for your encoding against a model from scratch, keep the better].")
@click.option("--encoding", type=click.Choice(["multitrack", "melody", "performance"]),
              help="The encoding [default: chosen from what the folder holds, and said why].")
@click.option("--held-out", type=click.IntRange(1, None), metavar="N",
              help="Pieces to hold out (chosen by content hash) [default: 15% of them, at most 100].")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override a choice in every run's config, as `train --set` (e.g. training.transpose_range=[0,0], "
                   "model.d_model=192 from scratch, encoding.repeats=0); repeatable.")
@click.option("--samples", "sample_count", type=click.IntRange(1, 64), default=12, show_default=True,
              help="Samples for the report, the memorisation audit and the real-vs-generated test (which needs 10).")
@click.option("--resume", is_flag=True, help="Continue the fit in --out where it stopped.")
@click.option("--overwrite", is_flag=True, help="Replace the fit already in --out.")
@threads_option("fit")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def command(folder, out_dir, minutes, start, encoding, held_out, overrides, sample_count, resume, overwrite, threads,
            quiet):
    """Fit a model to the MIDI files in FOLDER (5 to 10,000 pieces), in one command.

    It reads the folder and says what is in it (bad files are skipped with their reason),
    chooses an encoding and settings and says why, holds out pieces by content hash, measures
    the bundled models on them, fine-tunes the best one and trains one from scratch for a short
    trial each, and gives the better the rest of --minutes (early stopping on the held-out
    pieces). It ends with OUT/model.pt (a checkpoint like any other: `sample`, `studio`,
    `evaluate`, the API), OUT/report.html (held-out NLL of the bundled, fitted and n-gram
    models, samples as MIDI, audio and piano rolls, statistics against your pieces with the
    real-vs-generated test, and the memorisation audit: samples checked for copies of your
    pieces) and OUT/MODEL.md, the model card (fill in its license).

    Every choice is printed with its reason and the option that overrides it. Nothing is written
    to --out before the folder is accepted. Ctrl-C stops after the current step; --resume
    continues from there.

    \b
    Examples:
      melodygen fit ~/music/reels --out fits/reels
      melodygen fit ~/music/chorales --out fits/chorales --minutes 30
      melodygen fit ~/music/reels --out fits/reels --from folk-band
      melodygen fit ~/music/songs --out fits/songs --from scratch --encoding multitrack
      melodygen fit ~/music/reels --out fits/reels --held-out 10 --set training.transpose_range=[0,0]
      melodygen fit ~/music/reels --out fits/reels --resume
      melodygen sample fits/reels/model.pt --out new/ -n 4 --bars 16
    """
    from melodygen.devices import busy_note, use_threads
    from melodygen.fitting import fit
    from melodygen.training.interrupt import catch_interrupts

    crowded = busy_note(use_threads("fit", threads))
    if crowded:
        click.echo(crowded, err=True)
    with catch_interrupts() as stop:
        result = fit(folder, out_dir, minutes=minutes, start=start, encoding=encoding, held_out=held_out,
                     overrides=overrides, samples=sample_count, resume=resume, overwrite=overwrite,
                     progress=not quiet, echo=click.echo, stop=stop)
    if result is None:
        click.echo(f"stopped; continue with: melodygen fit {folder} --out {out_dir} --resume", err=True)
        raise SystemExit(130)
