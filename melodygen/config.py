"""The run config: a TOML file -> frozen dataclasses, with strict, typed `--set` overrides.

A config has four sections, one frozen dataclass each:

    [data]      sources = ["bundled:nottingham"]  (MIDI files/folders)  or  dataset = "runs/data/x"
    [encoding]  name = "melody", then any encoding setting, e.g. min_pitch = 48
    [model]     kind = "lstm", then any model setting, e.g. hidden_size = 256
    [training]  batch_size, seq_len, max_steps, lr, ... (see `TrainingConfig`)

Overrides use dotted keys and TOML value syntax: `training.lr=3e-4`, `data.sources=["a", "b"]`,
`training.device=cpu` (a bare word is taken as a string). A value is checked against the type of
the field it replaces (`melodygen.settings`); encoding and model names and settings are checked
by their registries (`get_encoding`, `models.make_settings`). Every unknown key, wrong type and
bad value, in the file and in the overrides, is reported together in one `ConfigError`.

Relative paths in `[data]` (`sources`, `dataset`, `cache_dir`) resolve against the folder of the
config file that holds them, overrides' against the current folder, never a guessed repository
root; the loaded config holds absolute paths, so the copy a run folder keeps means the same
from anywhere. A source `bundled:NAME` names a corpus shipped with melodygen.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from melodygen.atomic import atomic_write
from melodygen.dataset.sources import BUNDLED_PREFIX
from melodygen.errors import ConfigError
from melodygen.settings import check, collect, each


@dataclass(frozen=True)
class DataConfig:
    """Where the training ids come from: MIDI `sources` (files, folders or `bundled:NAME`,
    prepared and cached under `cache_dir` by `melodygen train`; empty means the user's cache
    folder) or a `dataset` folder made by `melodygen prepare`, which wins if set (not empty)."""

    sources: tuple[str, ...] = ("bundled:nottingham",)
    dataset: str = ""
    val_fraction: float = 0.1
    cache_dir: str = ""

    def __post_init__(self):
        check(self, {
            **each(self, ("val_fraction",), lambda v: 0 <= v < 1, "in [0, 1)"),
            "sources (MIDI files or folders) must not be empty unless dataset is set":
                lambda: bool(self.dataset or self.sources),
        })


@dataclass(frozen=True)
class EncodingConfig:
    """An encoding registry name and its settings, passed to `get_encoding(name, **settings)`."""

    name: str = "melody"
    settings: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ModelConfig:
    """A model registry kind and its settings, passed to `build_model(kind, settings, V)`."""

    kind: str = "lstm"
    settings: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingConfig:
    """The optimisation. Batches are per process: the effective batch is
    `batch_size * grad_accum * world_size` windows of `seq_len` ids.

    Zero turns off: `max_minutes` (time budget), `grad_clip`, `patience` (validations without a
    better val NLL before stopping early), `threads` (0 = the default: `melodygen train` uses the
    physical cores this process may use, `devices.pick_threads`; the library's `train()` leaves
    torch's count), `eval_max_batches` (0 = validate on the whole valid split).

    `window_starts`: "anywhere" (random windows over the concatenated pieces) or "pieces"
    (windows start at a random piece's beginning: with `seq_len` above most pieces' length,
    whole pieces, so their form, repeats and ending can be learned).

    `minor_share`: with `window_starts = "pieces"` and an encoding with the key control, the
    share of windows drawn from pieces in a minor key (by their KEY token); 0 = as the data has
    them (the Nottingham tunes: 11%), so a model that rarely met minor keys can learn to keep to one.

    `init_from`: a checkpoint file or bundled model name whose weights the run starts from (a
    fine-tune; `training.init`): its model must have the config's layers and sizes, and its
    vocabulary is matched to the run's encoding by token name; a Transformer encoder-decoder
    (`seq2seq`) may also start from a decoder-only Transformer of its decoder's sizes (a warm
    start: it starts as that model). Ignored on `--resume`. `init_lr_scale`: the learning rate of
    the weights taken from that checkpoint, as a share of `lr`; the weights it gave nothing in
    their own role (such a warm start's encoder and cross-attention) train at `lr`
    (`training.optim.make_optimizer`). 1: every weight at `lr`.

    `control_dropout`: for an encoding with controls (`multitrack_controls`), the chance that a
    window has each kind of control token (key, chord, density) taken out, and all of them
    (`dataset.windows`), so the model also learns the music without them and samples with any
    subset of them or none.

    `given_tracks`, `source_dropout`: an encoder-decoder's training pairs (`dataset.pairs`):
    the first `given_tracks` tracks of each piece are its source, read whole, and with chance
    `source_dropout` a window gets an empty source instead (so it also writes from nothing).
    Other models ignore them. `given_weight`: an encoder-decoder's loss weight on the given
    tracks' notes in its own stream, which it can copy from its source (1: like every other
    id; lower trains the tracks it writes harder, `dataset.pairs.GivenWeights`)."""

    batch_size: int = 32
    seq_len: int = 128
    max_steps: int = 2000
    max_minutes: float = 0.0
    lr: float = 2e-3
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.99)
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    label_smoothing: float = 0.0
    grad_accum: int = 1
    eval_every: int = 200
    eval_max_batches: int = 20
    log_every: int = 20
    patience: int = 0
    transpose_range: tuple[int, int] = (0, 0)
    window_starts: str = "anywhere"
    control_dropout: float = 0.3
    minor_share: float = 0.0
    init_from: str = ""
    init_lr_scale: float = 1.0
    given_tracks: int = 1
    source_dropout: float = 0.1
    given_weight: float = 1.0
    seed: int = 1234
    compile: bool = False
    threads: int = 0
    device: str = "auto"

    def __post_init__(self):
        check(self, {
            **each(self, ("batch_size", "seq_len", "max_steps", "grad_accum", "eval_every",
                          "log_every", "lr"), lambda v: v > 0, "> 0"),
            **each(self, ("max_minutes", "weight_decay", "warmup_steps", "grad_clip", "patience",
                          "threads", "eval_max_batches"), lambda v: v >= 0, ">= 0"),
            **each(self, ("min_lr_ratio", "control_dropout", "source_dropout", "given_weight"), lambda v: 0 <= v <= 1,
                   "in [0, 1]"),
            **each(self, ("minor_share",), lambda v: 0 <= v < 1, "in [0, 1)"),
            **each(self, ("init_lr_scale",), lambda v: 0 < v <= 1, "in (0, 1]"),
            **each(self, ("given_tracks",), lambda v: v >= 1, ">= 1"),
            **each(self, ("seed",), lambda v: 0 <= v < 2**63, "in [0, 2**63)"),  # what torch and numpy take
            **each(self, ("label_smoothing",), lambda v: 0 <= v < 1, "in [0, 1)"),
            **each(self, ("betas",), lambda v: all(0 <= b < 1 for b in v), "in [0, 1)"),
            **each(self, ("transpose_range",), lambda v: v[0] <= 0 <= v[1],
                   "[lo, hi] with lo <= 0 <= hi"),
            **each(self, ("device",), lambda v: v.split(":")[0] in ("auto", "cpu", "cuda", "mps"),
                   "auto, cpu, cuda, cuda:N or mps"),
            **each(self, ("window_starts",), lambda v: v in ("anywhere", "pieces"), "'anywhere' or 'pieces'"),
        })


@dataclass(frozen=True)
class RunConfig:
    """A whole run config; `to_dict()` is what checkpoints and the run folder store."""

    data: DataConfig = field(default_factory=DataConfig)
    encoding: EncodingConfig = field(default_factory=EncodingConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def to_dict(self) -> dict:
        out = {}
        for name, section in _sections(self).items():
            values = dataclasses.asdict(section)
            values.update(values.pop("settings", {}))
            out[name] = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
        return out

    def replace(self, **sections: dict[str, Any]) -> RunConfig:
        """A copy with some fields changed, e.g. `replace(training={"seed": 3})` (checked)."""
        raw = self.to_dict()
        for name, values in sections.items():
            raw.setdefault(name, {}).update(values)
        return config_from_dict(raw, "<replace>")


# Sections whose keys other than the registry name (`name`, `kind`) are free-form settings.
_FREE_FORM = {"encoding", "model"}
_SECTION_TYPES = {"data": DataConfig, "encoding": EncodingConfig, "model": ModelConfig,
                  "training": TrainingConfig}


def load_config(path: str | os.PathLike, overrides: typing.Sequence[str] = ()) -> RunConfig:
    """Reads a TOML run config and applies `section.key=value` overrides (ConfigError on any
    problem, all problems listed)."""
    path = Path(path)
    raw = read_config_dict(path)
    problems: list[str] = []
    if isinstance(raw.get("data"), dict):
        raw["data"] = _absolute_data_paths(raw["data"], path.resolve().parent)
    for item in overrides:
        _apply_override(raw, item, problems)
    return config_from_dict(raw, str(path), problems)


def read_config_dict(path: str | os.PathLike) -> dict:
    """The TOML of a config file as plain dicts, unchecked (`ConfigError` when it cannot be read
    or parsed): what `load_config` builds on, and what a report shows as it is."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None


