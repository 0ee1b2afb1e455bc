"""An encoder-only model that fills blanks from both sides (BERT's shape, Coconet's job).

    ids (B, T), some of them blanks -> embedding -> n_layers x bidirectional block -> LN -> head
    -> logits (B, T, V): at each blank, what the erased id was

Its settings are the decoder-only Transformer's (`TransformerSettings`, rotary positions only).
It reads an encoding with blanks (the voices grid, `encodings.voices`: a blank is a cell of a
known voice whose content is erased). Trained on windows with cells erased at random (scattered
notes, a stretch of every voice, one voice; `dataset.blanks`), its logits at a blank use the
music after it as much as the music before, which a left-to-right model cannot: infilled bars
then join the bars that follow. Sampling fills blanks a few at a time, the surest first, each
round reading what the rounds before wrote (`sampling.blanks`, after MaskGIT's schedule and
Coconet's iterated resampling).

It does not write left to right: `step` refuses in one line (`sample --infill A-B`, `--bars N`
and `--accompany` go through `sampling.blanks` instead).
"""

from __future__ import annotations

import torch
from torch import LongTensor, Tensor, nn

from melodygen.encodings.vocab import PAD_ID
from melodygen.errors import ConfigError
from melodygen.models.base import SequenceModel
from melodygen.models.transformer import EncoderBlock, TransformerSettings, init_gpt2, rope_tables

WRITES_NOTHING_LEFT_TO_RIGHT = ("a masked model fills blanks; it does not write left to right: give it --infill A-B "
                                "with --primer, --accompany, or --bars N")


class MaskedTransformer(SequenceModel):
    """The encoder-only model (module docstring)."""

    kind = "masked"
    fills_blanks = True

    def __init__(self, settings: TransformerSettings, vocab_size: int):
        super().__init__(settings, vocab_size)
        s = settings
        if s.positions != "rope":
            raise ConfigError(f"model 'masked': positions must be rope (got {s.positions!r})")
        self.embed = nn.Embedding(vocab_size, s.d_model)
        self.drop = nn.Dropout(s.dropout)
        self.blocks = nn.ModuleList(EncoderBlock(s) for _ in range(s.n_layers))
        self.ln_f = nn.LayerNorm(s.d_model)
        self.head = nn.Linear(s.d_model, vocab_size, bias=False)
        init_gpt2(self, [p for b in self.blocks for p in (b.attn.proj, b.mlp[2])], s.n_layers)
        if s.tie_weights:
            self.head.weight = self.embed.weight

    @property
    def max_context(self) -> int:
        return self.settings.max_context

    def forward(self, ids: LongTensor) -> Tensor:
        """ids (B, T) -> logits (B, T, V), every position reading the whole window (PAD left out)."""
        return self.head(self._states(ids))

    def embedding(self, ids: LongTensor) -> Tensor:
        """(B, d_model): each row's final states averaged over its ids (PAD left out), what the
        model makes of the window as a whole (the real-vs-generated test's second judge,
        `stats.judge`)."""
        keep = (ids != PAD_ID).unsqueeze(-1).float()
        return (self._states(ids) * keep).sum(1) / keep.sum(1).clamp(min=1)

    def _states(self, ids: LongTensor) -> Tensor:
        if ids.shape[1] > self.max_context:
            raise ConfigError(f"a window of {ids.shape[1]} ids is longer than the masked model's max_context "
                              f"{self.max_context}")
        positions = torch.arange(ids.shape[1], device=ids.device, dtype=torch.float32)
        rope = rope_tables(positions, self.settings.d_model // self.settings.n_heads)
        keep = ids != PAD_ID
        x = self.drop(self.embed(ids))
        for block in self.blocks:
            x = block(x, rope, keep)
        return self.ln_f(x)

    def step(self, ids: LongTensor, state=None):
        raise ConfigError(WRITES_NOTHING_LEFT_TO_RIGHT)

    def select_rows(self, state, rows: LongTensor):
        raise ConfigError(WRITES_NOTHING_LEFT_TO_RIGHT)
