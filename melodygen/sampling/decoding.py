"""Sampling from a sequence model: `sample()` -> new ids, one batch, incrementally.

Every path goes through the one decode loop (`loop.run`): it feeds BOS + the primer once
through `model.step` (state=None), then one id per step with the carried state (RNN hidden
state, Transformer KV cache), so the prefix is never re-run. Each draw:

    logits -> logit processors -> / temperature -> top-k -> top-p -> softmax -> one draw

made by a `Drawer`, the one place an id is drawn. What gives the logits of the next draw is a
stepper (`steppers.py`): `model.step`, the fast step of `models.fast`, the fast step checking
drafted ids (one row), or beam search's pruning step (`beam.py`). `DecodeSettings` chooses
among them, as values passed in. The loop yields each draw's ids as they come (`sample`
collects them; `loop.watching` hands them to a callback, e.g. the studio's progress).

A logit processor (`processors.py`) edits the (B, V) logits of each draw: banning ids, forcing
ids, a grammar mask, a control. PAD and BOS are always banned. EOS ends a row (the others
continue) unless `stop_on_eos=False`, in which case EOS is banned too and every row runs to its
length. Past a Transformer's `max_context`, the model's own KV cache slides (it keeps the most
recent positions). A prefix longer than the context is fed as its last `max_context - 1` ids
(BOS and the primer's start dropped), so one chunk never exceeds it.

A `Budget` stops each row on its own: id `i` costs `costs[i]` (musical time, see
`Encoding.time_per_id`) and a row stops once its sum reaches the limit. Files, primers and
lengths in seconds or bars are `sampling.files`' job.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from melodygen import devices
from melodygen.checkpoint import DAMAGED_LOGITS
from melodygen.encodings.vocab import BOS_ID, EOS_ID, PAD_ID
from melodygen.errors import CheckpointError, ConfigError
from melodygen.models.fast import fast_step
from melodygen.sampling.drafts import call_times
from melodygen.sampling.loop import OneRowEnds, RowEnds, run
from melodygen.sampling.processors import BanIds, LogitProcessor
from melodygen.sampling.steppers import Drafted, Stepped

# Setting up a model's fast path (models.fast) costs a few steps' time (copying its weights,
# e.g. 5 ms for the d256 x 4 Transformer, whose step it makes ~1 ms faster at batch 1): fewer
# steps than this take the plain step unless the fast one is already built.
FAST_MIN_EVENTS = 32
# The most drafted ids checked per model call at batch 1 with `sample --draft` (how many are
# checked follows their hit rate and measured times, `drafts.CallTimes`); see docs/benchmarks.md.
DRAFT_LENGTH = 8
# Rows draft from this many drawn ids on: the first call over several ids packs the weights
# (~7 ms for d256 x 4) and each size's first call builds kernels, which a short piece would
# not earn back (and a short piece repeats little); meanwhile the guesses are scored.
DRAFT_AFTER = 64


@dataclass(frozen=True)
class DecodeSettings:
    """How the decode loop steps (never which ids it draws: every choice gives the same ids).

    `fast`: the fast step of `models.fast` where the model has one, set up for pieces of at
    least `fast_min_events` events (or already built); False: `model.step` only. `draft_length`
    > 0: one row on a model whose fast step checks several ids at once (the Transformer) checks
    up to that many drafted ids per call, once `draft_after` ids are drawn (`steppers.Drafted`).
    Off by default: whether drafting pays depends on the machine and on how much the piece
    repeats (docs/benchmarks.md)."""

    fast: bool = True
    draft_length: int = 0
    draft_after: int = DRAFT_AFTER
    fast_min_events: int = FAST_MIN_EVENTS

    def __post_init__(self):
        if min(self.draft_length, self.draft_after, self.fast_min_events) < 0:
            raise ConfigError(f"decode settings must not be negative: {self}")

    @classmethod
    def sampling(cls, fast: bool = True, draft: bool = False) -> DecodeSettings:
        """The settings of `sample --fast/--no-fast` and `--draft` (`DRAFT_LENGTH` ids)."""
        return cls(fast=fast, draft_length=DRAFT_LENGTH if draft else 0)


@dataclass(frozen=True)
class Budget:
    """A per-row stop condition: id `i` costs `costs[i]`; a row stops once its sum >= `limit`
    (both in `unit`, e.g. "beats" or "seconds", for messages)."""

    costs: np.ndarray  # (V,) float
    limit: float
    unit: str = "seconds"


def filter_logits(
    logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None
) -> torch.Tensor:
    """(B, V) logits -> (logits - their max) / temperature with the ids outside top-k and top-p
    set to -inf (the shift leaves the softmax as it is).

    Top-k keeps the k largest logits (ties at the k-th value are kept). Top-p (nucleus) then
    keeps the smallest set of most likely ids whose probability sums to >= top_p, plus the ids
    tied with the least likely of them (which of equal ids a sort puts first is arbitrary);
    the most likely id always survives.
    """
    if not 0 < temperature < math.inf:  # inf or nan would make every probability NaN
        raise ConfigError(f"temperature must be a finite number > 0, got {temperature}")
    # Shifted before dividing: a tiny temperature then sends the other logits to -inf instead
    # of the largest to +inf (3.0 / 1e-40 overflows float32; softmax of +inf is NaN).
    logits = (logits - logits.amax(dim=-1, keepdim=True)) / temperature
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p is not None and top_p < 1.0:
        sorted_logits = torch.sort(logits, dim=-1, descending=True).values
        probs = torch.softmax(sorted_logits, dim=-1)
        mass_before = torch.cumsum(probs, dim=-1) - probs
        least_kept = sorted_logits.masked_fill(mass_before >= top_p, math.inf).amin(dim=-1, keepdim=True)
        logits = logits.masked_fill(logits < least_kept, -math.inf)
    return logits


def apply_processors(processors: Sequence[LogitProcessor], logits: torch.Tensor,
                     last_ids: torch.Tensor | None) -> torch.Tensor:
    """(B, V) float logits of the next draw after every processor, in order."""
    logits = logits.float()
    for processor in processors:
        logits = processor(logits, last_ids)
    return logits


def draw(logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None,
         generator: torch.Generator | None) -> torch.Tensor:
    """One id per row (B,) from (B, V) logits (processors already applied): filtered, then drawn.

    The draw is `torch.multinomial(probs, 1, generator=generator)`'s own: argmax of probs over
    Exp(1) noise, the same random numbers, the same ids. Its checks of `probs` are left out
    (~10 small ops and two host syncs per draw: 6 us of 15 at batch 1 on CPU, a stall per step
    on a GPU); the softmax of filtered finite logits always passes them, and `sample` checks
    the model's first logits."""
    probs = torch.softmax(filter_logits(logits.float(), temperature, top_k, top_p), dim=-1)
    noise = torch.empty_like(probs).exponential_(generator=generator)
    return (probs / noise).argmax(dim=-1)


