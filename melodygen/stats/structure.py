"""Structure of one piece: how much it repeats itself, by n-grams and by bars.

Folk tunes are AABB, chorales repeat phrases, songs have verses and choruses; a model that
wanders repeats nothing. These measures make that visible (docs in `STRUCTURE_METRICS`):

- `repetition_8`, `repetition_16`: share of n-grams of onset groups (the sorted pitches that
  start together) that repeat an earlier n-gram of the piece, for phrases rather than motifs
  (`metrics.repetition` is the 4-gram one).
- Bars: the piece is cut into bars of its first time signature (4/4 when it has none; meter
  changes are not followed). A bar's content is the set of its notes' (onset within the bar on
  a grid of 12 per beat, pitch). `bar_repeat_exact`: share of non-empty bars whose content
  equals an earlier bar's; `bar_repeat_transposed`: the same up to transposition (pitches
  counted from the bar's lowest), so it includes the exact repeats. `longest_repeat_bars`:
  the longest run of consecutive non-empty bars that already occurred earlier (an A section
  played twice gives its length). `bar_vary`: share of non-empty bars that equal no earlier bar
  but share at least `VARIED_OVERLAP` of their content with one (Jaccard): the varied repeats
  (a changed ending, a passing note), which the Nottingham tunes have in 11% of their bars.
- `self_similarity(contents)`: the (bars, bars) matrix the report draws: Jaccard overlap of two
  bars' contents (1 = the same bar), so repeats show as diagonal lines.
"""

from __future__ import annotations

import numpy as np

GRID_PER_BEAT = 12  # 16ths and triplets both land on it
BarContent = frozenset  # of (grid position in the bar, pitch)
VARIED_OVERLAP = 0.5  # Jaccard overlap from which a bar that is not a repeat varies an earlier one

STRUCTURE_METRICS = {
    "repetition_8": "share of repeated 8-grams of onsets",
    "repetition_16": "share of repeated 16-grams of onsets",
    "bar_repeat_exact": "share of bars repeating an earlier bar",
    "bar_repeat_transposed": "share of bars repeating an earlier bar, transposed or not",
    "longest_repeat_bars": "longest run of bars that repeats an earlier run",
    "bar_vary": "share of bars varying an earlier bar (not equal, half their notes shared)",
}


def beats_per_bar(time_signatures: list[tuple[float, int, int]]) -> float:
    """Quarter notes per bar of the first time signature (4/4 without one)."""
    if not time_signatures:
        return 4.0
    _, numerator, denominator = time_signatures[0]
    return numerator * 4.0 / denominator


def bar_contents(starts: np.ndarray, pitches: np.ndarray, bar_beats: float) -> list[BarContent]:
    """One content per bar from the first bar to the last onset's (empty bars included);
    `starts` in quarter notes."""
    grid = np.rint(np.asarray(starts) * GRID_PER_BEAT).astype(np.int64)  # on the grid first, so a
    bar_steps = max(1, round(bar_beats * GRID_PER_BEAT))  # note just before a downbeat joins its bar
    bars, positions = grid // bar_steps, grid % bar_steps
    first = int(bars.min())
    contents: list[set] = [set() for _ in range(int(bars.max()) - first + 1)]
    for bar, position, pitch in zip(bars, positions, pitches):
        contents[bar - first].add((int(position), int(pitch)))
    return [frozenset(c) for c in contents]


def _transposed(content: BarContent) -> BarContent:
    low = min(pitch for _, pitch in content)
    return frozenset((position, pitch - low) for position, pitch in content)


def bar_repeats(contents: list[BarContent]) -> tuple[float, float]:
    """(exact, transposed) shares of non-empty bars that repeat an earlier bar."""
    seen, seen_shapes, exact, transposed, filled = set(), set(), 0, 0, 0
    for content in contents:
        if not content:
            continue
        filled += 1
        shape = _transposed(content)
        exact += content in seen
        transposed += shape in seen_shapes
        seen.add(content)
        seen_shapes.add(shape)
    return (exact / filled, transposed / filled) if filled else (0.0, 0.0)


def bar_variations(contents: list[BarContent]) -> float:
    """Share of non-empty bars equal to no earlier bar whose Jaccard overlap with one of them is
    at least `VARIED_OVERLAP` (read from `self_similarity`: an overlap of 1 is an equal bar)."""
    filled = [i for i, content in enumerate(contents) if content]
    overlap = self_similarity(contents)
    closest = [overlap[filled[:n], i].max() for n, i in enumerate(filled) if n]  # each to its nearest earlier bar
    varied = sum(VARIED_OVERLAP <= c < 1.0 for c in closest)
    return varied / len(filled) if filled else 0.0


def longest_repeat(contents: list[BarContent]) -> int:
    """The longest run of consecutive non-empty bars equal to an earlier run (may overlap it)."""
    best, previous = 0, [0] * (len(contents) + 1)
    for i, content in enumerate(contents):
        current = [0] * (len(contents) + 1)
        if content:
            for j in range(i):  # j < i: an earlier start
                if contents[j] == content:
                    current[j + 1] = previous[j] + 1
                    best = max(best, current[j + 1])
        previous = current
    return best


def self_similarity(contents: list[BarContent]) -> np.ndarray:
    """(bars, bars) Jaccard overlap of the bars' contents; 0 where either bar is empty."""
    n = len(contents)
    matrix = np.zeros((n, n))
    for i in range(n):
        for j in range(i, n):
            union = len(contents[i] | contents[j])
            matrix[i, j] = matrix[j, i] = len(contents[i] & contents[j]) / union if union else 0.0
    return matrix


def structure_scalars(starts: np.ndarray, pitches: np.ndarray, bar_beats: float, repetition) -> dict:
    """The `STRUCTURE_METRICS` of one piece; `repetition(starts, pitches, n)` is the n-gram rate."""
    contents = bar_contents(starts, pitches, bar_beats)
    exact, transposed = bar_repeats(contents)
    return {"repetition_8": repetition(starts, pitches, 8), "repetition_16": repetition(starts, pitches, 16),
            "bar_repeat_exact": exact, "bar_repeat_transposed": transposed,
            "longest_repeat_bars": float(longest_repeat(contents)), "bar_vary": bar_variations(contents)}
