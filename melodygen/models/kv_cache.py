"""The Transformer's step state: a key/value cache preallocated per layer, written in place.

Sampling adds one position per step. Growing the cache with `torch.cat` copied all of it at
every step and, at batch 16, allocated and freed megabytes per layer per step (most of the
step's time at a full context). Here each layer owns one buffer for keys and one for values,
(B, n_heads, capacity, head_size), allocated on first use; slots `start:end` hold the cached
positions in order, new ones are written at `end`, and sliding the window only moves `start`.
When new ids do not fit behind `end`, the cached slots move to the front of the buffers (with
`capacity = 1.5 x max_context`, once every `max_context / 2` slides or so).

The cache is updated in place: `step(ids, state)` returns the same object it was given, so an
earlier state cannot be resumed from once it has been stepped further.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import LongTensor, Tensor


@dataclass
class KVCache:
    """Keys/values of the cached positions per layer; `position` is that of the next id and
    `ids` (B, capacity) the ids in each slot (learned positions re-encode them)."""

    capacity: int
    keys: list[Tensor] = field(default_factory=list)
    values: list[Tensor] = field(default_factory=list)
    ids: LongTensor | None = None
    start: int = 0
    end: int = 0
    position: int = 0

    @property
    def length(self) -> int:
        return self.end - self.start

    def cached_ids(self) -> LongTensor:
        """(B, length) ids of the cached positions (a view)."""
        return self.ids[:, self.start:self.end]

    def append(self, ids: LongTensor) -> None:
        """Takes `ids` (B, T) as the next positions; each layer then `store`s their keys/values.
        The caller keeps `length + T <= capacity`."""
        if self.ids is None:
            self.ids = ids.new_empty((ids.shape[0], self.capacity))
        if self.end + ids.shape[1] > self.capacity:
            self._compact()
        self.ids[:, self.end:self.end + ids.shape[1]] = ids
        self.end += ids.shape[1]
        self.position += ids.shape[1]

    def store(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Writes the newest positions' keys/values k, v (B, H, T, D) of `layer`; returns the
        keys and values of every cached position, (B, H, length, D) views of the buffers."""
        if layer == len(self.keys):  # first call: buffers shaped, typed and placed like k
            shape = (*k.shape[:2], self.capacity, k.shape[3])
            self.keys.append(k.new_empty(shape))
            self.values.append(v.new_empty(shape))
        keys, values = self.keys[layer], self.values[layer]
        keys[:, :, self.end - k.shape[2]:self.end] = k
        values[:, :, self.end - v.shape[2]:self.end] = v
        return keys[:, :, self.start:self.end], values[:, :, self.start:self.end]

    def select_rows(self, rows: LongTensor) -> KVCache:
        """A new cache holding batch rows `rows` of this one (copied; this one is unchanged)."""
        return KVCache(self.capacity, [k.index_select(0, rows) for k in self.keys],
                       [v.index_select(0, rows) for v in self.values],
                       None if self.ids is None else self.ids.index_select(0, rows),
                       self.start, self.end, self.position)

    def keep_last(self, count: int) -> None:
        """Forgets all but the `count` most recent positions (positions go on counting)."""
        self.start = max(self.start, self.end - count)

    def drop_newest(self, count: int) -> None:
        """Forgets the `count` most recent positions, which the next ids then take (drafted ids
        that were not drawn); the next ids take their slots."""
        count = min(count, self.length)
        self.end -= count
        self.position -= count

    def clear(self) -> None:
        """Empties the cache and restarts positions at 0, keeping the buffers."""
        self.start = self.end = self.position = 0

    def _compact(self) -> None:
        """Moves the cached slots to the front of every buffer."""
        count = self.length
        for buffer, dim in [(self.ids, 1), *((b, 2) for b in self.keys + self.values)]:
            buffer.narrow(dim, 0, count).copy_(buffer.narrow(dim, self.start, count).clone())
        self.start, self.end = 0, count
