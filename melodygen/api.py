"""The Python API: the same functions the command line calls, for notebooks and scripts.

    >>> import melodygen
    >>> model = melodygen.load("folk-melody")            # a bundled model, or a checkpoint path
    >>> pieces = model.generate(n=2, bars=4, temperature=0.9, seed=1)
    >>> len(pieces), pieces[0].ids == model.generate(n=2, bars=4, temperature=0.9, seed=1)[0].ids
    (2, True)
    >>> len(pieces[0].ids)                               # 4 bars of 16 sixteenth-note steps
    64
    >>> path = pieces[0].save(tmp / "tune.mid")          # also: to_pretty_midi(), render_wav(), piano_roll()
    >>> melodygen.read_piece(path).pitch_range == pieces[0].pitch_range
    True

`prepare`, `train` and `evaluate` run the jobs of `melodygen prepare`, `train` and `evaluate`
with the same defaults; each returns what the command prints, as data.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from melodygen.errors import ConfigError
from melodygen.sampling.pieces import Piece
from melodygen.sampling.request import GenerationRequest

PathLike = str | os.PathLike


@dataclass
class Model:
    """A loaded generator: its network (eval mode, on `device`) and encoding, ready to sample."""

    model: Any
    encoding: Any
    checkpoint: dict
    source: str
    device: str

    def generate(self, request: GenerationRequest | None = None, /, **options) -> list[Piece]:
        """New pieces, as `melodygen sample` makes them: `options` are the request's fields
        (`sampling.request.GenerationRequest`; `melodygen sample --help` explains each), or a
        whole `request`. At most one of `bars`, `seconds`, `events`; none: until the model ends
        a piece (at most 512 events). The same `seed` gives the same pieces; none draws one.
        `instruments` (multitrack models): GM names, families or program numbers, e.g.
        ["violin", "piano"]. `accompany` (a MIDI file; `given_tracks` 1-based, default all)
        gives tracks for the model to accompany with new `instruments`; `infill=(a, b)` writes
        bars a..b of `primer` again (multitrack models). `key`, `chords` (one per new bar,
        repeated) and `density` (notes per bar, one or one per bar; `strict_density` holds every
        bar to it) steer a model trained with controls; each piece's `adherence` says how it
        obeyed. `meter` (multitrack, from nothing): e.g. "3/4", one the model trained on.
        `draft` (n=1, a Transformer): check ids guessed from the piece several per model call,
        the same pieces (`sample --draft`). A primer or given music far from what the model
        saw in training gives each piece an `input_warning` (`fit_velocities` maps a primer's
        velocities to the nearest it saw). A bad option is a one-line `ConfigError`.

        >>> model = load("folk-melody")
        >>> [len(p.ids) for p in model.generate(n=3, events=20, seed=5)]
        [20, 20, 20]
        """
        from functools import partial

        from melodygen.dataset.profile import checkpoint_profile, stored_profile
        from melodygen.sampling.files import generate_pieces, plan_generation

        request = _request(request, options)
        plan = plan_generation(self.encoding, request, self.device, self.checkpoint.get("instruments"),
                               partial(checkpoint_profile, self.checkpoint, self.encoding, self.source),
                               partial(stored_profile, self.checkpoint, self.encoding))
        return generate_pieces(self.model, self.encoding, request, self.device, plan)

    def stream(self, request: GenerationRequest | None = None, /, **options):
        """One new piece's events as the model draws them: an iterator of `Event(id, token)`
        (the id and its token text, e.g. `Event(id=26, token='NOTE_ON(69)')`), the primer's left
        out; once it ends, its `piece` is the finished `Piece`. The options are `generate`'s (one
        piece: n=1), and the piece is `generate`'s, the same seed drawing the same ids. A bad
        request raises here, before anything is drawn; `close()` (or leaving a `for` loop) stops the
        generation. Made in a worker thread (`sampling.streams`).

        >>> model = load("folk-melody")
        >>> stream = model.stream(events=12, seed=3)
        >>> [event.id for event in stream] == stream.piece.ids == model.generate(events=12, seed=3)[0].ids
        True
        """
        from melodygen.sampling.streams import PieceStream

        request = _request(request, options).seeded()
        if request.n != 1:
            raise ConfigError(f"stream makes one piece at a time: n={request.n} (use generate for several)")
        if request.beam:
            raise ConfigError("stream hands out events as they are drawn, and --beam chooses among its sequences "
                              "afterwards: use generate")
        return PieceStream(lambda: self.generate(request)[0], self.encoding.vocab.tokens)

    def __repr__(self) -> str:
        spec = self.checkpoint["model"]
        return (f"Model({self.source!r}: {spec['kind']} over the {self.encoding.name} encoding, "
                f"{self.encoding.vocab.size} ids, on {self.device})")


def _request(request: GenerationRequest | None, options: dict) -> GenerationRequest:
    """The request `generate`/`stream` were given: a whole one, or options to build one."""
    if request is not None and options:
        raise ConfigError("give a GenerationRequest or options, not both")
    return request if request is not None else GenerationRequest.build(**options)


def _signature_from_the_request(method) -> None:
    """`method(request=None, /, **options)` shown with the request's fields as its keywords
    (`help()`, editors), each with its default: the one spelling of the options."""
    import inspect

    from melodygen.sampling.request import request_defaults

    keywords = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
                for name, default in request_defaults().items()]
    method.__signature__ = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY),
         inspect.Parameter("request", inspect.Parameter.POSITIONAL_ONLY, default=None), *keywords])


_signature_from_the_request(Model.generate)
_signature_from_the_request(Model.stream)


def load(name_or_path: PathLike, *, device: str = "auto") -> Model:
    """A bundled model by name (`melodygen models` lists them) or a checkpoint file.

    >>> load("folk-melody").encoding.name
    'melody'
    """
    from melodygen.checkpoint import load_for_inference
    from melodygen.devices import resolve_device

    device = resolve_device(device)
    model, encoding, ckpt = load_for_inference(name_or_path, device)
    return Model(model, encoding, ckpt, str(name_or_path), str(device))


def read_piece(path: PathLike) -> Piece:
    """A MIDI file as a `Piece` (drums included), e.g. to draw or render a file you have."""
    from melodygen.midi_io import read_score

    return Piece(read_score(path, include_drums=True), path=Path(path))


def prepare(sources: Sequence[PathLike] = (), *, encoding: str = "melody", out: PathLike | None = None,
            val_fraction: float = 0.1, workers: int | None = None, force: bool = False,
            progress: bool = False, **settings):
    """Prepare MIDI files/folders (or `bundled:NAME`) into a dataset folder, as `melodygen
    prepare`; `settings` are the encoding's (e.g. `min_pitch=40`). Returns its summary
    (`.format()` gives the command's text; `out_dir`, counts)."""
    from melodygen.dataset.prepare import prepare as prepare_dataset
    from melodygen.dataset.sources import DEFAULT_CORPUS, default_dataset_dir
    from melodygen.encodings import get_encoding

    sources = [str(s) for s in sources] or [DEFAULT_CORPUS]
    out = Path(out) if out is not None else default_dataset_dir(sources, encoding)
    return prepare_dataset(sources, get_encoding(encoding, **settings), out, val_fraction=val_fraction,
                           workers=workers, progress=progress, force=force)


def train(config: PathLike, *, out: PathLike, overrides: Sequence[str] = (), resume: bool = False,
          overwrite: bool = False, progress: bool = False):
    """Train from a TOML config (`overrides` as `--set` takes them, e.g. "training.max_steps=50")
    into the run folder `out`, as `melodygen train`; returns its `TrainResult`."""
    from melodygen.config import load_config
    from melodygen.training import train as train_run

    return train_run(load_config(config, list(overrides)), Path(out), resume=resume, overwrite=overwrite,
                     progress=progress)


def evaluate(checkpoint: PathLike, *, data: PathLike | None = None, midi: Sequence[PathLike] = (),
             split: str = "valid", baseline: int | None = None, fit_velocities: bool = False,
             device: str = "auto") -> dict:
    """NLL (nats/event), perplexity and accuracy of a checkpoint or bundled model on a prepared
    dataset split or on MIDI files, as `melodygen evaluate`; `baseline=N` adds an N-gram's.
    `input_warning` says when the music holds ids the model never saw in training (`unseen`:
    their figures); `fit_velocities` maps its velocities to the nearest the model saw first."""
    from melodygen.evaluation import evaluate_checkpoint

    return evaluate_checkpoint(checkpoint, data_dir=data, sources=tuple(map(str, midi)), split=split,
                               device=device, baseline_order=baseline, fit_velocities=fit_velocities)


def fit(folder: PathLike, *, out: PathLike, minutes: float = 12.0, start: str | None = None,
        encoding: str | None = None, held_out: int | None = None, overrides: Sequence[str] = (),
        samples: int = 12, resume: bool = False, overwrite: bool = False, progress: bool = False):
    """Fit a model to the MIDI files under `folder` into the folder `out`, as `melodygen fit`:
    `start` is a bundled model or checkpoint to fine-tune, "scratch", or None (measure both);
    `overrides` are `section.key=value` on every run's config, as `train --set`;
    returns its `FitResult` (`model`: the checkpoint, usable with `load`; `report`, `card`,
    `state`: the choices and figures). Progress lines go to stdout.

    >>> result = fit("my-reels/", out="fits/reels")  # doctest: +SKIP
    >>> load(result.model).generate(bars=16)  # doctest: +SKIP
    """
    from melodygen.fitting import fit as fit_folder

    return fit_folder(folder, out, minutes=minutes, start=start, encoding=encoding, held_out=held_out,
                      overrides=tuple(overrides), samples=samples, resume=resume, overwrite=overwrite,
                      progress=progress, echo=print)
