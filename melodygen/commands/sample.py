"""`melodygen sample`: a checkpoint -> new MIDI files (temperature, top-k, top-p, primer)."""

from __future__ import annotations

import click

from melodygen.commands.params import FiniteFloatRange, request_options, threads_option


@click.command("sample")
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=str))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Folder for the MIDI files (created if needed).")
@request_options
@click.option("--name", default="sample", show_default=True, help="File names: NAME_000.mid, NAME_001.mid, ...")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--max-copy-bars", default=4.0, show_default=True, type=FiniteFloatRange(0),
              help="Copy check: warn about each file that repeats more than this many bars of a "
                   "training piece (exactly or transposed), naming the piece.")
@click.option("--no-copy-check", is_flag=True,
              help="Skip the copy check (it needs the dataset the model was trained on).")
@click.option("--overwrite", is_flag=True, help="Replace files that already exist.")
@click.option("--render", is_flag=True,
              help="Also write each file's audio (WAV, FluidSynth) and piano roll (PNG) beside it.")
@threads_option("sample")
def command(checkpoint: str, out_dir: str, name: str, device: str, render: bool, max_copy_bars: float,
            no_copy_check: bool, overwrite: bool, threads: int | None, **options) -> None:
    """Generate new music from a trained CHECKPOINT into MIDI files.

    The checkpoint holds everything needed (model, encoding). Each step draws the
    next event from softmax(logits / T) after top-k / top-p filtering; all pieces are
    generated together, carrying the model's state (nothing is recomputed).
    Given a length (--events, --seconds or --bars), every piece gets that much new music
    after the primer (--allow-early-end lets the model end it sooner); without one, a
    piece ends where the model ends it (with --beam: at 512 events). A piece shorter than
    asked gets a line saying why. --beam keeps the most likely of several sampled
    branches; it needs a length in events (--events, or --bars/--seconds of melody).
    Files are named NAME_000.mid, ... and never overwritten without --overwrite.
    Each file is then looked up in the copy index of the model's training data: a line
    warns about any file that copies more than --max-copy-bars bars of a training piece.
    A --primer or --accompany file of which 2% or more of the ids are ones the model
    never saw in training (velocities, meters, instruments...) gets a warning line.

    \b
    Examples:
      melodygen sample runs/melody_lstm/best.pt --out samples/
      melodygen sample best.pt --out samples/ -n 8 --temperature 0.9 --seed 1
      melodygen sample best.pt --out samples/ --top-p 0.95 --seconds 30
      melodygen sample best.pt --out samples/ --bars 16 --tempo 100 --program 73
      melodygen sample best.pt --out samples/ -n 4 --bars 16 --allow-early-end
      melodygen sample best.pt --out cont/ --primer tune.mid --continuation-only
      melodygen sample best.pt --out samples/ -n 4 --render
      melodygen sample best.pt --out beam/ --beam 8 --branch 4 --beam-steps 16 -n 2 --bars 16
      melodygen sample runs/multitrack_nottingham/best.pt --out band/ --bars 16 --render
      melodygen sample multitrack.pt --out duo/ --bars 8 --instruments violin,piano
      melodygen sample folk-band --out chords/ --accompany my_melody.mid --instruments piano
      melodygen sample chorale --out voices/ --accompany soprano.mid --instruments 0,0,0
      melodygen sample folk-band --out again/ --primer tune.mid --infill 5-8 -n 4
      melodygen sample folk-band --out steered/ --bars 8 --key G --chords "G C D7 G" --density 10
    """
    from pathlib import Path

    from melodygen.devices import use_threads
    from melodygen.errors import ConfigError
    from melodygen.sampling.files import sample_to_midi
    from melodygen.sampling.request import GenerationRequest
    from melodygen.stats.controls import describe_adherence

    use_threads("sample", threads)
    try:  # the one check of the options: a bad value or combination is a usage error
        request = GenerationRequest.build(**options).seeded()
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    audio = render
    if render:  # before sampling, not after it
        from melodygen.errors import RenderError
        from melodygen.render.files import check_audio

        try:
            check_audio()
        except RenderError as exc:  # the pictures need no synthesizer
            click.echo(f"warning: no audio: {exc}; --render writes the piano-roll PNGs only", err=True)
            audio = False
    pieces = sample_to_midi(Path(checkpoint), Path(out_dir), request, device, name=name, overwrite=overwrite,
                            copy_check=not no_copy_check)
    for line in dict.fromkeys(r.input_warning for r in pieces if r.input_warning):  # the same for every piece
        click.echo(line, err=True)
    _print_table(pieces)
    for r in pieces:
        if r.shortfall:
            click.echo(f"{r.path.name}: {r.shortfall}")
        if r.adherence is not None:
            click.echo(f"{r.path.name}: {describe_adherence(r.adherence)}")
        if r.form is not None:
            click.echo(f"{r.path.name}: {r.form.describe()}")
    click.echo(f"wrote {len(pieces)} MIDI file(s) to {out_dir} (seed {request.seed})")
    if not no_copy_check:
        from melodygen.stats.copies import piece_warnings

        for line in piece_warnings(pieces, max_copy_bars):
            click.echo(line, err=True)
    if render:
        from melodygen.render.files import render_files

        rendered = render_files([r.path for r in pieces], Path(out_dir), wav=audio)
        what = "WAV + piano-roll PNG pair(s)" if audio else "piano-roll PNG(s)"
        click.echo(f"rendered {len(rendered)} {what} into {out_dir}")


def _print_table(pieces) -> None:
    beam = any(r.log_likelihood is not None for r in pieces)
    rows = [("file", "notes", "seconds", "pitches", "events") + (("log-likelihood",) if beam else ())]
    for r in pieces:
        pitches = f"{r.pitch_range[0]}-{r.pitch_range[1]}" if r.pitch_range else "-"
        rows.append((r.path.name, str(len(r.notes)), f"{r.seconds:.1f}", pitches, str(len(r.ids)))
                    + ((f"{r.log_likelihood:.2f}",) if beam else ()))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                             for i, (cell, w) in enumerate(zip(row, widths))))
