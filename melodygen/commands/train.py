"""`melodygen train`: trains a generator from a config preset into a run folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from melodygen.commands.params import threads_option


@click.command("train")
@click.argument("sources", nargs=-1, type=click.Path())
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="TOML run config (e.g. configs/melody_lstm.toml). With --resume, defaults to "
                   "the run folder's config.toml.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False),
              help="A dataset folder made by `melodygen prepare` (instead of MIDI sources).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Run folder (default: runs/<config name>).")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override a config value (TOML syntax); repeatable.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last.pt.")
@click.option("--overwrite", is_flag=True, help="Replace a run already in --out (its checkpoints go).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]),
              help="Where to train (default: the config's, normally auto: CUDA, MPS, then CPU).")
@click.option("--seed", type=int, help="Random seed (default: the config's).")
@threads_option("train")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def command(sources, config_path, data_dir, out_dir, overrides, resume, overwrite, device, seed,
            threads, quiet):
    """Train a model (RNN, LSTM, GRU, attention LSTM, Transformer, CNN) on MIDI or a prepared dataset.

    Writes RUN/config.toml, RUN/metrics.csv, RUN/best.pt (best validation NLL) and RUN/last.pt
    (refreshed at every validation). MIDI SOURCES given on the command line (or `[data]
    sources` in the config: paths relative to the config file, or bundled:NAME) are prepared
    once and cached in ~/.cache/melodygen/datasets ($XDG_CACHE_HOME). Ctrl-C finishes the
    current step, writes last.pt and exits with status 130; --resume continues exactly there.

    \b
    Examples:
      melodygen train --config configs/melody_lstm.toml --out runs/melody_lstm
      melodygen train --config configs/debug.toml --out runs/debug
      melodygen train --config configs/melody_lstm.toml ~/music/folk --out runs/folk
      melodygen train --config configs/melody_lstm.toml --data runs/data/my-set
      melodygen train --config configs/melody_transformer.toml --set training.lr=3e-4 \\
          --set model.n_layers=2 --threads 1
      melodygen train --out runs/melody_lstm --resume
      torchrun --nproc_per_node 2 -m melodygen train --config configs/melody_lstm.toml
    """
    from melodygen.config import load_config
    from melodygen.devices import busy_note, use_threads
    from melodygen.errors import ConfigError
    from melodygen.training import train
    from melodygen.training.interrupt import catch_interrupts
    from melodygen.training.progress import summary

    if sources and data_dir:
        raise ConfigError("give either MIDI SOURCES or --data DIR, not both")
    config_path = _config_path(config_path, out_dir, resume)
    extra = _option_overrides(sources, data_dir, device, seed, threads)
    config = load_config(config_path, [*overrides, *extra])
    out_dir = Path(out_dir or Path("runs") / Path(config_path).stem)
    requested = threads if threads is not None else config.training.threads or None  # 0 in a config: the default
    crowded = busy_note(use_threads("train", requested), config.training.device)
    if crowded and os.environ.get("RANK", "0") == "0":
        click.echo(crowded, err=True)
    with catch_interrupts() as stop:
        result = train(config, out_dir, resume=resume, overwrite=overwrite, stop=stop,
                       progress=not quiet)
    if result.is_main:  # under torchrun, one summary
        click.echo(summary(result, config.training, crowded=crowded is not None))
    if result.stop_reason == "interrupted":
        raise SystemExit(130)


def _config_path(config_path: str | None, out_dir: str | None, resume: bool) -> str:
    from melodygen.errors import ConfigError

    if config_path:
        return config_path
    if resume and out_dir:
        from melodygen.training.rundir import RunPaths

        return str(RunPaths(Path(out_dir)).config)
    raise ConfigError("--config is required (e.g. --config configs/melody_lstm.toml), "
                      "unless resuming with --out RUN --resume")


def _option_overrides(sources, data_dir, device, seed, threads) -> list[str]:
    """The command-line options as `--set` overrides (strings as JSON, which TOML reads)."""
    extra = []
    if sources:
        extra += [f"data.sources={json.dumps(list(sources))}", 'data.dataset=""']
    if data_dir:
        extra.append(f"data.dataset={json.dumps(data_dir)}")
    if device:
        extra.append(f"training.device={json.dumps(device)}")
    if seed is not None:
        extra.append(f"training.seed={seed}")
    if threads is not None:
        extra.append(f"training.threads={threads}")
    return extra
