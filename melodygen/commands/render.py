"""`melodygen render`: MIDI files -> WAV audio (FluidSynth) and piano-roll PNG pictures."""

from __future__ import annotations

import click


@click.command("render")
@click.argument("midi", nargs=-1, required=True, type=click.Path(exists=True, path_type=str))
@click.option("--wav", is_flag=True, help="Write audio (WAV). Neither --wav nor --png: both.")
@click.option("--png", is_flag=True, help="Write a piano-roll picture (PNG). Neither flag: both.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=str), default=None,
              help="Folder for the outputs [default: beside each MIDI file].")
@click.option("--soundfont", type=click.Path(exists=True, dir_okay=False, path_type=str), default=None,
              help="General MIDI SoundFont (.sf2) [default: $MELODYGEN_SOUNDFONT, the system's "
                   "FluidR3_GM.sf2 or another found in the usual places, else pretty_midi's TimGM6mb.sf2].")
def command(midi: tuple[str, ...], wav: bool, png: bool, out_dir: str | None, soundfont: str | None) -> None:
    """Render MIDI files (or folders of them) to audio and piano-roll pictures.

    Audio goes through FluidSynth (`apt-get install --no-install-recommends
    fluidsynth fluid-soundfont-gm`, or `brew install fluid-synth`), normalized to a
    -1 dBFS peak, as long as the MIDI file plus a 1 s release tail. Pictures show
    pitch over time, notes coloured by velocity, bar lines where the file has a meter.

    \b
    Examples:
      melodygen render samples/sample_000.mid
      melodygen render samples/ --out renders/
      melodygen render song.mid --png
      melodygen render song.mid --wav --soundfont ~/sf2/GeneralUser.sf2
    """
    from melodygen.dataset.sources import find_midi_files
    from melodygen.errors import MidiReadError
    from melodygen.render.files import render_files

    paths = find_midi_files(midi)
    both = not wav and not png
    skipped: list[str] = []
    results = render_files(paths, out_dir, wav=wav or both, png=png or both, soundfont=soundfont,
                           skipped=skipped)
    if not results:
        raise MidiReadError(skipped[0] if len(skipped) == 1 else
                            f"none of the {len(paths)} MIDI files could be read; first: {skipped[0]}")
    for line in skipped:
        click.echo(f"skipped {line}", err=True)
    for result in results:
        written = ", ".join(str(p) for p in (result.wav, result.png) if p is not None)
        click.echo(f"{result.midi}: {result.facts.summary()} -> {written}")
    where = out_dir if out_dir is not None else "beside the MIDI files"
    click.echo(f"rendered {len(results)} file(s){f', skipped {len(skipped)}' if skipped else ''}; "
               f"outputs are {'in ' if out_dir else ''}{where}")
