"""The decoding loop: a sequence model -> new ids, one batch, incrementally.

`sample()` is the loop every model kind shares. It feeds BOS + the primer once through
`model.step` (state=None), then one id per step with the carried state (RNN hidden state,
Transformer KV cache), so the prefix is never re-run. Each step:

    logits -> logit processors -> / temperature -> top-k -> top-p -> softmax -> one draw

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
import time
from collections import deque
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
from melodygen.sampling.drafts import PromptLookup, call_times
from melodygen.sampling.processors import BanIds, LogitProcessor


# Setting up a model's fast path (models.fast) costs a few steps' time (copying its weights,
# e.g. 5 ms for the d256 x 4 Transformer, whose step it makes ~1 ms faster at batch 1): fewer
# steps than this take the plain step unless the fast one is already built.
FAST_MIN_EVENTS = 32
# The most drafted ids checked per model call at batch 1 with `sample --draft` (`_one_row`;
# how many are checked follows their hit rate and measured times, `drafts.CallTimes`); see
# docs/benchmarks.md.
DRAFT_LENGTH = 8
# Rows draft from this many drawn ids on: the first call over several ids packs the weights
# (~7 ms for d256 x 4) and each size's first call builds kernels, which a short piece would
# not earn back (and a short piece repeats little); meanwhile the guesses are scored.
DRAFT_AFTER = 64


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


def _prefix_ids(primer_ids: Sequence[int], rows: int, max_context: int | None, device) -> torch.Tensor:
    """(B, T') ids fed before the first draw: BOS + primer, cut to the model's context."""
    ids = [BOS_ID, *(int(i) for i in primer_ids)]
    if max_context is not None and len(ids) > max_context - 1:
        ids = ids[-(max_context - 1):]
    return torch.tensor([ids] * rows, dtype=torch.long, device=device)


@contextmanager
def decoding(model, primer_ids: Sequence[int], rows: int, device):
    """The model in eval and inference mode, fed BOS + primer in `rows` rows: yields (logits, state)
    of that prefix, the first draw's logits checked; the model's mode comes back afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            logits, state = model.step(_prefix_ids(primer_ids, rows, model.max_context, device), None)
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
    fast: bool = True,
    draft_length: int = 0,
) -> list[list[int]]:
    """Generate `num_outputs` continuations of BOS + `primer_ids` together as one batch.

    Returns one list of new ids per output: the continuation only (no BOS, no primer, no EOS),
    at most `max_events` long, shorter where the row drew EOS or spent its `budget`.
    `processors` run in order after the specials' ban, before temperature and filtering.
    `generator` (on `device`) makes the draw reproducible bit-for-bit; None uses torch's global RNG.
    `fast` steps through `models.fast.fast_step` where the model has a fast path (the same ids
    but for float32 rounding) and it pays (`FAST_MIN_EVENTS`); `fast=False`: `model.step` only.
    With `draft_length` > 0, one row on a model whose fast step checks several ids at once (the
    Transformer) drafts up to that many ids per call (`_one_row`; `sample --draft`:
    `DRAFT_LENGTH`), the same ids again. Off by default: whether it pays depends on the
    machine and on how much the piece repeats (docs/benchmarks.md).
    """
    banned = [PAD_ID, BOS_ID] + ([] if stop_on_eos else [EOS_ID])
    processors = [BanIds(banned, encoding.vocab.size, device), *processors]
    dtype = devices.accumulator_dtype(device)
    costs = torch.as_tensor(budget.costs, dtype=dtype, device=device) if budget else None
    spent = torch.zeros(num_outputs, dtype=dtype, device=device)
    done = torch.zeros(num_outputs, dtype=torch.bool, device=device)
    drawn = []  # one (B,) tensor per step: memory follows what is generated, not max_events
    with decoding(model, primer_ids, num_outputs, device) as (logits, state):
        step = (fast_step(model, build=max_events >= FAST_MIN_EVENTS) if fast else None) or model.step
        # one row: its own loop (bookkeeping in Python, drafted ids where the step takes them);
        # it sums the budget in Python floats, float64 as `spent` is but on MPS
        if num_outputs == 1 and max_events > 0 and fast and dtype == torch.float64:
            history = [BOS_ID, *(int(i) for i in primer_ids)]
            return [_one_row(step, state, logits[:, -1], processors, (temperature, top_k, top_p, generator),
                                 max_events, budget, history, draft_length if hasattr(step, "many") else 0)]
        # rows end by EOS or a budget; where neither can happen (EOS banned and no processor that
        # could force it back), the fast path skips that bookkeeping (five small ops and a sync)
        ends = stop_on_eos or costs is not None or len(processors) > 1 or not fast
        ids = None
        for t in range(max_events):
            ids = draw(apply_processors(processors, logits[:, -1], ids), temperature, top_k, top_p, generator)
            if ends:
                ids = ids.masked_fill(done, PAD_ID)
                done |= ids == EOS_ID
            if costs is not None:
                spent += costs[ids]
                done |= spent >= budget.limit
            drawn.append(ids)
            if t + 1 == max_events or (ends and bool(done.all())):
                break
            logits, state = step(ids[:, None], state)
    rows = torch.stack(drawn, dim=1).tolist() if drawn else [[] for _ in range(num_outputs)]
    return [[i for i in row if i > EOS_ID] for row in rows]


