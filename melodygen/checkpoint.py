"""Checkpoints: the unit of reuse, saved atomically and loaded with `weights_only=True`.

The layout (docs/ARCHITECTURE.md) is plain dicts, lists, numbers and tensors:

    {"format": "melodygen-checkpoint", "format_version": 1, "melodygen_version": "0.1.0",
     "model": {"kind", "settings", "vocab_size", "state_dict"}, "encoding": Encoding.to_dict(),
     "run_config": {...}, "step": int, "best_val_nll": float | None,
     "instruments": [int, ...],                          # multitrack: the programs it trained on
     "data_profile": {"counts": [int] * V, "transpose_range": [lo, hi],  # what it saw (below)
                      "header": [program, ...], "ranges": [[lowest, highest], ...]},
     "optimizer": ..., "scheduler": ..., "rng": ...}      # the last three only for training

`data_profile` (`DATA_PROFILE`) is the data profile of `dataset.profile`: how often each id occurs
in the train split, and the transpositions it trained with, so that `evaluate` and sampling can
say when a file holds ids the model never saw. Training writes it; a checkpoint without it (the
bundled models, older runs) gets it counted from its run's dataset where that is found.

`save` writes a temp file beside the target and renames it over, so an interrupted save never
leaves a half-written checkpoint. Every problem reading one is a `CheckpointError` naming it,
among them a model trained on ids its encoder no longer writes: the encoding's stream version
(`Encoding.stream_version`; none recorded, as in checkpoints made before versions existed,
counts as 1) must be this melodygen's.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from melodygen import __version__
from melodygen.atomic import atomic_write
from melodygen.errors import CheckpointError, MelodygenError

FORMAT = "melodygen-checkpoint"
FORMAT_VERSION = 1
DAMAGED_LOGITS = "the model gives NaN or infinite logits: its weights are damaged or its training diverged"
"""Why a model whose weights are all finite is refused all the same (they overflow): `evaluate`
says it of non-finite figures, in the words of `sampling.decoding`'s check of the first logits."""
DATA_PROFILE = "data_profile"
"""The key of the data profile (`dataset.profile.DataProfile.to_dict`); optional."""


def make_checkpoint(*, model_kind: str, model_settings: dict, model: torch.nn.Module,
                    encoding, run_config: dict, step: int, best_val_nll: float | None,
                    training_state: dict | None = None, instruments: list[int] | None = None,
                    data_profile: dict | None = None) -> dict:
    """The checkpoint dict of `model` (unwrapped: no DDP or compile prefixes in its keys).
    `training_state` adds "optimizer", "scheduler" and "rng" for `--resume`; `instruments`, the
    instruments of its training data (an encoding that keeps instruments), lets sampling refuse
    an instrument the model never heard; `data_profile` (`DataProfile.to_dict()` of its train
    split) lets `evaluate` and sampling say when given music holds ids the model never saw."""
    state_dict = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    ckpt = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "melodygen_version": __version__,
        "model": {"kind": model_kind, "settings": dict(model_settings),
                  "vocab_size": int(model.vocab_size), "state_dict": state_dict},
        "encoding": encoding.to_dict(), "run_config": run_config,
        "step": int(step), "best_val_nll": None if best_val_nll is None else float(best_val_nll),
    }
    if instruments is not None:
        ckpt["instruments"] = [int(i) for i in instruments]
    if data_profile is not None:
        ckpt[DATA_PROFILE] = data_profile
    ckpt.update(training_state or {})
    return ckpt


