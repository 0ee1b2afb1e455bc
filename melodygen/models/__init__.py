"""The model registry: kind name -> (settings dataclass, model class), and `build_model`.

    model = build_model("lstm", {"hidden_size": 512}, vocab_size=encoding.vocab.size)
    # what a checkpoint stores; build_model(**spec) rebuilds the model
    spec = {"kind": model.kind, "settings": settings_to_dict(model.settings),
            "vocab_size": model.vocab_size}

`rnn`, `lstm` and `gru` share `RecurrentSettings`, `attention_lstm` adds `attention_length`;
`transformer` has `TransformerSettings`; `cnn` (causal dilated convolutions) has `ConvSettings`;
the encoder-decoders `seq2seq` (Transformer) and `seq2seq_lstm` have `Seq2SeqSettings` and
`Seq2SeqLSTMSettings` (`models.seq2seq`); the encoder-only `masked` (fills blanks) has
`TransformerSettings` (rotary positions only).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

from torch import nn

from melodygen.errors import ConfigError
from melodygen.models.base import SequenceModel
from melodygen.models.cnn import ConvModel, ConvSettings
from melodygen.models.masked import MaskedTransformer
from melodygen.models.recurrent import (
    AttentionLSTMModel,
    AttentionLSTMSettings,
    ElmanRNN,
    GRUModel,
    LSTMModel,
    RecurrentSettings,
)
from melodygen.models.seq2seq import Seq2SeqLSTM, Seq2SeqLSTMSettings, Seq2SeqSettings, Seq2SeqTransformer
from melodygen.models.transformer import TransformerModel, TransformerSettings
from melodygen.settings import build


class ModelEntry(NamedTuple):
    """A registry entry: a model kind's settings dataclass and its module class."""

    settings_type: type
    model_type: type[SequenceModel]


MODELS: dict[str, ModelEntry] = {
    "rnn": ModelEntry(RecurrentSettings, ElmanRNN),
    "lstm": ModelEntry(RecurrentSettings, LSTMModel),
    "gru": ModelEntry(RecurrentSettings, GRUModel),
    "attention_lstm": ModelEntry(AttentionLSTMSettings, AttentionLSTMModel),
    "transformer": ModelEntry(TransformerSettings, TransformerModel),
    "cnn": ModelEntry(ConvSettings, ConvModel),
    "seq2seq": ModelEntry(Seq2SeqSettings, Seq2SeqTransformer),
    "seq2seq_lstm": ModelEntry(Seq2SeqLSTMSettings, Seq2SeqLSTM),
    "masked": ModelEntry(TransformerSettings, MaskedTransformer),
}


def make_settings(kind: str, settings: dict[str, Any]) -> Any:
    """The frozen settings of model `kind` from plain values (missing keys take defaults).

    Raises one `ConfigError` listing every problem: unknown kind, unknown keys (with the
    closest valid name), wrong types, bad values.
    """
    if kind not in MODELS:
        raise ConfigError(f"unknown model kind {kind!r} (known: {', '.join(MODELS)})")
    return build(MODELS[kind].settings_type, settings, f"model {kind!r}")


def build_model(kind: str, settings: dict[str, Any], vocab_size: int) -> SequenceModel:
    """A freshly initialised sequence model of `kind` for `vocab_size` ids (ConfigError if bad)."""
    resolved = make_settings(kind, settings)
    if not isinstance(vocab_size, int) or vocab_size < 1:
        raise ConfigError(f"vocab_size must be a positive integer, got {vocab_size!r}")
    return MODELS[kind].model_type(resolved, vocab_size)


def settings_to_dict(settings: Any) -> dict[str, Any]:
    """Plain dict of a settings dataclass (all fields resolved), as stored in checkpoints."""
    return dataclasses.asdict(settings)


def count_parameters(model: nn.Module) -> int:
    """Number of distinct parameters (a tied embedding/head counts once)."""
    return sum(p.numel() for p in model.parameters())


__all__ = ["MODELS", "SequenceModel", "ModelEntry", "build_model", "count_parameters",
           "make_settings", "settings_to_dict"]
