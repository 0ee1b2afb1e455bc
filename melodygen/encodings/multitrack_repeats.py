"""Repeated bars in the multitrack stream: `REPEAT(k) [SHIFT(s)]` in place of a bar's body.

Why: tunes repeat whole bars (folk tunes are AABB, songs repeat verses), and written note by
note a repeated bar costs as many ids as the first one, which a model must get right again one
note at a time. With `repeats = K` (`MultitrackSettings`) a bar whose body equals an earlier
bar's, at most K bars back, is written as its head and one id, so the model decides on the
repetition once.

- **Body and head.** A bar is `BAR [TIMESIG] [KEY] [CHORD] [DENSITY]` (its head) and then its
  body: its positions, tempo changes and notes, from its first `POS` to the next `BAR`. A body
  is self-contained (the encoder names the track of each bar's first note, and positions count
  from the bar line), so two bars with the same body ids hold the same music; the encoder
  compares bodies as id sequences.
- **`REPEAT(k)`**, k = 1..K, right after the head: this bar's body is bar i-k's body again, as
  decoded (itself expanded when that bar was a `REPEAT`: chains resolve bar by bar).
- **`SHIFT(s)`**, s in -12..-1, 1..12, right after `REPEAT`: the copy is transposed by s
  semitones; pitched notes move, drum notes never do (as `pitch_shift_table`, which leaves both
  kinds of id where they are: a relative shift stays relative under transposition).
- **Varied repeats** (`varied_repeats`, with `repeats`): `REPEAT(k) [SHIFT(s)] POS(p)` and
  then a body from position p on: the bar opens as bar i-k (its notes and tempo changes before
  position p, p >= 1) and goes on anew from p, as real tunes vary a bar they repeat (a changed
  ending). After the cut no track is current (as at a bar line), so the new part names its
  track first. The encoder (`find_openings`) writes it for a bar that repeats no earlier bar
  whole, when an earlier bar, at most K back, opens with the same ids up to one of this bar's
  positions and holds nothing else before it, and that opening holds at least half the bar's
  notes (`OPENING_SHARE`, and at least `MIN_OPENING_NOTES`): a shared downbeat alone is not a
  varied repeat. Only exact openings (no SHIFT) are written; the decoder and the grammar take
  a SHIFT before the cut as well.
- **Encoding** (`find_repeats`): when the bar before was a REPEAT and its (k, s) still fits, the
  same again (a repeated passage keeps pointing at the passage it repeats); else the nearest
  earlier bar, at most K back, with the same body; failing that, the nearest whose body is this
  one transposed by 1..12 semitones up or down (an exact match at any distance beats a
  transposed one: no SHIFT id). Empty bars stay `BAR`. Keeping the previous bar's distance costs
  no id and makes k easier to predict: on Nottingham the entropy of k given the previous bar's
  k falls from 1.6 to 0.9 bits against always taking the nearest (`scripts/repeat_table.py`
  measures the distances real tunes use; docs/benchmarks.md).
- **Decoding** (`BarBodies`): the decoder keeps each bar's notes and tempo changes relative to
  its bar line. A REPEAT is taken only while its bar holds nothing but its head, and only if it
  points at a bar of the piece; a SHIFT only right after a REPEAT; and nothing of a body may
  follow them in their bar but, with varied repeats, the cut's `POS(p)` (p >= 1) and the new
  part after it: what breaks these rules is dropped and counted (`dropped_ids`). A
  copied body is cut to the bar it lands in: positions at or past this bar's length and pitches
  a SHIFT moves out of 0..127 are left out (defined, not counted as dropped). What `encode`
  writes never needs that: a matched body is this bar's own ids, so it fits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from melodygen.encodings.vocab import EOS_ID, EventRange, Vocabulary

SHIFTS = tuple(s for s in range(-12, 13) if s)
"""The semitones of each SHIFT value (0-based index): -12..-1, then +1..+12 (no 0)."""
_SHIFT_INDEX = {s: i for i, s in enumerate(SHIFTS)}
_HEAD = ("BAR", "TIMESIG", "KEY", "CHORD", "DENSITY")
OPENING_SHARE = 0.5  # of a bar's notes, at least, that a varied repeat copies
MIN_OPENING_NOTES = 2


def repeat_ranges(repeats: int) -> list[EventRange]:
    """The REPEAT and SHIFT event ranges (none when `repeats` is 0): appended at the end of the
    vocabulary, so an encoding without repeats keeps every id it had."""
    if not repeats:
        return []
    return [EventRange("REPEAT", 1, repeats, labels=tuple(f"-{k}" for k in range(1, repeats + 1))),
            EventRange("SHIFT", 0, len(SHIFTS) - 1, labels=tuple(f"{s:+d}" for s in SHIFTS))]


# ------------------------------------------------------------------------------ encoding


def bar_spans(ids: np.ndarray, vocab: Vocabulary) -> list[tuple[int, int, int]]:
    """(start, body start, end) of each bar in `ids` (the ids from the first BAR on, or a whole
    piece: ids before the first BAR belong to no bar); the body starts at the bar's first id
    that is not part of its head."""
    names = np.array([r.name for r in vocab.ranges])[vocab.split(ids)[0]]
    starts = np.flatnonzero(names == "BAR")
    ends = np.append(starts[1:], len(ids))
    head = np.isin(names, _HEAD)
    spans = []
    for start, end in zip(starts.tolist(), ends.tolist()):
        body = start + 1
        while body < end and head[body]:
            body += 1
        spans.append((start, body, end))
    return spans


def find_repeats(bodies: list[np.ndarray], vocab: Vocabulary, repeats: int, *,
                 keep_distance: bool = True) -> list[tuple[int, int] | None]:
    """Per bar: (k, semitones) when its body (ids) is bar i-k's, transposed by that much
    (0: exactly), k <= `repeats`; None for an empty bar or one with no match. The previous
    bar's (k, semitones) wins when it still matches (unless `keep_distance=False`, which
    `scripts/repeat_table.py` measures against), then the nearest exact match, then the
    nearest transposed one (see the module docstring)."""
    first_pitch = vocab.offset("PITCH")
    exact: dict[bytes, int] = {}  # body -> the latest bar with it
    shapes: dict[bytes, list[tuple[int, int]]] = {}  # body up to transposition -> (bar, lowest pitch)
    keys: list[tuple[bytes, bytes, int] | None] = []  # per bar: (body, shape, lowest pitch)
    found: list[tuple[int, int] | None] = []
    for i, body in enumerate(bodies):
        if not len(body):
            keys.append(None)
            found.append(None)
            continue
        key, (shape, lowest) = body.tobytes(), _shape(body, first_pitch)
        keys.append((key, shape, lowest))
        if keep_distance and found and found[-1] is not None and _same_as(keys, i, *found[-1]):
            found.append(found[-1])  # a repeated passage keeps pointing at the same one
        elif key in exact and i - exact[key] <= repeats:
            found.append((i - exact[key], 0))
        else:
            found.append(_nearest_transposed(i, lowest, shapes.get(shape, []), repeats))
        exact[key] = i
        shapes.setdefault(shape, []).append((i, lowest))
    return found


def _same_as(keys: list[tuple[bytes, bytes, int] | None], i: int, k: int, semitones: int) -> bool:
    """Whether bar i's body is bar i-k's transposed by `semitones` (keys: `find_repeats`)."""
    if i - k < 0 or keys[i - k] is None:
        return False
    (key, shape, lowest), (old_key, old_shape, old_lowest) = keys[i], keys[i - k]
    return key == old_key if semitones == 0 else shape == old_shape and lowest - old_lowest == semitones


def _nearest_transposed(i: int, lowest: int, earlier: list[tuple[int, int]], repeats: int) -> tuple[int, int] | None:
    """(k, semitones) of the latest of `earlier` (bars of the same shape, with their lowest
    pitch) at most `repeats` bars before bar i and 1..12 semitones away from `lowest`."""
    for j, low in reversed(earlier):
        if i - j > repeats:
            return None
        if 1 <= abs(lowest - low) <= 12:
            return i - j, lowest - low
    return None


def _shape(body: np.ndarray, first_pitch: int) -> tuple[bytes, int]:
    """(the body with each PITCH id replaced by its height above the body's lowest pitch, as a
    negative number no id has; that lowest pitch, 0 without pitched notes)."""
    pitched = (body >= first_pitch) & (body < first_pitch + 128)
    if not pitched.any():
        return body.tobytes(), 0
    lowest = int(body[pitched].min())
    shape = body.copy()
    shape[pitched] = -1 - (body[pitched] - lowest)
    return shape.tobytes(), lowest - first_pitch


def find_openings(bodies: list[np.ndarray], found: list[tuple[int, int] | None], vocab: Vocabulary,
                  repeats: int) -> list[tuple[int, int] | None]:
    """Per bar: (k, cut) when bar i repeats no earlier bar whole (`found` is None) but opens as
    bar i-k, k <= `repeats`, up to its id `cut` (a POS of bar i): bar i-k's body starts with the
    same ids and has nothing else before that position, and the opening holds at least
    `OPENING_SHARE` of bar i's notes (and `MIN_OPENING_NOTES`). The longest opening wins, then
    the nearest bar. None elsewhere."""
    openings: list[tuple[int, int] | None] = []
    for i, body in enumerate(bodies):
        notes = np.cumsum(_of_kind(body, vocab, "PITCH", "DRUM"))  # notes up to each id
        total = int(notes[-1]) if len(body) else 0
        if found[i] is not None or total < MIN_OPENING_NOTES:
            openings.append(None)
            continue
        cuts = [c for c in np.flatnonzero(_of_kind(body, vocab, "POS")).tolist()
                if c and notes[c - 1] >= max(MIN_OPENING_NOTES, OPENING_SHARE * total)]
        best: tuple[int, int] | None = None
        for k in range(1, min(repeats, i) + 1):
            earlier = bodies[i - k]
            shared = _shared_prefix(earlier, body)
            for cut in reversed(cuts):
                if best is not None and cut <= best[1]:
                    break
                # the earlier bar ends there, or goes on at this position or later
                if cut <= shared and (cut == len(earlier) or (_of_kind(earlier[cut:cut + 1], vocab, "POS")[0]
                                                              and earlier[cut] >= body[cut])):
                    best = (k, cut)
                    break
        openings.append(best)
    return openings


def _shared_prefix(a: np.ndarray, b: np.ndarray) -> int:
    """How many ids `a` and `b` share from their start."""
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if len(differ) else n


def _of_kind(ids: np.ndarray, vocab: Vocabulary, *names: str) -> np.ndarray:
    """(len(ids),) bool: which of `ids` are of the named kinds."""
    mask = np.zeros(len(ids), dtype=bool)
    for name in names:
        mask |= (ids >= vocab.offset(name)) & (ids < vocab.offset(name) + vocab.range(name).size)
    return mask


def fold_repeats(ids: np.ndarray, vocab: Vocabulary, repeats: int, varied: bool = False) -> np.ndarray:
    """`ids` (a whole piece as `encode` writes it) with each bar that `find_repeats` matches
    written as its head and `REPEAT(k) [SHIFT(s)]`, and with `varied`, each bar that
    `find_openings` matches as its head, `REPEAT(k)` and its new part (its track named)."""
    ids = np.asarray(ids, dtype=np.int64)
    spans = bar_spans(ids, vocab)
    bodies = [ids[body:end] for _, body, end in spans]
    found = find_repeats(bodies, vocab, repeats)
    openings = find_openings(bodies, found, vocab, repeats) if varied else [None] * len(spans)
    out = [ids[:spans[0][0]]] if spans else [ids]
    for (start, body, end), match, opening in zip(spans, found, openings):
        if opening is not None:
            k, cut = opening
            out += [ids[start:body], np.array([vocab.id_of("REPEAT", k)], dtype=np.int64),
                    _named(ids[body + cut:end], _last_track(ids[body:body + cut], vocab), vocab)]
        elif match is None:
            out.append(ids[start:end])
        else:
            k, semitones = match
            tail = [vocab.id_of("REPEAT", k)] + ([vocab.id_of("SHIFT", _SHIFT_INDEX[semitones])] if semitones else [])
            out += [ids[start:body], np.array(tail, dtype=np.int64)]
    return np.concatenate(out)


def _last_track(ids: np.ndarray, vocab: Vocabulary) -> int:
    """The last TRACK id in `ids` (-1: none)."""
    named = ids[_of_kind(ids, vocab, "TRACK")]
    return int(named[-1]) if len(named) else -1


def _first_note_at(part: np.ndarray, vocab: Vocabulary) -> int:
    """Where a part that starts at a POS has its first TRACK or note: after `POS [TEMPO]`."""
    return 2 if len(part) > 1 and _of_kind(part[1:2], vocab, "TEMPO")[0] else 1


def _named(part: np.ndarray, track_id: int, vocab: Vocabulary) -> np.ndarray:
    """A bar's part from a POS on, with its first note's track named (`track_id`) where the
    whole bar's ids left it implicit."""
    at = _first_note_at(part, vocab)
    if at >= len(part) or track_id < 0 or _of_kind(part[at:at + 1], vocab, "TRACK")[0]:
        return part
    return np.concatenate([part[:at], [track_id], part[at:]])