def encoding_from_overrides(name: str, overrides: typing.Sequence[str]):
    """The encoding `name` with the settings of `encoding.key=value` overrides (a bare `key=value`
    means the same), parsed like `train --set`; every problem in one `ConfigError`. For the
    commands whose only settings are the encoding's (`prepare`, `tokens`)."""
    raw: dict = {"encoding": {"name": name}}
    problems: list[str] = []
    for item in overrides:
        key, sep, _ = item.partition("=")
        if not sep or not key.strip():
            problems.append(f"--set {item!r}: expected encoding.KEY=VALUE, e.g. encoding.min_pitch=36")
            continue
        _apply_override(raw, item if "." in key else f"encoding.{item.strip()}", problems)
    problems += [f"--set {s}.*: only encoding settings can be set here" for s in raw if s != "encoding"]
    config = config_from_dict({"encoding": raw["encoding"]}, "--set", problems)
    from melodygen.encodings import get_encoding

    return get_encoding(config.encoding.name, **config.encoding.settings)


_DATA_PATHS = ("sources", "dataset", "cache_dir")


def _absolute_data_paths(values: dict, base: Path) -> dict:
    """`[data]` values with each relative path made absolute against `base` (a value of the
    wrong type is left for the type check to report; "" and `bundled:` names stay)."""
    def absolute(text):
        if not isinstance(text, str) or not text or text.startswith(BUNDLED_PREFIX):
            return text
        return str(base / Path(text).expanduser())  # an absolute path replaces base

    values = dict(values)
    for key in _DATA_PATHS:
        if isinstance(values.get(key), list):
            values[key] = [absolute(v) for v in values[key]]
        elif key in values:
            values[key] = absolute(values[key])
    return values


