"""`melodygen tokens`: show the event tokens one MIDI file becomes, exactly as a model sees them."""

from __future__ import annotations

from pathlib import Path

import click

from melodygen.commands.params import ENCODING_HELP, ENCODING_NAME, SET_ENCODING_HELP


@click.command("tokens")
@click.argument("midi_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--encoding", "encoding_name", type=ENCODING_NAME, default="melody", show_default=True,
              help=ENCODING_HELP)
@click.option("--set", "overrides", multiple=True, metavar="encoding.KEY=VALUE", help=SET_ENCODING_HELP)
@click.option("--limit", type=click.IntRange(min=0), default=None,
              help="Print only the first N tokens (the counts still cover all of them).")
@click.option("--decode", "decode_to", type=click.Path(dir_okay=False, path_type=Path),
              help="Also decode the ids back into notes and write them to this MIDI file.")
@click.option("--overwrite", is_flag=True, help="Let --decode replace a file that already exists.")
def command(midi_file: Path, encoding_name: str, overrides: tuple[str, ...], limit: int | None,
            decode_to: Path | None, overwrite: bool) -> None:
    """Print the event sequence MIDI_FILE becomes in an encoding, with counts per event kind.

    The ids carry no BOS/EOS here (datasets add them around each piece). With --decode, the
    ids are turned back into notes and written out, so you hear what the encoding keeps:
    melody at the file's first tempo, performance in absolute time, multitrack with its
    tracks, instruments, tempo and meter changes.

    \b
    Examples:
      melodygen tokens data/nottingham/ashover1.mid
      melodygen tokens song.mid --encoding performance --limit 40
      melodygen tokens song.mid --set encoding.track=1 --decode melody-only.mid
      melodygen tokens data/bach-chorales/bwv1.6.mid --encoding multitrack --limit 60
    """
    from melodygen.config import encoding_from_overrides
    from melodygen.dataset.files import read_file
    from melodygen.errors import OutputError
    from melodygen.midi_io import write_score

    if decode_to is not None and decode_to.exists() and not overwrite:
        raise OutputError(f"{decode_to}: already exists; pass --overwrite or choose another --decode file")
    encoding = encoding_from_overrides(encoding_name, overrides)
    read = read_file(midi_file, encoding, keep_score=True).raise_if_skipped("nothing to encode")
    ids, score = read.ids, read.score
    qpm = float(score.tempo_map.qpm[0])
    decoded = encoding.decode_score(ids, qpm=qpm)
    _print_tokens(encoding, ids, limit)
    tracks = f" on {len(decoded.tracks)} tracks" if encoding.keeps_instruments else ""
    click.echo(f"{len(ids)} ids from {score.note_count()} notes in {midi_file}; they decode to "
               f"{decoded.note_count()} notes{tracks} ({encoding.name} encoding, "
               f"{encoding.vocab.size} ids in all)")
    click.echo("  ".join(f"{name} {n}" for name, n in encoding.vocab.count_events(ids).items()))
    if decode_to is not None:
        write_score(decoded, decode_to)
        click.echo(f"wrote {decoded.note_count()} decoded notes to {decode_to}")


def _print_tokens(encoding, ids, limit: int | None) -> None:
    import textwrap

    shown = ids if limit is None else ids[:limit]
    text = " ".join(encoding.readable(shown))
    if text:
        click.echo(textwrap.fill(text, width=100, break_on_hyphens=False))
    if len(shown) < len(ids):
        click.echo(f"... {len(ids) - len(shown)} more (--limit {limit})")
