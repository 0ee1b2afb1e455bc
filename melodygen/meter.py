"""Bars: where each bar of a piece starts and how long it is, on a grid of steps per quarter.

One rule lays out bars everywhere (the multitrack encoding, bar-aware statistics): bars start at
step 0 under the time signature in force there (4/4 when the file has none before its first
change); a bar lasts `numerator * 4 / denominator` quarter notes; a time-signature change starts
a new bar where it is. A change that falls inside a bar cuts that bar short (a pickup written
as a short first bar, or a file whose meter changes mid-bar): the cut bar gets the meter of its
real length, `meter_of_length`, so laying the bars out again from their meters gives the same
bar lines. A cut that does not last whole sixteenths, or whose meter the caller has no use for
(`allowed`, e.g. no token for it), is not made: the change moves to the nearer bar line (a time
signature a tick late applies from its bar's start; one just before a bar line, from it).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Container, Sequence
from dataclasses import dataclass

import numpy as np

from melodygen.notes import Score

DEFAULT_METER = (4, 4)
MAX_CUT_DENOMINATOR = 16  # a cut bar must last whole sixteenths; else its change moves to a bar line


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar: its first step, its length in steps, and its meter (numerator, denominator)."""

    start: int
    length: int
    meter: tuple[int, int]


def bar_steps(meter: tuple[int, int], steps_per_quarter: int) -> int:
    """A bar's length in grid steps (rounded when the grid cannot hold it exactly)."""
    numerator, denominator = meter
    return max(1, round(numerator * 4 * steps_per_quarter / denominator))


def meter_of_length(steps: int, steps_per_quarter: int, denominator: int) -> tuple[int, int]:
    """The meter of a bar `steps` long: in `denominator`ths when that is whole, else in the
    smallest power-of-two denominator that makes it whole (at most 64ths; else rounded)."""
    for den in [denominator] + [2 ** k for k in range(0, 7)]:
        numerator = steps * den / (4 * steps_per_quarter)
        if numerator >= 1 and math.isclose(numerator, round(numerator)):
            return round(numerator), den
    return max(1, round(steps * 64 / (4 * steps_per_quarter))), 64


def signature_steps(score: Score, steps_per_quarter: int) -> list[tuple[int, tuple[int, int]]]:
    """(step, meter) of each time-signature change of `score`, on the grid, in order; one at step
    0 always (4/4 when the file sets none there); at one step the last change wins."""
    changes: dict[int, tuple[int, int]] = {0: DEFAULT_METER}
    for seconds, numerator, denominator in score.time_signatures:
        step = round(score.tempo_map.to_beats(seconds) * steps_per_quarter)
        changes[step] = (numerator, denominator)
    return sorted(changes.items())


def lay_out_bars(changes: Sequence[tuple[int, tuple[int, int]]], end_step: int,
                 steps_per_quarter: int, allowed: Container[tuple[int, int]] | None = None) -> list[Bar]:
    """Bars from step 0 until one holds `end_step` (at least one bar), under `changes` ((step,
    meter) sorted, the first at step 0): see the module docstring. `allowed`: the meters a cut
    bar may get (None: any)."""
    bars: list[Bar] = []
    start, meter, upcoming = 0, changes[0][1], deque(changes[1:])
    while True:
        length = bar_steps(meter, steps_per_quarter)
        while upcoming and upcoming[0][0] <= start:  # a change at or before this bar line
            meter = upcoming.popleft()[1]
            length = bar_steps(meter, steps_per_quarter)
        cut = upcoming[0][0] - start if upcoming and upcoming[0][0] < start + length else None
        if cut is None:
            bars.append(Bar(start, length, meter))
        else:
            cut_meter = meter_of_length(cut, steps_per_quarter, meter[1])
            if cut_meter[1] <= MAX_CUT_DENOMINATOR and (allowed is None or cut_meter in allowed):
                length = cut  # a change inside: the bar is cut there
                bars.append(Bar(start, length, cut_meter))
                start += length
                if start > end_step:
                    return bars
                continue
            # An odd cut: the change moves to the nearer bar line, this one or the next.
            if 2 * cut < length:
                meter = upcoming.popleft()[1]
                continue
            upcoming[0] = (start + length, upcoming[0][1])
            bars.append(Bar(start, length, meter))
        start += length
        if start > end_step:
            return bars


def score_bars(score: Score, steps_per_quarter: int, end_step: int | None = None) -> list[Bar]:
    """The bars of `score` on a grid of `steps_per_quarter`, up to the one holding its last
    note's onset (or `end_step`)."""
    if end_step is None:
        onsets = [n.start for t in score.tracks for n in t.notes]
        end_step = round(score.tempo_map.to_beats(max(onsets, default=0.0)) * steps_per_quarter)
    return lay_out_bars(signature_steps(score, steps_per_quarter), end_step, steps_per_quarter)


def bar_index(bars: Sequence[Bar], steps: np.ndarray) -> np.ndarray:
    """The index of the bar holding each step (steps before bar 0 -> 0)."""
    starts = np.fromiter((b.start for b in bars), np.int64, len(bars))
    return np.maximum(np.searchsorted(starts, steps, side="right") - 1, 0)
