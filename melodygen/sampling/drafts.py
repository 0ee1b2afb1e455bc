"""Drafted ids for checking several positions in one model call (`decoding.sample`, batch 1).

A piece repeats itself at the token level: the same time shifts, velocities, bar openings,
rhythms. `PromptLookup` guesses that what followed the latest earlier occurrence of the last
few ids follows again ("prompt lookup decoding", Saxena 2023; the n-gram half of lookahead
decoding, Fu et al. 2024). The guesses cost no model: the decoding loop feeds them behind the
id it drew, gets the logits after each in one call, and keeps each guess only while the draw
(same processors, same noise) picks it, so the ids are the ones drawn one at a time.

Checking guesses is not free: on the d256 x 4 Transformer (CPU) a call over 2 ids costs ~1.3x
a call over one and each further id ~5% more, while a call saved is worth a whole step. So the
number of guesses follows their running hit rate p (every guess scored against the id drawn
at its place, up to the first miss; a proposal not fed is scored on its first guess): as many
as keep p^n >= `WORTH`, none while p < `MIN_HIT_RATE` (where one call yields < 1.3 ids).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

MIN_HIT_RATE = 0.3
WORTH = 0.1  # the least chance of reaching a guess that still earns its place in the call
HIT_RATE_WEIGHT = 0.1  # of the newest scored guess in the running hit rate


class PromptLookup:
    """The sequence so far and, for each n-gram of length 1..`longest` ending at its last id,
    where that n-gram ended before (a dict per length, updated as ids are added); the running
    hit rate of guesses (starting at `MIN_HIT_RATE`: one guess, none after a miss)."""

    def __init__(self, ids: Iterable[int] = (), longest: int = 4):
        self.ids: list[int] = []
        self.longest = longest
        self.hit_rate = MIN_HIT_RATE
        self._latest: dict[tuple[int, ...], int] = {}  # n-gram -> end (exclusive) of its latest occurrence
        self._before: list[int | None] = []  # per n - 1: where the current last n ids ended before
        self._scoring: deque[int] = deque()  # guesses of the next places, not yet scored
        for token in ids:
            self.add(token)

    def add(self, token: int) -> None:
        if self._scoring:
            hit = token == self._scoring.popleft()
            self.hit_rate += HIT_RATE_WEIGHT * (hit - self.hit_rate)
            if not hit:
                self._scoring.clear()
        self.ids.append(token)
        end = len(self.ids)
        self._before = []
        for n in range(1, min(self.longest, end) + 1):
            gram = tuple(self.ids[end - n:])
            self._before.append(self._latest.get(gram))
            self._latest[gram] = end

    def worth(self, most: int) -> int:
        """How many guesses to feed at the current hit rate, at most `most`."""
        if self.hit_rate < MIN_HIT_RATE or most <= 0:
            return 0
        return min(most, max(1, int(math.log(WORTH) / math.log(min(self.hit_rate, 0.99)))))

    def propose(self, most: int) -> list[int]:
        """The ids that followed the longest n-gram seen before, as many as are `worth` it
        (none where there is no such n-gram); the next `add`s score them."""
        before = next((b for b in reversed(self._before) if b is not None), None)
        if before is None:
            self._scoring.clear()
            return []
        count = self.worth(most)
        guesses = self.ids[before:before + max(count, 1)]
        self._scoring = deque(guesses)
        return guesses if count else []