class Drawer:
    """The one place an id is drawn: the processors in order (given the ids drawn before), then
    temperature, top-k/top-p and `generator` (`draw`). One per decode call: processors may keep
    state from draw to draw; `select_rows` tells those that do when rows are reordered."""

    def __init__(self, processors: Sequence[LogitProcessor], temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, generator: torch.Generator | None = None):
        self.processors = list(processors)
        self.filters = temperature, top_k, top_p, generator

    def __call__(self, logits: torch.Tensor, last_ids: torch.Tensor | None) -> torch.Tensor:
        """(B,) ids drawn from the model's (B, V) `logits`; `last_ids`: the previous draw or None."""
        return draw(apply_processors(self.processors, logits, last_ids), *self.filters)

    def select_rows(self, rows: torch.Tensor) -> None:
        for processor in self.processors:
            if hasattr(processor, "select_rows"):
                processor.select_rows(rows)


def _prefix_ids(primer_ids: Sequence[int], rows: int, max_context: int | None, device) -> torch.Tensor:
    """(B, T') ids fed before the first draw: BOS + primer, cut to the model's context."""
    ids = [BOS_ID, *(int(i) for i in primer_ids)]
    if max_context is not None and len(ids) > max_context - 1:
        ids = ids[-(max_context - 1):]
    return torch.tensor([ids] * rows, dtype=torch.long, device=device)


