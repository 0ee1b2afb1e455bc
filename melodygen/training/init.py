"""A run that starts from another checkpoint's weights (`training.init_from`): a fine-tune, or an
encoder-decoder warm-started from a decoder-only Transformer (its decoder and encoder take that
model's blocks: `Seq2SeqTransformer.state_from_decoder_only`).

The checkpoint (a file, or a bundled model's name) must hold weights of the shapes the run's
model has, apart from the vocabulary: the run's encoding may have ids the checkpoint's lacks (a
wider pitch range, more tracks). The rows of the embedding and output layers are matched by
token name; a token the checkpoint never had starts at the mean of its rows, so that it begins
as an average id rather than as noise or as an id the model is sure of. Ids the checkpoint has
but never saw in training keep their (untrained) rows: the fine-tune's data teaches them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from melodygen.errors import ConfigError


@dataclass(frozen=True)
class Start:
    """What the run started from: the checkpoint, its step, the token names of the run's
    vocabulary that it lacked (their rows were added), and the names of the model's weights it
    gave nothing in their own role (a warm start's encoder and cross-attention)."""

    source: str
    step: int
    added: tuple[str, ...]
    new: frozenset[str] = frozenset()


def load_initial_weights(model: torch.nn.Module, encoding, source: str) -> Start:
    """Copy the weights of checkpoint `source` into `model` (in place), mapping the vocabulary
    rows by token name; `ConfigError` in one line when the shapes do not fit."""
    from melodygen.checkpoint import load_for_inference

    base, base_encoding, ckpt = load_for_inference(source, "cpu")
    old_tokens, new_tokens = _tokens(base_encoding), _tokens(encoding)
    old_state, new_state = base.state_dict(), model.state_dict()
    new_weights = frozenset()
    if base.kind != model.kind and hasattr(model, "state_from_decoder_only"):
        _check_decoder_only(base, model, source)
        old_state, new_weights = model.state_from_decoder_only(old_state)
    if set(old_state) != set(new_state):
        raise ConfigError(f"training.init_from {source}: its {ckpt['model']['kind']} model has other layers than "
                          f"the config's {model.kind}; use its [model] settings")
    rows = _row_map(old_tokens, new_tokens)
    state = {}
    for key, new in new_state.items():
        old = old_state[key]
        if old_tokens != new_tokens and _is_vocab(old, new, old_tokens, new_tokens):
            state[key] = _remapped(old, rows)
        elif old.shape == new.shape:
            state[key] = old
        else:
            raise ConfigError(f"training.init_from {source}: {key} is {tuple(old.shape)} there and "
                              f"{tuple(new.shape)} in the config's model; use its [model] settings")
    model.load_state_dict(state)
    added = tuple(t for t, r in zip(new_tokens, rows) if r < 0)
    return Start(str(source), int(ckpt.get("step") or 0), added, new_weights)


def _check_decoder_only(base, model, source: str) -> None:
    """A decoder-only checkpoint an encoder-decoder can start from: a Transformer with rotary
    positions and the decoder's sizes (`Seq2SeqTransformer.state_from_decoder_only`)."""
    sizes = ("d_model", "n_layers", "n_heads", "d_ff", "tie_weights")
    theirs = {name: getattr(base.settings, name, None) for name in sizes}
    ours = {name: getattr(model.settings, name) for name in sizes}
    rope = getattr(base.settings, "positions", None) == "rope"
    if base.kind != "transformer" or not rope or theirs != ours:
        wanted = ", ".join(f"{name} {value}" for name, value in ours.items())
        raise ConfigError(f"training.init_from {source}: a {model.kind} model starts only from a transformer "
                          f"with rotary positions and its decoder's sizes ({wanted}); this one is a {base.kind} "
                          f"({', '.join(f'{n} {v}' for n, v in theirs.items() if v is not None)})")


def _tokens(encoding) -> list[str]:
    return [encoding.vocab.token(i) for i in range(encoding.vocab.size)]


def _row_map(old_tokens: list[str], new_tokens: list[str]) -> list[int]:
    """For each token of the new vocabulary, its row in the old one (-1 where it has none)."""
    where = {t: i for i, t in enumerate(old_tokens)}
    return [where.get(t, -1) for t in new_tokens]


def _is_vocab(old: torch.Tensor, new: torch.Tensor, old_tokens: list, new_tokens: list) -> bool:
    """A tensor with one row per id (embedding, output layer and its bias)."""
    return (old.dim() >= 1 and old.shape[0] == len(old_tokens) and new.shape[0] == len(new_tokens)
            and old.shape[1:] == new.shape[1:])


def _remapped(old: torch.Tensor, rows: list[int]) -> torch.Tensor:
    index = torch.tensor(rows)
    out = old.float().mean(0, keepdim=True).expand(len(rows), *old.shape[1:]).clone()
    kept = index >= 0
    out[kept] = old.float()[index[kept]]
    return out.to(old.dtype)