def config_from_dict(raw: dict, origin: str = "<config>", problems: list[str] | None = None,
                     ) -> RunConfig:
    """Builds a `RunConfig` from nested plain dicts (a parsed TOML file or `to_dict()` output)."""
    problems = list(problems or [])
    sections = {}
    for name in raw:
        if name not in _SECTION_TYPES:
            problems.append(f"unknown section [{name}] (expected one of {', '.join(_SECTION_TYPES)})")
    for name, cls in _SECTION_TYPES.items():
        values = raw.get(name, {})
        if not isinstance(values, dict):
            problems.append(f"[{name}] must be a table, got {values!r}")
            values = {}
        if name in _FREE_FORM:
            values = _gather_settings(cls, values)
        sections[name] = collect(cls, values, problems, prefix=f"{name}.")
    _check_registries(sections["encoding"], sections["model"], problems)
    if problems:
        raise ConfigError(f"{origin}: " + "; ".join(problems))
    return RunConfig(**sections)


def _gather_settings(cls: type, values: dict) -> dict:
    """The values of a free-form section with every key but the registry name in `settings`."""
    named = {f.name for f in dataclasses.fields(cls)} - {"settings"}
    return {**{k: v for k, v in values.items() if k in named},
            "settings": {k: v for k, v in values.items() if k not in named}}


def _check_registries(encoding: EncodingConfig, model: ModelConfig, problems: list[str]) -> None:
    """The encoding and model registries judge their own names and settings."""
    from melodygen.encodings import get_encoding
    from melodygen.models import make_settings

    try:
        get_encoding(encoding.name, **encoding.settings)
    except ConfigError as exc:
        problems.append(str(exc))
    try:
        make_settings(model.kind, model.settings)
    except ConfigError as exc:
        problems.append(str(exc))


def with_overrides(raw: dict, overrides: typing.Sequence[str], origin: str = "--set") -> dict:
    """A copy of the nested config dict `raw` with `section.key=value` overrides applied and the
    result checked as a whole (`config_from_dict`); every problem in one `ConfigError`."""
    import copy

    raw, problems = copy.deepcopy(raw), []
    for item in overrides:
        _apply_override(raw, item, problems)
    config_from_dict(raw, origin, problems)
    return raw


def _apply_override(raw: dict, item: str, problems: list[str]) -> None:
    key, sep, text = item.partition("=")
    section, dot, name = key.strip().partition(".")
    if not sep or not dot or not name or "." in name:
        problems.append(f"override {item!r}: expected section.key=value, e.g. training.lr=3e-4")
        return
    if section not in _SECTION_TYPES:
        problems.append(f"override {item!r}: unknown section [{section}]")
        return
    value = parse_value(text.strip())
    if section == "data":
        value = _absolute_data_paths({name: value}, Path.cwd())[name]
    raw.setdefault(section, {})[name] = value


def parse_value(text: str) -> Any:
    """A TOML value (`3e-4`, `true`, `[1, 2]`, `"x"`); anything else is kept as a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _sections(config: RunConfig) -> dict:
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


def dumps_toml(config: RunConfig) -> str:
    """The config as TOML text that `load_config` reads back to an equal config. TOML has no
    null: a None setting is left out, which means the setting's default (None)."""
    lines = []
    for name, values in config.to_dict().items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items() if v is not None]
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # TOML spells inf and nan as Python does (settings refuse them anyway)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))


def save_config(config: RunConfig, path: str | os.PathLike) -> None:
    """Writes the resolved config as TOML, atomically (temp file + rename)."""
    with atomic_write(path, "w", encoding="utf-8") as file:
        file.write(dumps_toml(config))