def save(obj: dict, path: str | os.PathLike) -> Path:
    """Writes `obj` to `path` atomically (temp file in the same folder + `os.replace`)."""
    path = Path(path)
    with atomic_write(path) as file:
        torch.save(obj, file)
    return path


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Reads and checks a checkpoint dict; `CheckpointError` naming the file on any problem."""
    path = Path(path)
    ckpt = load_unchecked(path, map_location)
    _check_layout(ckpt, path)
    _check_stream(ckpt["encoding"], path)
    return ckpt


def load_unchecked(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """What `torch.load(weights_only=True)` reads from `path`, its layout unchecked (e.g. to
    look for a run config); `CheckpointError` naming the file when it cannot be read."""
    path = resolve_checkpoint(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except PermissionError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch's unpickler raises anything (KeyError...) on foreign bytes
        raise CheckpointError(f"{path}: not a readable checkpoint ({_unreadable_reason(path, exc)})") from None


def resolve_checkpoint(path_or_name: str | os.PathLike) -> Path:
    """A checkpoint file, or the file of the bundled model of that name (`melodygen models`);
    `CheckpointError` when it is neither."""
    path = Path(path_or_name)
    if path.is_file():
        return path
    from melodygen.pretrained import bundled_checkpoint, bundled_models

    found = bundled_checkpoint(str(path_or_name))
    if found is not None:
        return found
    names = ", ".join(m.name for m in bundled_models())
    hint = f" (bundled models: {names})" if names else ""
    raise CheckpointError(f"{path}: no such checkpoint file or bundled model{hint}")


def _unreadable_reason(path: Path, exc: Exception) -> str:
    """Why torch could not load `path`, in our words (torch's advice to pass weights_only=False
    is wrong for a checkpoint: melodygen's only hold plain dicts and tensors)."""
    with open(path, "rb") as file:
        head = file.read(4)
    if not head:
        return "empty file (0 bytes)"
    if head == b"MThd":
        return "a MIDI file, not a checkpoint"
    if head != b"PK\x03\x04":  # torch.save writes a zip archive
        return "not a PyTorch checkpoint file"
    if isinstance(exc, pickle.UnpicklingError):
        return "it holds Python objects besides plain dicts and tensors: not saved by melodygen"
    return "truncated or damaged PyTorch archive"


def _check_layout(ckpt: Any, path: Path) -> None:
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a melodygen checkpoint")
    if ckpt.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {ckpt.get('format_version')!r} (melodygen "
            f"{ckpt.get('melodygen_version')}), this melodygen {__version__} reads version {FORMAT_VERSION}")
    missing = [k for k in ("model", "encoding", "run_config", "step") if k not in ckpt]
    model = ckpt.get("model")
    if not missing and isinstance(model, dict):
        missing = [f"model.{k}" for k in ("kind", "settings", "vocab_size", "state_dict") if k not in model]
    if missing or not isinstance(model, dict):
        raise CheckpointError(f"{path}: incomplete checkpoint (missing {', '.join(missing) or 'model'})")
    wrong = [name for name, value, kind in _typed_fields(ckpt) if not isinstance(value, kind)]
    if wrong:
        raise CheckpointError(f"{path}: damaged checkpoint ({', '.join(wrong)} of the wrong type)")


def _check_stream(encoding: dict, path: Path) -> None:
    """Refuse a model trained on another version of its encoding's stream: the same ids meant
    other music then (also an unknown encoding, or a damaged version)."""
    from melodygen.encodings import stream_versions

    try:
        trained, current = stream_versions(encoding)
    except MelodygenError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    trained_on = f"{path}: the model was trained on the {encoding['name']!r} encoding's stream version {trained}"
    if trained < current:
        raise CheckpointError(f"{trained_on}, a stream this melodygen no longer writes (it writes version "
                              f"{current}); train it again")
    if trained > current:  # saved by a newer melodygen
        raise CheckpointError(f"{trained_on}, newer than this melodygen {__version__} knows (version "
                              f"{current}); upgrade melodygen to use it")


def _typed_fields(ckpt: dict) -> list[tuple[str, Any, type | tuple[type, ...]]]:
    """(name, value, expected type) of the fields loading and resuming rely on."""
    model = ckpt["model"]
    return [("step", ckpt["step"], int), ("run_config", ckpt["run_config"], dict),
            ("encoding", ckpt["encoding"], dict), ("model.kind", model["kind"], str),
            ("model.settings", model["settings"], dict), ("model.vocab_size", model["vocab_size"], int),
            ("model.state_dict", model["state_dict"], dict),
            ("best_val_nll", ckpt.get("best_val_nll"), (int, float, type(None)))]


def build_from_checkpoint(ckpt: dict, path: str | os.PathLike, device: str | torch.device = "cpu"):
    """(model with the checkpoint's weights on `device`, encoding) from a loaded checkpoint.

    The settings are checked against the file's weights before the model is built: a
    checkpoint is only as large as its weights, while its settings could ask for gigabytes
    (a 4 MB LSTM whose settings say hidden_size = 12000 took 7 GB and 20 s to refuse)."""
    from melodygen.encodings import encoding_from_dict
    from melodygen.models import build_model

    spec = ckpt["model"]
    try:
        encoding = encoding_from_dict(ckpt["encoding"])
        if encoding.vocab.size != spec["vocab_size"]:
            raise CheckpointError(f"model vocabulary {spec['vocab_size']} != encoding vocabulary "
                                  f"{encoding.vocab.size}")
        check_weights(spec)
        model = build_model(spec["kind"], spec["settings"], spec["vocab_size"])
        model.load_state_dict(spec["state_dict"])
    except MelodygenError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    except RuntimeError as exc:  # keys and shapes were checked: a dtype or layout torch cannot copy
        raise CheckpointError(f"{path}: weights do not fit a {spec['kind']!r} model "
                              f"({' '.join(str(exc).split())[:200]})") from None  # torch's lines, joined
    return model.to(device), encoding


def check_weights(spec: dict) -> None:
    """Refuses, with `CheckpointError`, a checkpoint's `model` entry whose state_dict is not the
    one its kind, settings and vocab_size make, or holds NaN or infinity (a damaged file or a
    diverged run): every loader (`sample`, `evaluate`, the API) stops here, before anything
    the size of the model is allocated."""
    misfits = _misfits(spec)
    if misfits:
        raise CheckpointError(f"weights do not fit a {spec['kind']!r} model with these settings "
                              f"({'; '.join(misfits[:3])}{'; ...' if len(misfits) > 3 else ''})")
    damaged = [key for key, tensor in spec["state_dict"].items()
               if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if damaged:
        raise CheckpointError(f"damaged weights: NaN or infinite values in {', '.join(damaged[:3])}"
                              f"{' ...' if len(damaged) > 3 else ''}")


# the settings that repeat a layer (recurrent, transformer; an encoder-decoder's two stacks)
_DEPTH_SETTINGS = ("num_layers", "n_layers", "encoder_layers")


def _misfits(spec: dict) -> list[str]:
    """How the state_dict differs from the model's: missing and unexpected keys, other shapes.
    The model is built on the `meta` device (shapes, no storage), once its depth is possible:
    every layer owns tensors of the state_dict, and building takes time per layer even on
    `meta` (an LSTM of 20,000 layers: 50 s)."""
    from melodygen.models import build_model, make_settings

    weights = spec["state_dict"]
    settings = make_settings(spec["kind"], spec["settings"])
    depth = sum(getattr(settings, name, 0) for name in _DEPTH_SETTINGS)
    if depth > len(weights):
        return [f"{depth} layers in {len(weights)} tensors"]
    with torch.device("meta"):
        expected = build_model(spec["kind"], spec["settings"], spec["vocab_size"]).state_dict()
    misfits = [f"missing {key}" for key in expected if key not in weights]
    misfits += [f"unexpected {key}" for key in weights if key not in expected]
    return misfits + [f"{key} {_shape(weights[key])} != {tuple(want.shape)}" for key, want in expected.items()
                      if key in weights and _shape(weights[key]) != tuple(want.shape)]


def _shape(value: Any) -> tuple[int, ...] | str:
    """A tensor's shape, or what else the state_dict holds there (never equal to a shape)."""
    return tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


def load_for_inference(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """`(model in eval mode on device, encoding, checkpoint dict)`: all sampling needs."""
    ckpt = load(path, map_location="cpu")
    model, encoding = build_from_checkpoint(ckpt, path, device)
    model.eval()
    return model, encoding, ckpt
