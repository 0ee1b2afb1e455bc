"""Beam search over sampled branches (Magenta's `beam_size` / `branch_factor` / `steps_per_iteration`).

Plain sampling keeps whatever it draws. Here `beam_size` sequences are kept, each as
`branch_factor` branches that draw `steps_per_iteration` ids (in the decode loop, `loop.run`, with
`_Beams` as its stepper: the same specials' ban, temperature and top-k/top-p as `decoding.sample`);
then the `beam_size` branches whose ids are the most likely under the model (summed log-probability
of the model's own softmax, before temperature and filtering) survive, their states picked with
the model's `select_rows`, and branch again. At the end each kept sequence's best branch competes
for the outputs, so no two outputs are branches of one sequence. With beam 1 and branch 1 this is
`decoding.sample` with EOS banned, id for id.
Drawing branches rather than taking the top ids keeps some of sampling's variety; like every beam
search it favours safe, repetitive continuations (it is known to loop), and it looks only
`steps_per_iteration` ids ahead when it prunes: measure what it does before relying on it.

Lengths are in events: every sequence runs `max_events` ids (EOS is never drawn). A logit
processor that keeps state per row must have `select_rows(rows)` (an encoding's grammar does):
pruning reorders the rows, and it is told so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from melodygen.encodings.vocab import BOS_ID, EOS_ID, PAD_ID
from melodygen.errors import ConfigError
from melodygen.sampling.decoding import Drawer, decoding
from melodygen.sampling.loop import run
from melodygen.sampling.processors import BanIds, LogitProcessor


@dataclass(frozen=True)
class BeamResult:
    """A kept sequence: its new ids and their summed log-probability under the model (nats)."""

    ids: list[int]
    log_likelihood: float


def beam_search(model, encoding, *, beam_size: int, branch_factor: int = 2, steps_per_iteration: int = 1,
                num_outputs: int = 1, max_events: int = 512, temperature: float = 1.0,
                top_k: int | None = None, top_p: float | None = None, primer_ids: Sequence[int] = (),
                generator: torch.Generator | None = None, device: str | torch.device = "cpu",
                processors: Sequence[LogitProcessor] = (), source: Sequence[int] | None = None) -> list[BeamResult]:
    """The `num_outputs` most likely of the `beam_size` kept sequences after `max_events` ids, best
    first (see the module docstring); `source` as `decoding.sample`'s."""
    if not 1 <= num_outputs <= beam_size:
        raise ConfigError(f"beam search keeps {beam_size} sequence(s): it cannot return {num_outputs}")
    if min(branch_factor, steps_per_iteration) < 1:
        raise ConfigError("branch_factor and steps_per_iteration must be >= 1")
    drawer = Drawer([BanIds([PAD_ID, BOS_ID, EOS_ID], encoding.vocab.size, device), *processors],
                    temperature, top_k, top_p, generator)
    rows = beam_size * branch_factor  # row r is branch r % branch_factor of sequence r // branch_factor
    with decoding(model, primer_ids, rows, device, source) as (logits, state):
        beams = _Beams(model, state, logits[:, -1], drawer, beam_size, branch_factor, steps_per_iteration)
        for ids in run(logits[:, -1], beams, drawer, max_events):
            beams.record(ids)
    scores = beams.scores
    best_branch = scores.view(beam_size, branch_factor).argmax(dim=1) + torch.arange(
        0, rows, branch_factor, device=scores.device)  # (beam_size,) one row per kept sequence
    order = best_branch[torch.argsort(scores[best_branch], descending=True, stable=True)][:num_outputs]
    return [BeamResult(beams.drawn[i].tolist(), float(scores[i])) for i in order.tolist()]


class _Beams:
    """Beam search as a stepper of the decode loop: `model.step` over every branch, then, every
    `steps_per_iteration` ids, the rows of the best `beam_size` branches (`_survivors`) in the
    state, the logits, the processors (`Drawer.select_rows`) and the ids drawn so far. The
    loop's caller `record`s each draw as it comes: its ids and their log-probability under the
    model's own softmax (before processors, temperature and filtering)."""

    def __init__(self, model, state, logits: torch.Tensor, drawer: Drawer, beam_size: int, branch_factor: int,
                 steps_per_iteration: int):
        self.model, self.state, self.logits, self.drawer = model, state, logits, drawer
        self.beam_size, self.branch_factor, self.steps_per_iteration = beam_size, branch_factor, steps_per_iteration
        self.steps = 0
        self.scores = torch.zeros(logits.shape[0], dtype=torch.float64, device=logits.device)
        self.drawn = torch.zeros(logits.shape[0], 0, dtype=torch.long, device=logits.device)

    def record(self, ids: torch.Tensor) -> None:
        """Adds a draw's ids (B,), drawn from `self.logits`, to each row's sequence and score."""
        self.scores += torch.log_softmax(self.logits.float(), dim=-1).gather(1, ids[:, None])[:, 0]
        self.drawn = torch.cat([self.drawn, ids[:, None]], dim=1)

    def __call__(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, self.state = self.model.step(ids[:, None], self.state)
        self.logits, self.steps = out[:, -1], self.steps + 1
        if self.steps % self.steps_per_iteration:
            return self.logits, ids
        keep = _survivors(self.scores, self.beam_size, self.branch_factor)
        self.state, self.logits = self.model.select_rows(self.state, keep), self.logits.index_select(0, keep)
        self.drawer.select_rows(keep)
        self.scores, self.drawn = self.scores[keep], self.drawn[keep]
        return self.logits, ids[keep]


def _survivors(scores: torch.Tensor, beam_size: int, branch_factor: int) -> torch.Tensor:
    """Row indices: the `beam_size` best rows, each repeated `branch_factor` times."""
    best = torch.argsort(scores, descending=True, stable=True)[:beam_size]
    return best.repeat_interleave(branch_factor)
