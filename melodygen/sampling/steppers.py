"""Steppers of the decode loop (`loop.run`): the ids just drawn -> the logits of the next draw.

A stepper is called with the (B,) ids of a draw and returns (logits (B, V) of the next draw,
the ids the logit processors are to see as the previous draw); it carries the model's state.
- `Stepped`: a step function over its state, one id per row per call: `model.step`, or the
  fast step of `models.fast` (the same logits but for float32 rounding, so the same ids).
- `Drafted`: one row on a fast step that checks several ids per call (the Transformer's
  `many`): ids guessed from the piece (`drafts.PromptLookup`) ride along behind the id drawn,
  and while the draws pick them their logits are already there.
- beam search's pruning step is `beam._Beams`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

import torch

from melodygen.sampling.drafts import CallTimes, PromptLookup


class Stepped:
    """`step(ids (B, 1), state) -> (logits (B, 1, V), state)` (`model.step` or a fast step) as a stepper."""

    def __init__(self, step: Callable, state: Any):
        self.step, self.state = step, state

    def __call__(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, self.state = self.step(ids[:, None], self.state)
        return out[:, 0], ids


class Drafted:
    """One row stepped with drafted ids, for a fast step with `many`, `room` and `rewind`.

    Each id is drawn exactly as without drafts: the loop makes every draw, one per id, with the
    same processors and noise. What drafting changes is where the logits come from: behind the
    id just drawn, `PromptLookup` guesses up to `draft_length` more (as many as pay at their hit
    rate and the calls' times measured here, `CallTimes`; on a GPU a call's time is the time to
    queue it, what a launch-bound step costs) and one `many` call gives the logits after each.
    While the next draw picks the guessed id, the logits after it are already there; at the
    first draw that does not, the guesses after it are taken back out of the state (`rewind`)
    and the next call starts from the id drawn. So a call yields one id plus every guess the
    draws confirm, and the ids are the one-at-a-time ones (the logits agree to float32
    rounding, as the fast step's do). Drafting starts once `draft_after` ids are drawn and
    never guesses past `max_events`."""

    def __init__(self, step, state, history: list[int], draft_length: int, draft_after: int, max_events: int,
                 times: CallTimes):
        self.step, self.state, self.times = step, state, times
        self.drafts = PromptLookup(history)
        self.draft_length, self.draft_after, self.max_events = draft_length, draft_after, max_events
        self.drawn = 0  # ids drawn so far
        self.several = False  # whether the last call took several ids
        self.checked = deque()  # (drafted id, logits (1, V) after it) of positions already computed

    def __call__(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        token = int(ids)
        self.drawn += 1
        self.drafts.add(token)
        if self.checked:
            drafted, after = self.checked.popleft()
            if drafted == token:
                return after, ids
            self.step.rewind(self.state, len(self.checked) + 1)
            self.checked.clear()
        most = 0
        if self.drawn >= self.draft_after:
            most = min(self.draft_length, self.step.room(self.state) - 1, self.max_events - self.drawn - 1)
        guesses = self.drafts.propose(self.times.guesses(self.drafts.hit_rate, most))
        start = time.perf_counter()
        if guesses:
            out, self.state = self.step.many(ids.new_tensor([[token, *guesses]]), self.state)
            self.checked.extend(zip(guesses, out[:, 1:].unbind(1)))
        else:
            out, self.state = self.step(ids[:, None], self.state)
        self.times.record(1 + len(guesses), time.perf_counter() - start, after_several=self.several)
        self.several = bool(guesses)
        return out[:, 0], ids
