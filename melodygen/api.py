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

from melodygen.sampling.pieces import Piece

PathLike = str | os.PathLike


@dataclass
class Model:
    """A loaded generator: its network (eval mode, on `device`) and encoding, ready to sample."""

    model: Any
    encoding: Any
    checkpoint: dict
    source: str
    device: str

    def generate(self, n: int = 1, *, bars: float | None = None, seconds: float | None = None,
                 events: int | None = None, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, primer: PathLike | None = None, continuation_only: bool = False,
                 seed: int = 0, tempo: float | None = None, program: int | None = None,
                 instruments: Sequence[str | int] | None = None, allow_early_end: bool = False,
                 beam: int = 0, branch_factor: int = 2, fast: bool = True, draft: bool = False,
                 accompany: PathLike | None = None, given_tracks: Sequence[int] | None = None,
                 infill: tuple[int, int] | None = None, key: str | None = None,
                 chords: str | Sequence[str] | None = None,
                 density: int | Sequence[int] | None = None, strict_density: bool = False) -> list[Piece]:
        """`n` new pieces, as `melodygen sample` makes them (see its --help for each option).

        At most one of `bars`, `seconds`, `events`; none: until the model ends a piece (at most
        512 events). The same `seed` gives the same pieces. `instruments` (multitrack models):
        GM names, families or program numbers, e.g. ["violin", "piano"]. `accompany` (a MIDI
        file; `given_tracks` 1-based, default all) gives tracks for the model to accompany with
        new `instruments`; `infill=(a, b)` writes bars a..b of `primer` again (multitrack models).
        `key`, `chords` (one per new bar, repeated) and `density` (notes per bar, one or one per
        bar; `strict_density` holds every bar to it) steer a model trained with controls; each
        piece's `adherence` says how it obeyed. `draft` (n=1, a Transformer): check ids guessed
        from the piece several per model call, the same pieces (`sample --draft`).

        >>> model = load("folk-melody")
        >>> [len(p.ids) for p in model.generate(n=3, events=20, seed=5)]
        [20, 20, 20]
        """
        from melodygen.encodings.multitrack_controls import ControlRequest
        from melodygen.instruments import parse_instrument
        from melodygen.sampling.files import SampleRequest, generate_pieces, plan_generation

        chosen = None if instruments is None else tuple(
            i if isinstance(i, int) else parse_instrument(i) for i in instruments)
        counts = [density] if isinstance(density, int) else density
        controls = (None if key is None and chords is None and density is None and not strict_density
                    else ControlRequest.parse(key, chords, counts, strict_density))
        request = SampleRequest(
            num_outputs=n, temperature=temperature, top_k=top_k, top_p=top_p, events=events,
            seconds=seconds, bars=bars, primer=Path(primer) if primer is not None else None,
            continuation_only=continuation_only, seed=seed, qpm=tempo, program=program,
            instruments=chosen, allow_early_end=allow_early_end, beam=beam, branch_factor=branch_factor,
            fast=fast, draft=draft, accompany=Path(accompany) if accompany is not None else None,
            given_tracks=tuple(given_tracks) if given_tracks is not None else None,
            infill=tuple(infill) if infill is not None else None, controls=controls)
        plan = plan_generation(self.encoding, request, self.device, self.checkpoint.get("instruments"))
        return generate_pieces(self.model, self.encoding, request, self.device, plan)

    def __repr__(self) -> str:
        spec = self.checkpoint["model"]
        return (f"Model({self.source!r}: {spec['kind']} over the {self.encoding.name} encoding, "
                f"{self.encoding.vocab.size} ids, on {self.device})")


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
             split: str = "valid", baseline: int | None = None, device: str = "auto") -> dict:
    """NLL (nats/event), perplexity and accuracy of a checkpoint or bundled model on a prepared
    dataset split or on MIDI files, as `melodygen evaluate`; `baseline=N` adds an N-gram's."""
    from melodygen.evaluation import evaluate_checkpoint

    return evaluate_checkpoint(checkpoint, data_dir=data, sources=tuple(map(str, midi)), split=split,
                               device=device, baseline_order=baseline)
