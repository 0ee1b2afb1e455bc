"""`melodygen prepare`: MIDI files and folders -> a dataset of token shards for training."""

from __future__ import annotations

from pathlib import Path

import click

from melodygen.commands.params import ENCODING_HELP, ENCODING_NAME, SET_ENCODING_HELP, FiniteFloatRange


@click.command("prepare")
@click.argument("sources", nargs=-1, type=click.Path(path_type=Path))
@click.option("--encoding", "encoding_name", type=ENCODING_NAME, default="melody", show_default=True,
              help=ENCODING_HELP)
@click.option("--set", "overrides", multiple=True, metavar="encoding.KEY=VALUE", help=SET_ENCODING_HELP)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Dataset folder [default: runs/data/<first SRC name>-<encoding>].")
@click.option("--val-fraction", type=FiniteFloatRange(0.0, 1.0, max_open=True), default=0.1, show_default=True,
              help="Share of files for validation (chosen by content hash: stable when files are added).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Parallel reader processes [default: every CPU].")
@click.option("--force", is_flag=True, help="Rebuild even if the inputs have not changed since the last run.")
def command(sources: tuple[Path, ...], encoding_name: str, overrides: tuple[str, ...], out_dir: Path | None,
            val_fraction: float, workers: int | None, force: bool) -> None:
    """Turn MIDI files into training data: token shards, encoding.json and manifest.json.

    SOURCES are MIDI files, folders (searched recursively for .mid/.midi) or
    bundled corpora (bundled:nottingham, bundled:bach-chorales); default: the
    bundled Nottingham folk tunes. Files that
    cannot be used are skipped and listed with the reason; exact duplicates
    are dropped. Running again on unchanged inputs reuses the earlier result.

    \b
    Examples:
      melodygen prepare
      melodygen prepare bundled:nottingham --encoding melody --out runs/data/nottingham-melody
      melodygen prepare bundled:bach-chorales --encoding performance
      melodygen prepare ~/midi/folk --set encoding.min_pitch=40 --set encoding.max_pitch=88
      melodygen prepare ~/midi/piano/ --encoding performance --out runs/data/piano --workers 4
      melodygen prepare bundled:pop909 --encoding multitrack --set encoding.steps_per_quarter=24
      melodygen prepare song1.mid song2.mid --val-fraction 0 --out runs/data/two-songs
    """
    from melodygen.config import encoding_from_overrides
    from melodygen.dataset.prepare import prepare
    from melodygen.dataset.sources import DEFAULT_CORPUS, default_dataset_dir

    encoding = encoding_from_overrides(encoding_name, overrides)
    sources = sources or (DEFAULT_CORPUS,)
    out_dir = out_dir if out_dir is not None else default_dataset_dir(sources, encoding_name)
    summary = prepare(sources, encoding, out_dir, val_fraction=val_fraction, workers=workers, force=force)
    click.echo(summary.format())
