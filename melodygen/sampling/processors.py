"""Logit processors: what edits the logits of each draw before temperature and filtering.

A processor is any callable `processor(logits, last_ids) -> logits` taking the (B, V) float
logits of the next draw and the ids drawn at the previous step, (B,) or None before the first
draw, and returning (B, V) logits (a new tensor; the input may be shared). It may keep state
from call to call (a grammar that tracks where each row is), so build one per `sample` call;
such a processor also has `select_rows(rows)`, which beam search calls when it reorders or copies
rows. -inf means "never"; a processor must leave every row at least one finite logit (`sample`
raises where one did not, after its loop). Each encoding's own grammar (`Encoding.grammar`) is
one; `sampling.files` always adds it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import torch


class LogitProcessor(Protocol):
    """The contract (module docstring): (B, V) logits and the ids drawn last -> logits."""

    def __call__(self, logits: torch.Tensor, last_ids: torch.Tensor | None) -> torch.Tensor: ...


class BanIds:
    """Never draw `ids` (e.g. PAD and BOS; EOS when every piece must run to its length)."""

    def __init__(self, ids: Sequence[int], vocab_size: int, device: str | torch.device = "cpu"):
        self.banned = torch.zeros(vocab_size, dtype=torch.bool, device=device)
        self.banned[list(ids)] = True

    def __call__(self, logits: torch.Tensor, last_ids: torch.Tensor | None) -> torch.Tensor:
        return logits.masked_fill(self.banned, -math.inf)