@contextmanager
def decoding(model, primer_ids: Sequence[int], rows: int, device, source: Sequence[int] | None = None):
    """The model in eval and inference mode, fed BOS + primer in `rows` rows: yields (logits, state)
    of that prefix, the first draw's logits checked; the model's mode comes back afterwards.
    An encoder-decoder reads `source` first (`model.start`; None: an empty source)."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            start = None
            if source is not None and model.reads_source:
                from melodygen.dataset.pairs import source_rows

                start = model.start(source_rows([np.asarray(source)] * rows, model.settings.max_source).to(device))
            logits, state = model.step(_prefix_ids(primer_ids, rows, model.max_context, device), start)
            if not bool((logits[:, -1] < math.inf).all()):  # NaN or +inf; -inf is a valid 'never'
                raise CheckpointError(DAMAGED_LOGITS)
            yield logits, state
    finally:
        model.train(was_training)


def sample(
    model,
    encoding,
    *,
    num_outputs: int = 1,
    max_events: int = 512,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    primer_ids: Sequence[int] = (),
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
    stop_on_eos: bool = True,
    budget: Budget | None = None,
    processors: Sequence[LogitProcessor] = (),
    settings: DecodeSettings = DecodeSettings(),
    source: Sequence[int] | None = None,
) -> list[list[int]]:
    """Generate `num_outputs` continuations of BOS + `primer_ids` together as one batch.

    Returns one list of new ids per output: the continuation only (no BOS, no primer, no EOS),
    at most `max_events` long, shorter where the row drew EOS or spent its `budget`.
    `processors` run in order after the specials' ban, before temperature and filtering.
    `generator` (on `device`) makes the draw reproducible bit-for-bit; None uses torch's global RNG.
    `settings` says how the loop steps (`DecodeSettings`: the fast path, drafting), never which
    ids it draws. `source`: what an encoder-decoder reads before it writes (given tracks,
    `dataset.pairs`); other models ignore it.
    """
    banned = [PAD_ID, BOS_ID] + ([] if stop_on_eos else [EOS_ID])
    drawer = Drawer([BanIds(banned, encoding.vocab.size, device), *processors], temperature, top_k, top_p,
                    generator)
    with decoding(model, primer_ids, num_outputs, device, source) as (logits, state):
        may_end = stop_on_eos or len(drawer.processors) > 1  # EOS allowed, or a processor may force it
        stepper, ends = _stepper(model, state, settings, max_events, num_outputs, budget, device, may_end, primer_ids)
        drawn = list(run(logits[:, -1], stepper, drawer, max_events, ends))  # one (B,) tensor per step
    rows = torch.stack(drawn, dim=1).tolist() if drawn else [[] for _ in range(num_outputs)]
    for row in rows:
        _check_no_empty_draw(row)
    return [[i for i in row if i > EOS_ID] for row in rows]


def _check_no_empty_draw(row: list[int]) -> None:
    """Raise where a processor left a row no id to draw (every logit -inf: the softmax is NaN
    and the draw falls on PAD, which is always banned). An ended row draws PAD from then on,
    so a PAD with a real id after it can only be such a draw; checked once per call, after the
    loop, since a check per draw would stall every step on a GPU (`draw`)."""
    if PAD_ID in row and any(i != PAD_ID for i in row[row.index(PAD_ID):]):
        raise RuntimeError(f"a logit processor banned every id at draw {row.index(PAD_ID)} (a melodygen bug: "
                           "sampling.processors says each must leave one id); please report it")


def _stepper(model, state, settings: DecodeSettings, max_events: int, rows: int, budget: Budget | None,
             device, may_end: bool, primer_ids: Sequence[int]):
    """(stepper, ends) of one `sample` call, after the prefix (`state`). One row on the fast
    path keeps its ends as Python numbers (`OneRowEnds`: float64 sums, as `spent` is but on MPS)
    and may draft; rows end by EOS or a budget (`RowEnds`), except on the fast path where
    neither can happen (not `may_end`, no budget): that bookkeeping is five small ops and a sync."""
    step = (fast_step(model, build=max_events >= settings.fast_min_events) if settings.fast else None) or model.step
    dtype = devices.accumulator_dtype(device)
    if rows == 1 and max_events > 0 and settings.fast and dtype == torch.float64:
        if settings.draft_length and hasattr(step, "many"):
            history = [BOS_ID, *(int(i) for i in primer_ids)]
            return Drafted(step, state, history, settings.draft_length, settings.draft_after, max_events,
                           call_times(step)), OneRowEnds(budget)
        return Stepped(step, state), OneRowEnds(budget)
    if not (may_end or budget is not None or not settings.fast):
        return Stepped(step, state), None
    costs = None if budget is None else torch.as_tensor(budget.costs, dtype=dtype, device=device)
    return Stepped(step, state), RowEnds(rows, costs, None if budget is None else budget.limit, device, dtype)