def _one_row(stepper, state, logits: torch.Tensor, processors: Sequence[LogitProcessor], draw_args: tuple,
                 max_events: int, budget: Budget | None, history: list[int], draft_length: int) -> list[int]:
    """`sample`'s loop for one row (the fast path at batch 1): ends, budget and EOS kept as
    Python numbers instead of tensor ops, and on a step that takes several ids (`many`, the
    Transformer's) model calls that check drafted ids (`draft_length` > 0).

    Each id is drawn exactly as in the batch loop: the same processors in order, the same
    `draw` and noise, one draw per id. What drafting changes is where the logits come from: behind the
    id just drawn, `drafts.PromptLookup` guesses up to `draft_length` more (as many as pay at
    their hit rate and the calls' times measured here, `drafts.CallTimes`; on a GPU a call's
    time is the time to queue it, what a launch-bound step costs) and one `many` call gives the logits
    after each. While the next draw picks the guessed id, the logits after it
    are already there; at the first draw that does not, the guesses after it are taken back out
    of the state (`rewind`) and the next call starts from the id drawn. So a call yields one id
    plus every guess the draws confirm, and the ids are the one-at-a-time ones (the logits agree
    to float32 rounding, as the fast step's do). EOS ends the row, as it does there (banned
    unless pieces may end or a processor forces it)."""
    drafts = PromptLookup(history) if draft_length else None
    times = call_times(stepper) if draft_length else None
    several = False  # whether the last call took several ids
    costs = None if budget is None else budget.costs
    row, spent, ids = [], 0.0, None
    checked = deque()  # (drafted id, logits (1, V) after it) of positions already computed
    while True:
        ids = draw(apply_processors(processors, logits, ids), *draw_args)
        token = int(ids)
        row.append(token)
        if costs is not None:
            spent += float(costs[token])
        if len(row) == max_events or token == EOS_ID or (costs is not None and spent >= budget.limit):
            break
        if drafts is None:
            out, state = stepper(ids[:, None], state)
            logits = out[:, 0]
            continue
        drafts.add(token)
        if checked:
            drafted, after = checked.popleft()
            if drafted == token:
                logits = after
                continue
            stepper.rewind(state, len(checked) + 1)
            checked.clear()
        most = min(draft_length, stepper.room(state) - 1, max_events - len(row) - 1) if len(row) >= DRAFT_AFTER else 0
        guesses = drafts.propose(times.guesses(drafts.hit_rate, most))
        start = time.perf_counter()
        if guesses:
            out, state = stepper.many(ids.new_tensor([[token, *guesses]]), state)
            checked.extend(zip(guesses, out[:, 1:].unbind(1)))
        else:
            out, state = stepper(ids[:, None], state)
        times.record(1 + len(guesses), time.perf_counter() - start, after_several=several)
        several = bool(guesses)
        logits = out[:, 0]
    return [i for i in row if i > EOS_ID]
