"""The `SequenceModel` contract every model kind follows (see docs/ARCHITECTURE.md).

A sequence model maps ids `(B, T)` to next-id logits `(B, T, V)` with `forward`, and continues
a sequence incrementally with `step`, carrying a state (recurrent hidden state, Transformer KV
cache) so that sampling never re-runs the prefix. `select_rows` reorders or copies a state's
batch rows, for beam search and for branching several continuations from one primer. Loss and
sampling live outside the model. (Named so as not to be read as `torch.Generator`, the RNG.)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from torch import LongTensor, Tensor, nn


class SequenceModel(nn.Module, ABC):
    """Base class of the registry's models; `kind` is the registry key stored in checkpoints."""

    kind: ClassVar[str]
    # An encoder-decoder (`models.seq2seq`) also reads a source: `forward(ids, source, bar_offset)`
    # and `start(source) -> state`; batches carry it in `Batch.side`, sampling passes it to `start`.
    reads_source: ClassVar[bool] = False
    # An encoder-only model (`models.masked`) fills blanks from both sides: `forward` reads the
    # whole window, `step` refuses, and sampling fills its blanks instead (`sampling.blanks`).
    fills_blanks: ClassVar[bool] = False

    def __init__(self, settings: Any, vocab_size: int):
        super().__init__()
        self.settings = settings
        self.vocab_size = vocab_size

    @property
    def max_context(self) -> int | None:
        """The longest `forward` input (Transformer block size); None means unbounded."""
        return None

    @abstractmethod
    def forward(self, ids: LongTensor) -> Tensor:
        """ids (B, T) -> logits (B, T, V); logits at t depend on ids[:, :t + 1] only."""

    @abstractmethod
    def step(self, ids: LongTensor, state: Any = None) -> tuple[Tensor, Any]:
        """ids (B, T') continuing `state` (None starts fresh) -> (logits (B, T', V), new state).

        Stepping a sequence in any chunks gives the same logits as `forward` on the whole of
        it (within float tolerance, in eval mode, while it fits `max_context`). A state may be
        updated in place (the Transformer's KV cache is): continue from the returned one only.
        """

    @abstractmethod
    def select_rows(self, state: Any, rows: LongTensor) -> Any:
        """A new state whose row i is row `rows[i]` of `state` (rows may repeat or be left out:
        B' = len(rows)); stepping it continues each chosen row exactly as the original would.
        `state` itself is left as it was."""
