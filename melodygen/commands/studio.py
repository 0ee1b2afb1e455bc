"""`melodygen studio`: a local web page to generate, hear and keep music (the `studio` extra)."""

from __future__ import annotations

import click

from melodygen.commands.params import threads_option


@click.command("studio")
@click.argument("models", nargs=-1, metavar="[CHECKPOINT|NAME]...")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but a loopback address exposes the page (and "
                   "its files) to every machine that can reach this one.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on; 0 picks a free one.")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False, path_type=str),
              help="Folder for the samples (MIDI, WAV, PNG) and favourites.json; kept after the "
                   "studio stops, and favourites come back when started on it again "
                   "[default: a temporary folder, removed at exit].")
@click.option("--browser/--no-browser", default=True, show_default=True,
              help="Open the page in a web browser (where this machine has a desktop).")
@click.option("--no-audio", is_flag=True, help="Skip WAV rendering (no FluidSynth needed).")
@threads_option("studio")
def command(models: tuple[str, ...], host: str, port: int, out_dir: str | None, browser: bool,
            no_audio: bool, threads: int | None) -> None:
    """Start the studio: a page on this machine to pick a model, set temperature, top-p, length,
    seed (and instruments for multitrack models), upload a primer MIDI, generate, see piano
    rolls, hear the pieces, download MIDI, regenerate one and keep favourites.

    MODELS are checkpoint files or bundled model names (`melodygen models`); none: every bundled
    model. It listens on 127.0.0.1 only unless --host says otherwise. A script can use its HTTP
    API with the token it prints at launch (README: "The studio's HTTP API"). Needs the studio
    extra: pip install 'melodygen[studio]'. Ctrl-C stops it.

    \b
    Examples:
      melodygen studio
      melodygen studio folk-melody runs/melody_lstm/best.pt --out studio-samples/
      melodygen studio runs/multitrack_bach/best.pt --port 9000 --no-browser
    """
    from melodygen.devices import use_threads
    from melodygen.studio.serve import LOOPBACK_NAMES, serve, studio_models

    use_threads("studio", threads)  # torch hands the count on to the jobs' worker thread
    if host not in LOOPBACK_NAMES:
        click.echo(f"warning: --host {host} exposes the studio to every machine that can reach this "
                   "one: anyone there can generate and download its files", err=True)
    serve(studio_models(models), host=host, port=port, out_dir=out_dir, open_browser=browser,
          audio=not no_audio, echo=click.echo)
