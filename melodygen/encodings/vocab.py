"""Vocabularies built from a declarative table of event ranges.

An encoding lists its event kinds as `EventRange(name, lo, hi)` rows; the vocabulary puts the
special ids PAD=0, BOS=1, EOS=2 first and gives each range a contiguous block of ids after
them, in table order (the offsets are computed, never written by hand). An id outside
`[0, size)` is an `EncodingError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from melodygen.errors import EncodingError

PAD_ID, BOS_ID, EOS_ID = 0, 1, 2


@dataclass(frozen=True, slots=True)
class EventRange:
    """One kind of event with integer values `lo..hi` (inclusive).

    `valued=False` marks a kind without a value (e.g. `NO_EVENT`); it has exactly one id and its
    value is `None`. The readable token shows `value * scale + offset` followed by `unit`, so a
    value counted in steps or bins can read as milliseconds or a MIDI velocity; or, given
    `labels` (one per value, lo first), the value's label, e.g. `TIMESIG(6/8)`.
    """

    name: str
    lo: int = 0
    hi: int = 0
    unit: str = ""
    scale: int = 1
    offset: int = 0
    valued: bool = True
    labels: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.labels is not None and len(self.labels) != self.size:
            raise ValueError(f"{self.name}: {len(self.labels)} labels for {self.size} values")

    @classmethod
    def flag(cls, name: str) -> EventRange:
        """A kind of event that carries no value."""
        return cls(name, valued=False)

    @property
    def size(self) -> int:
        return self.hi - self.lo + 1

    def text(self, value: int | None) -> str:
        if not self.valued:
            return self.name
        if self.labels is not None:
            return f"{self.name}({self.labels[value - self.lo]})"
        return f"{self.name}({value * self.scale + self.offset}{self.unit})"


SPECIALS = (EventRange.flag("PAD"), EventRange.flag("BOS"), EventRange.flag("EOS"))


class Vocabulary:
    """Ids <-> `(event name, value)` <-> readable tokens for one table of event ranges."""

    def __init__(self, ranges: Sequence[EventRange]):
        self.ranges: tuple[EventRange, ...] = SPECIALS + tuple(ranges)
        names = [r.name for r in self.ranges]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate event names in {names}")
        sizes = np.array([r.size for r in self.ranges], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(sizes)])  # id where range i begins
        self._index = {r.name: i for i, r in enumerate(self.ranges)}
        self.size = int(self._starts[-1])
        self.tokens: list[str] = [self.token(i) for i in range(self.size)]

    def __len__(self) -> int:
        return self.size

    def offset(self, name: str) -> int:
        """The id of the lowest value of event kind `name`."""
        return int(self._starts[self._range_index(name)])

    def range(self, name: str) -> EventRange:
        return self.ranges[self._range_index(name)]

    def id_of(self, name: str, value: int | None = None) -> int:
        """The id of one event; a value outside its range is an `EncodingError`."""
        r = self.range(name)
        if not r.valued:
            return self.offset(name)
        if value is None or not r.lo <= value <= r.hi:
            raise EncodingError(f"{name} value {value!r} is outside {r.lo}..{r.hi}")
        return self.offset(name) + value - r.lo

    def event_of(self, id_: int) -> tuple[str, int | None]:
        """`(event name, value)` of one id; value is None for events without one."""
        kinds, values = self.split(np.array([id_]))
        return self.ranges[kinds[0]].name, self._value(kinds[0], values[0])

    def token(self, id_: int) -> str:
        """A readable token, e.g. `NOTE_ON(60)`, `TIME_SHIFT(250ms)`, `NO_EVENT`."""
        kinds, values = self.split(np.array([id_]))
        return self.ranges[kinds[0]].text(self._value(kinds[0], values[0]))

    def split(self, ids: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised `event_of`: (range index into `self.ranges`, value) arrays for `ids`.

        Raises `EncodingError` naming the first id outside the vocabulary.
        """
        arr = np.asarray(ids, dtype=np.int64).reshape(-1)
        bad = (arr < 0) | (arr >= self.size)
        if bad.any():
            raise EncodingError(
                f"id {int(arr[bad][0])} is outside the vocabulary (0..{self.size - 1})")
        kinds = np.searchsorted(self._starts, arr, side="right") - 1
        los = np.array([r.lo for r in self.ranges], dtype=np.int64)
        return kinds, arr - self._starts[kinds] + los[kinds]

    def events(self, ids: Sequence[int] | np.ndarray) -> list[tuple[str, int | None]]:
        """`(event name, value)` of each id, specials left out (decoders skip them)."""
        kinds, values = self.split(ids)
        real = kinds >= len(SPECIALS)
        return [(self.ranges[k].name, self._value(k, v))
                for k, v in zip(kinds[real].tolist(), values[real].tolist())]

    def count_events(self, ids: Sequence[int] | np.ndarray) -> dict[str, int]:
        """How many ids of each event kind `ids` holds, in table order (kinds absent: left out)."""
        kinds, _ = self.split(ids)
        counts = np.bincount(kinds, minlength=len(self.ranges))
        return {r.name: int(c) for r, c in zip(self.ranges, counts) if c}

    def _value(self, kind: int, value: int) -> int | None:
        return int(value) if self.ranges[kind].valued else None

    def _range_index(self, name: str) -> int:
        try:
            return self._index[name]
        except KeyError:
            raise EncodingError(
                f"unknown event {name!r}; events are {', '.join(self._index)}") from None
