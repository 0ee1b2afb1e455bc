"""The decode loop: draw, note which rows have ended, hand the ids out, step; until done.

    logits of the prefix -> draw -> ends -> watchers -> yield ids -> stepper -> logits -> draw ...

`run` is the one loop of every sampling path (`decoding.sample`, one row or a batch, plain,
fast or drafted, and `beam.beam_search`); what differs is plugged in:
- a drawer (`decoding.Drawer`): (B, V) logits + the previous draw -> (B,) ids: the logit
  processors, temperature, top-k/top-p and the generator;
- a stepper (`steppers.py`, `beam.py`): the ids just drawn (B,) -> (the next draw's logits
  (B, V), the ids the processors are to see as the previous draw: the same ids, unless the
  stepper reordered the rows, as beam search does when it prunes);
- ends (`RowEnds`, `OneRowEnds`, or None when no row can end early): which rows have ended (EOS
  drawn, budget spent), an ended row drawing PAD from then on, and whether all have.

The loop is a generator: it yields each draw's (B,) ids as they come. `decoding.sample`
collects them; a watcher (`watching`) gets them too, from any loop run in its block, e.g. the
studio's progress per event and `Model.stream`. A stepper that reorders rows runs without ends
(beam search runs every row to its length), and what it yields are the rows as they were drawn.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch

from melodygen.encodings.vocab import EOS_ID, PAD_ID

Watcher = Callable[[torch.Tensor], None]
_WATCHERS: ContextVar[tuple[Watcher, ...]] = ContextVar("melodygen_decode_watchers", default=())


def run(logits: torch.Tensor, stepper, drawer, max_events: int, ends=None) -> Iterator[torch.Tensor]:
    """Yields the (B,) ids of each draw, at most `max_events` draws, the first from `logits`
    (B, V) (the prefix's); stops early once `ends` says every row has ended."""
    watchers = _WATCHERS.get()
    ids = None
    for t in range(max_events):
        ids = drawer(logits, ids)
        over = False
        if ends is not None:
            ids, over = ends(ids)
        for watcher in watchers:
            watcher(ids)
        yield ids
        if over or t + 1 == max_events:
            return
        logits, ids = stepper(ids)


@contextmanager
def watching(watcher: Watcher):
    """Within this block (this thread or task), every decode loop also hands each draw's (B,)
    ids to `watcher` as it is drawn (PAD where a row has ended, EOS where one ends). A watcher
    that raises stops the loop: the exception goes up through whatever called it."""
    token = _WATCHERS.set((*_WATCHERS.get(), watcher))
    try:
        yield
    finally:
        _WATCHERS.reset(token)


class RowEnds:
    """Rows that end on their own, kept as (B,) tensors: by drawing EOS, or once their ids'
    costs (`decoding.Budget`, as a (V,) tensor) add up to `limit`."""

    def __init__(self, rows: int, costs: torch.Tensor | None, limit: float | None, device, dtype):
        self.costs, self.limit = costs, limit
        self.spent = torch.zeros(rows, dtype=dtype, device=device)
        self.done = torch.zeros(rows, dtype=torch.bool, device=device)

    def __call__(self, ids: torch.Tensor) -> tuple[torch.Tensor, bool]:
        ids = ids.masked_fill(self.done, PAD_ID)
        self.done |= ids == EOS_ID
        if self.costs is not None:
            self.spent += self.costs[ids]
            self.done |= self.spent >= self.limit
        return ids, bool(self.done.all())


class OneRowEnds:
    """The ends of one row as Python numbers (cheaper than tensor ops at batch 1): EOS, always
    (banned unless pieces may end, or a processor forces it), and the budget if any."""

    def __init__(self, budget=None):
        self.costs = None if budget is None else budget.costs
        self.limit = None if budget is None else budget.limit
        self.spent = 0.0

    def __call__(self, ids: torch.Tensor) -> tuple[torch.Tensor, bool]:
        token = int(ids)
        if self.costs is None:
            return ids, token == EOS_ID
        self.spent += float(self.costs[token])
        return ids, token == EOS_ID or self.spent >= self.limit
