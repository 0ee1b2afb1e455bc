"""`melodygen report`: one HTML page for a training run and its samples."""

from __future__ import annotations

import click

from melodygen.commands.params import threads_option


def _html_only(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An .html/.htm name only: the page replaces an earlier one, never e.g. a checkpoint."""
    if value is not None and not value.lower().endswith((".html", ".htm")):
        raise click.BadParameter(f"{value!r} is not an .html file name")
    return value


@click.command("report")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=str))
@click.option("--samples", type=click.Path(exists=True, file_okay=False, path_type=str), default=None,
              help="Folder of generated MIDI files to render, play and describe.")
@click.option("--reference", type=click.Path(file_okay=False, path_type=str), default=None,
              help="Folder of MIDI files or bundled:NAME (e.g. the training corpus) to compare the "
                   "samples' statistics with; each file is passed through the run's encoding and cut to "
                   "the longest sample's length.")
@click.option("--raw-reference", is_flag=True,
              help="Compare with the --reference files as they are (chords, drums, whole pieces included).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=str), default=None, callback=_html_only,
              help="The HTML page to write, .html or .htm [default: RUN_DIR/report.html].")
@click.option("--soundfont", type=click.Path(exists=True, dir_okay=False, path_type=str), default=None,
              help="General MIDI SoundFont (.sf2) for the audio [default: found automatically].")
@click.option("--no-audio", is_flag=True, help="No WAV files or players (e.g. without FluidSynth).")
@threads_option("report")
def command(run_dir: str, samples: str | None, reference: str | None, raw_reference: bool, out: str | None,
            soundfont: str | None, no_audio: bool, threads: int | None) -> None:
    """Write one HTML page about a training run: its settings, training and validation
    curves, evaluation figures, and a gallery of samples (piano roll, audio player, MIDI
    link and statistics, against a reference set if given).

    The reference files are measured as the run's encoding sees them (encoded with the
    encoding stored in best.pt/last.pt, else config.toml's [encoding], cut to the longest
    sample's length in events, decoded), so a melody model is not blamed for the chord
    track of a folk tune; --raw-reference measures them as they are. The page says which.

    Pictures are embedded in the page; the samples' WAV and MIDI files are written to a
    folder beside it (`report_files/` for `report.html`). Open the page in any browser;
    it needs no network.

    \b
    Examples:
      melodygen report runs/melody_lstm
      melodygen report runs/melody_lstm --samples samples/
      melodygen report runs/melody_lstm --samples samples/ --reference bundled:nottingham --out report.html
      melodygen report runs/melody_lstm --samples samples/ --reference bundled:nottingham --raw-reference
    """
    import shlex

    from melodygen.devices import use_threads
    from melodygen.report import build_report

    use_threads("report", threads)
    report = build_report(run_dir, out, samples=samples, reference=reference, raw_reference=raw_reference,
                          soundfont=soundfont, audio=not no_audio)
    for line in report.skipped:
        click.echo(f"skipped {line}", err=True)
    if report.assets is not None:
        click.echo(f"rendered {report.samples} sample(s) into {report.assets}")
    if report.reference_mode is not None:
        click.echo(report.reference_mode)
    click.echo(f"report written to {report.page}")
    page = shlex.quote(str(report.page))
    click.echo(f"open it with: xdg-open {page}   (macOS: open {page})")