def _unnamed(part: np.ndarray, track_id: int, vocab: Vocabulary) -> np.ndarray:
    """`_named` undone: the new part's first TRACK left out when it names `track_id`, the track
    current where the opening ends (so the bar written out is what `encode` writes)."""
    at = _first_note_at(part, vocab)
    if at < len(part) and part[at] == track_id:
        return np.delete(part, at)
    return part


def unfold_repeats(ids, vocab: Vocabulary) -> np.ndarray:
    """`ids` with every bar written out: each `REPEAT(k) [SHIFT(s)]` replaced by the body of bar
    i-k (itself written out), its PITCH ids moved by s (a note leaving 0..127 is left out with
    its VEL and DUR); a varied repeat's `POS(p)` and new part follow the copy of bar i-k's
    opening before p, as `encode` writes such a bar. What the copy check compares: a REPEAT id
    stands for different music in different tunes. Ids that break the REPEAT rules are kept as
    they are."""
    ids = np.asarray(ids, dtype=np.int64)
    if "REPEAT" not in {r.name for r in vocab.ranges}:
        return ids
    repeat, shift = (vocab.offset("REPEAT"), vocab.range("REPEAT").size), (vocab.offset("SHIFT"), len(SHIFTS))
    pitch, pos = vocab.offset("PITCH"), (vocab.offset("POS"), vocab.range("POS").size)
    spans = bar_spans(ids, vocab)
    out = [ids[:spans[0][0]]] if spans else [ids]
    bodies: list[np.ndarray] = []
    for i, (start, body, end) in enumerate(spans):
        own = ids[body:end]
        k = int(own[0]) - repeat[0] + 1 if len(own) and 0 <= own[0] - repeat[0] < repeat[1] else 0
        if k and k <= i:
            shifted = len(own) > 1 and 0 <= own[1] - shift[0] < shift[1]
            semitones = SHIFTS[int(own[1]) - shift[0]] if shifted else 0
            rest = own[1 + shifted:]
            copy = _shifted(bodies[i - k], pitch, semitones)
            if len(rest) and 1 <= rest[0] - pos[0] < pos[1]:  # a varied repeat: the opening, then the new part
                later = np.flatnonzero((copy >= rest[0]) & (copy < pos[0] + pos[1]))
                copy = copy[:later[0]] if len(later) else copy
                own = np.concatenate([copy, _unnamed(rest, _last_track(copy, vocab), vocab)])
            else:
                specials = own[own <= EOS_ID]  # the piece's EOS after its last bar stays
                own = np.concatenate([copy, specials])
        bodies.append(own[own > EOS_ID])
        out += [ids[start:body], own]
    return np.concatenate(out)


