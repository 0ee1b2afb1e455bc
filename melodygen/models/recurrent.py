"""Recurrent models: Elman RNN (tanh), LSTM, GRU (one settings dataclass for the three), and the
LSTM with attention over its recent outputs (its settings add `attention_length`).

    ids (B, T) -> embedding -> dropout -> stacked recurrent layers (dropout between layers)
               -> dropout -> linear head -> logits (B, T, V)

The incremental state is the recurrent state: `h` (layers, B, hidden) for `rnn` and `gru`,
`(h, c)` for `lstm`, and `((h, c), the last attention_length - 1 outputs (B, N - 1, hidden))` for
`attention_lstm`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import LongTensor, Tensor, nn

from melodygen.models.base import SequenceModel
from melodygen.settings import check


@dataclass(frozen=True)
class RecurrentSettings:
    """Sizes of a recurrent generator. `tie_weights` shares the embedding with the output
    head (Press & Wolf 2017), which needs `embed_size == hidden_size`."""

    embed_size: int = 256
    hidden_size: int = 256
    num_layers: int = 2
    dropout: float = 0.1
    tie_weights: bool = False

    def __post_init__(self):
        check(self, {
            "embed_size, hidden_size and num_layers must be >= 1":
                lambda: min(self.embed_size, self.hidden_size, self.num_layers) >= 1,
            "dropout must be in [0, 1)": lambda: 0 <= self.dropout < 1,
            f"tie_weights needs embed_size == hidden_size (got {self.embed_size} and "
            f"{self.hidden_size})":
                lambda: not self.tie_weights or self.embed_size == self.hidden_size,
        })


@contextmanager
def onednn_disabled() -> Iterator[None]:
    """oneDNN's LSTM costs ~7x more per step at batch 1 (~3x at batch 16) than the native
    kernel on CPU; training keeps it (~1.4x faster there). Only the LSTM is affected, but
    turning it off is harmless for the others. Unlike `torch.backends.mkldnn.flags`, this
    leaves the other oneDNN flags alone and warns about nothing."""
    saved = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = saved


class RecurrentModel(SequenceModel):
    """Embedding -> `rnn_type` layers -> head; subclasses pick the recurrent layer."""

    rnn_type: ClassVar[type[nn.RNNBase]]

    def __init__(self, settings: RecurrentSettings, vocab_size: int):
        super().__init__(settings, vocab_size)
        s = settings
        self.embed = nn.Embedding(vocab_size, s.embed_size)
        self.rnn = self.rnn_type(s.embed_size, s.hidden_size, s.num_layers, batch_first=True,
                                 dropout=s.dropout if s.num_layers > 1 else 0.0)
        self.drop = nn.Dropout(s.dropout)
        self.head = nn.Linear(s.hidden_size, vocab_size)
        if s.tie_weights:
            self.head.weight = self.embed.weight

    def forward(self, ids: LongTensor) -> Tensor:
        return self._run(ids, None)[0]

    def step(self, ids: LongTensor, state: Any = None) -> tuple[Tensor, Any]:
        with onednn_disabled():
            return self._run(ids, state)

    def select_rows(self, state: Any, rows: LongTensor) -> Any:
        """`h` (layers, B, hidden), or `(h, c)` for the LSTM, indexed along the batch."""
        if isinstance(state, tuple):
            return tuple(s.index_select(1, rows) for s in state)
        return state.index_select(1, rows)

    def _run(self, ids: LongTensor, state: Any) -> tuple[Tensor, Any]:
        x = self.drop(self.embed(ids))  # (B, T, E)
        out, state = self.rnn(x, state)  # (B, T, H)
        return self.head(self.drop(out)), state


class ElmanRNN(RecurrentModel):
    """Elman network: h_t = tanh(W x_t + U h_{t-1} + b)."""

    kind = "rnn"
    rnn_type = nn.RNN


class LSTMModel(RecurrentModel):
    """LSTM (Hochreiter & Schmidhuber 1997), the Magenta melody/performance RNN cell."""

    kind = "lstm"
    rnn_type = nn.LSTM


class GRUModel(RecurrentModel):
    """GRU (Cho et al. 2014)."""

    kind = "gru"
    rnn_type = nn.GRU


@dataclass(frozen=True)
class AttentionLSTMSettings(RecurrentSettings):
    """An LSTM's sizes plus `attention_length`: how many of its most recent outputs (its own
    included) each output attends over (Magenta's attention_rnn uses 40)."""

    attention_length: int = 40

    def __post_init__(self):
        super().__post_init__()
        check(self, {"attention_length must be >= 1": lambda: self.attention_length >= 1})


class AttentionLSTMModel(LSTMModel):
    """The seed's "LSTM with attention" rung, after Magenta's attention_rnn: each LSTM output
    h_t attends over the outputs h_{t-N+1..t} (N = `attention_length`), and the head reads
    h_t + tanh(W [h_t; a_t]), the output and what it attended to (Luong's attentional state,
    kept residual so the model starts out as the plain LSTM and learns as fast). So a melody
    can look up what it played a bar or two ago without carrying it through the recurrent state.

    Attention is scaled dot-product (queries and keys are learned projections of the outputs,
    values the outputs themselves) rather than Magenta's additive scores: the same window, and
    it runs as one masked `scaled_dot_product_attention` over a whole training window. The
    step state is (LSTM state, the last N - 1 outputs); stepping equals `forward`.
    """

    kind = "attention_lstm"

    def __init__(self, settings: AttentionLSTMSettings, vocab_size: int):
        super().__init__(settings, vocab_size)
        hidden = settings.hidden_size
        self.query = nn.Linear(hidden, hidden, bias=False)
        self.key = nn.Linear(hidden, hidden, bias=False)
        self.combine = nn.Linear(2 * hidden, hidden)

    def select_rows(self, state: Any, rows: LongTensor) -> Any:
        recurrent, recent = state
        return super().select_rows(recurrent, rows), recent.index_select(0, rows)

    def _run(self, ids: LongTensor, state: Any) -> tuple[Tensor, Any]:
        recurrent, recent = state if state is not None else (None, None)
        x = self.drop(self.embed(ids))  # (B, T, E)
        out, recurrent = self.rnn(x, recurrent)  # (B, T, H)
        past = out if recent is None else torch.cat([recent, out], dim=1)  # (B, P + T, H)
        read = self._attend(out, past)
        mixed = out + torch.tanh(self.combine(torch.cat([out, read], dim=-1)))  # (B, T, H)
        logits = self.head(self.drop(mixed))
        return logits, (recurrent, past[:, -(self.settings.attention_length - 1):] if
                        self.settings.attention_length > 1 else past[:, :0])

    def _attend(self, out: Tensor, past: Tensor) -> Tensor:
        """What each of the T newest outputs reads from the window of outputs ending at it."""
        T, P = out.shape[1], past.shape[1]
        rows = torch.arange(P - T, P, device=out.device)[:, None]  # each query's place in `past`
        cols = torch.arange(P, device=out.device)[None, :]
        window = (cols <= rows) & (cols > rows - self.settings.attention_length)  # (T, P)
        q, k = self.query(out), self.key(past)
        return F.scaled_dot_product_attention(q[:, None], k[:, None], past[:, None], attn_mask=window)[:, 0]
