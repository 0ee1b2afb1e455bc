"""Drafted ids for checking several positions in one model call (`sample --draft`, batch 1).

A piece repeats itself at the token level: the same time shifts, velocities, bar openings,
rhythms. `PromptLookup` guesses that what followed the latest earlier occurrence of the last
few ids follows again ("prompt lookup decoding", Saxena 2023; the n-gram half of lookahead
decoding, Fu et al. 2024). The guesses cost no model: the decoding loop feeds them behind the
id it drew, gets the logits after each in one call, and keeps each guess only while the draw
(same processors, same noise) picks it, so the ids are the ones drawn one at a time.

Checking guesses is not free, and what it costs depends on the machine: on the d256 x 4
Transformer (CPU, 1 thread) a call over 2 ids cost 1.3x a call over one on one VM and 1.6x on
a faster one, whose GEMVs are quick while oneDNN's few-row products keep a fixed cost. So the
loop times its own calls (`CallTimes`, by ids per call, kept per model) and feeds the number of
guesses that gives the most ids per second at their running hit rate p (every guess scored
against the id drawn at its place, up to the first miss; a proposal not fed is scored on its
first guess): a call with n guesses yields 1 + p + ... + p^n ids on average.
"""

from __future__ import annotations

import weakref
from collections import deque
from collections.abc import Iterable

START_HIT_RATE = 0.1  # before any guess is scored: drafting waits for guesses to hit
HIT_RATE_WEIGHT = 0.1  # of the newest scored guess in the running hit rate
# A call over several ids not timed yet is taken to cost at least this times a call over one:
# low enough that a hit rate above ~0.2 tries it, so every size worth having gets measured.
UNTIMED_COST = 1.2
TIME_WEIGHT = 0.25  # of the newest timing in a running average


class PromptLookup:
    """The sequence so far and, for each n-gram of length 1..`longest` ending at its last id,
    where that n-gram ended before (a dict per length, updated as ids are added); the running
    hit rate of guesses."""

    def __init__(self, ids: Iterable[int] = (), longest: int = 4):
        self.ids: list[int] = []
        self.longest = longest
        self.hit_rate = START_HIT_RATE
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

    def propose(self, count: int) -> list[int]:
        """Up to `count` ids that followed the longest n-gram seen before (none where there is
        no such n-gram); the next `add`s score them (at least one, also when `count` is 0)."""
        before = next((b for b in reversed(self._before) if b is not None), None)
        if before is None:
            self._scoring.clear()
            return []
        guesses = self.ids[before:before + max(count, 1)]
        self._scoring = deque(guesses)
        return guesses if count else []


class CallTimes:
    """Seconds per model call by how many ids it takes, a running average per size as the
    decoding loop measures them on this machine (each size's first call is left out: it packs
    weights and builds kernels for that shape), and of a call over one id right after one over
    several: mixing the two costs more than either apart (alternating them cost 0.25-0.6 ms a
    pair more on the d256 x 4 Transformer, CPU: each kind's weights evict the other's from the
    caches), so a call with guesses is charged that too. `guesses` picks the number to feed."""

    AFTER_SEVERAL = 0  # the key of a call over one id right after a call over several

    def __init__(self):
        self.seconds: dict[int, float] = {}
        self._warm: set[int] = set()

    def record(self, ids: int, seconds: float, after_several: bool = False) -> None:
        key = self.AFTER_SEVERAL if ids == 1 and after_several else ids
        if key not in self._warm:
            self._warm.add(key)
            return
        known = self.seconds.get(key)
        if known is None:  # the first timing replaces the guess, a stall counting at most 3x it
            guess = self.estimate(key)
            self.seconds[key] = seconds if guess is None else min(seconds, 3 * guess)
        else:
            self.seconds[key] = _running(known, seconds)

    def estimate(self, key: int) -> float | None:
        """The running time of `key`; not timed yet: `UNTIMED_COST` x a call over one id, or
        the most a call over fewer ids took (a call never costs less for more ids)."""
        if key in self.seconds or 1 not in self.seconds:
            return self.seconds.get(key)
        if key == self.AFTER_SEVERAL:
            return self.seconds[1]
        fewer = (seconds for ids, seconds in self.seconds.items() if self.AFTER_SEVERAL < ids < key)
        return max(self.seconds[1] * UNTIMED_COST, *fewer)

    def guesses(self, hit_rate: float, most: int) -> int:
        """How many guesses (0..`most`) give the most ids per second at `hit_rate` (none
        before a call over one id is timed)."""
        one = self.seconds.get(1)
        if one is None:
            return 0
        mixing = max(0.0, self.estimate(self.AFTER_SEVERAL) - one)
        best, best_rate, expected = 0, 1 / one, 1.0
        for count in range(1, most + 1):
            expected += hit_rate ** count
            rate = expected / (self.estimate(count + 1) + mixing)
            if rate > best_rate:
                best, best_rate = count, rate
        return best


def _running(known: float, seconds: float) -> float:
    """A running average's next value: a stall (another process, the OS) counts at most 3x."""
    return known + TIME_WEIGHT * (min(seconds, 3 * known) - known)


_TIMES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # stepper -> CallTimes


def call_times(stepper) -> CallTimes:
    """The `CallTimes` of `stepper` (one per built fast step, so per loaded model: a later
    piece starts from what earlier ones measured)."""
    times = _TIMES.get(stepper)
    if times is None:
        times = _TIMES[stepper] = CallTimes()
    return times
