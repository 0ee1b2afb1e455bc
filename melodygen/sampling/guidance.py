"""Guidance for an encoder-decoder (`--guidance W`): classifier-free guidance (Ho & Salimans
2022) over what its encoder reads.

The model is read twice at every step, in one batch of twice the rows: having read the given
music (its source), and having read an empty source, which it learned to write from too
(`training.source_dropout`). Each draw's log-probabilities are the empty source's plus W times
the difference between the two (then temperature, top-k/top-p and the grammar, as always).
W = 1 is the model as it is; W > 1 leans harder on what only the source tells it: for an
accompanist, the melody still to come in the bar whose chord it is writing (the decoder's own
stream has the melody only up to where it is). Measured in docs/benchmarks.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from melodygen.encodings.vocab import BOS_ID, EOS_ID, PAD_ID


@dataclass
class GuidedState:
    """The wrapped model's state over 2 x `rows` rows: the source's rows, then the empty source's."""

    inner: object
    rows: int


class Guided(torch.nn.Module):
    """`model` (an encoder-decoder) stepped with and without its source, its log-probabilities
    mixed with weight `scale` (module docstring). It has the step contract `decoding` uses
    (`start`, `step`, `select_rows`) and no fast path of its own."""

    kind = "guided"
    reads_source = True

    def __init__(self, model: torch.nn.Module, scale: float):
        super().__init__()
        self.model, self.scale, self.settings = model, float(scale), model.settings

    @property
    def max_context(self):
        return self.model.max_context

    def start(self, source: torch.Tensor) -> GuidedState:
        """Reads `source` (B, S) and, in B more rows, an empty source (`BOS EOS`, padded)."""
        empty = torch.full_like(source, PAD_ID)
        empty[:, 0], empty[:, 1] = BOS_ID, EOS_ID
        return GuidedState(self.model.start(torch.cat([source, empty])), source.shape[0])

    def step(self, ids: torch.Tensor, state: GuidedState) -> tuple[torch.Tensor, GuidedState]:
        logits, inner = self.model.step(torch.cat([ids, ids]), state.inner)
        given, empty = torch.log_softmax(logits.float(), dim=-1).chunk(2)
        return empty + self.scale * (given - empty), GuidedState(inner, state.rows)

    def select_rows(self, state: GuidedState, rows: torch.Tensor) -> GuidedState:
        both = torch.cat([rows, rows + state.rows])
        return GuidedState(self.model.select_rows(state.inner, both), len(rows))