def _shifted(body: np.ndarray, pitch: int, semitones: int) -> np.ndarray:
    """A body's PITCH ids moved by `semitones`; a note leaving 0..127 dropped with its VEL, DUR."""
    if not semitones:
        return body
    body = body.copy()
    notes = np.flatnonzero((body >= pitch) & (body < pitch + 128))
    body[notes] += semitones
    out = (body[notes] < pitch) | (body[notes] >= pitch + 128)
    keep = np.ones(len(body), dtype=bool)
    for at in notes[out]:
        keep[at:at + 3] = False
    return body[keep]


# ------------------------------------------------------------------------------ decoding


@dataclass
class Body:
    """What one decoded bar holds, relative to its bar line: notes (track, pitch, position,
    duration, velocity bin, drum) and tempo changes (position, qpm), in the order decoded."""

    notes: list[tuple[int, int, int, int, int, bool]] = field(default_factory=list)
    tempos: list[tuple[int, float]] = field(default_factory=list)


class BarBodies:
    """The decoder's memory of each bar's body, so that `REPEAT(k)` can copy bar i-k as it was
    decoded. A REPEAT is taken only while the current bar holds nothing but its head; its copy
    is made when the bar closes (`close`), so that a SHIFT right after it still applies, and,
    with `varied` repeats, a cut (`take_cut`) after which the bar is written anew."""

    def __init__(self, varied: bool = False):
        self.varied = varied
        self.bodies: list[Body] = []
        self.copying: tuple[int, int] | None = None  # (the bar copied, semitones) of the current bar
        self.cut: int | None = None  # the position from which a varied repeat is written anew
        self.shiftable = False  # the last id was a REPEAT taken, and no SHIFT yet

    def open_bar(self) -> None:
        self.bodies.append(Body())
        self.copying, self.cut, self.shiftable = None, None, False

    @property
    def started(self) -> bool:
        """Whether the current bar has a body yet (notes, tempo changes or a REPEAT)."""
        return self.copying is not None or bool(self.bodies[-1].notes or self.bodies[-1].tempos)

    @property
    def writable(self) -> bool:
        """Whether the current bar takes positions, tempo changes and notes of its own: not a
        REPEAT, or a varied one past its cut."""
        return self.copying is None or self.cut is not None

    def take_repeat(self, k: int) -> bool:
        """Copy bar i-k into the current bar i; False (dropped) when there is no such bar."""
        source = len(self.bodies) - 1 - k
        if source < 0:
            return False
        self.copying, self.shiftable = (source, 0), True
        return True

    def take_shift(self, index: int) -> bool:
        """Transpose the copy by SHIFT value `index`; False (dropped) unless right after REPEAT."""
        if not self.shiftable:
            return False
        self.copying, self.shiftable = (self.copying[0], SHIFTS[index]), False
        return True

    def take_cut(self, position: int) -> bool:
        """Copy only what bar i-k holds before `position` and write the bar anew from there; False
        (dropped) unless varied repeats are on, this bar is a REPEAT not yet cut and position >= 1."""
        if not (self.varied and self.copying is not None and self.cut is None and position >= 1):
            return False
        self.cut = position
        return True

    def close(self, bar_start: int, bar_length: int, notes: list, seen: set, tempos: dict[int, float]) -> None:
        """End the current bar (at `bar_start`, `bar_length` steps): when it is a REPEAT, put its
        copy into the decoder's `notes` (track, pitch, start, duration, velocity bin), `seen`
        (track, pitch, start) and `tempos` (step -> qpm)."""
        if self.copying is None:
            return
        copied = self._copy(bar_length)
        for pos, qpm in copied.tempos:
            tempos[bar_start + pos] = qpm
        for track, pitch, pos, duration, vbin, _ in copied.notes:
            seen.add((track, pitch, bar_start + pos))
            notes.append((track, pitch, bar_start + pos, duration, vbin))

    def _copy(self, bar_length: int) -> Body:
        """The current bar's copy, cut to `bar_length` steps (a varied repeat: to its cut) and to
        pitches 0..127; with a varied repeat's own notes after it, it becomes the current bar's
        body, for bars that copy this one."""
        source, semitones = self.copying
        body, end = self.bodies[source], bar_length if self.cut is None else min(self.cut, bar_length)
        copied = Body([(track, pitch if drum else pitch + semitones, pos, duration, vbin, drum)
                       for track, pitch, pos, duration, vbin, drum in body.notes
                       if pos < end and (drum or 0 <= pitch + semitones <= 127)],
                      [(pos, qpm) for pos, qpm in body.tempos if pos < end])
        own = self.bodies[-1]
        self.bodies[-1] = Body(copied.notes + own.notes, copied.tempos + own.tempos)
        return copied
