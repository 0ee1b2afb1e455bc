"""The copy index of a prepared dataset (`DIR/copy_index.npz`) and the lookup that finds, for any
ids, the longest stretch that also occurs in a training piece: exactly, or transposed.

Index: a 64-bit polynomial hash of every window of `SEED_EVENTS` consecutive ids inside a train
piece (no window spans BOS/EOS), sorted, with each window's position in `train.bin`. A hash table
of all windows rather than a suffix array: it is built with a dozen vectorised passes over the
shard (a suffix array in numpy needs O(n log n) sorts of rank pairs), its lookups are one
`np.searchsorted` per window, and stretches shorter than a seed (under a bar of melody) are
musical commonplaces, not copies.

Lookup (`CopyIndex.check`): hash the query's windows, take every train window with the same hash
as a seed, **verify each seed by comparing ids** (so a hash collision never makes a match), chain
verified seeds on the same diagonal (train position - query position) into runs, and extend the
longest runs both ways by comparing ids. Transposed copies: the query's ids are first mapped
through `encoding.pitch_shift_table` for each transposition in `TRANSPOSITIONS` (an id the shift
takes out of range is -1 and breaks a match), so the check knows no encoding by name. Ids the
user gave (`check(ids, given)`: a primer, given tracks) are -1 too: no stretch includes one.

Exactness: every reported stretch is exact. A stretch is found whenever at least one of its
windows occurs at most `MAX_SEED_HITS` times in the train split; windows more common than that
(a bar of rests, a held note) are never seeds, which bounds the work on repetitive material, but
runs are extended across them. Length in bars comes from the encoding's time contract
(`Encoding.time_per_id`): beats / 4, seconds at 120 qpm in 4/4, or the BAR ids counted.

Both sides are compared written out (`Encoding.written_out`): where an encoding can point back
at earlier music (a multitrack `REPEAT`), the same id means different music in different tunes,
so the train pieces and the query are indexed and matched with every bar spelled out.

The index records the train shard it was built from (size and digest, as stored); an index that does not
match (a dataset rebuilt by an older melodygen, or a shard replaced) is built again on first use
and saved when the folder is writable. `prepare` builds it after the shards, before the manifest.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from melodygen.atomic import atomic_write
from melodygen.encodings.base import BARS, BEATS, SECONDS
from melodygen.encodings.vocab import EOS_ID
from melodygen.errors import DatasetError, OutputError

COPY_INDEX = "copy_index.npz"
INDEX_VERSION = 2  # 2: over the written-out train ids
SEED_EVENTS = 12  # ids per hashed window: 3 beats of melody, about 3 notes of performance/multitrack
MAX_SEED_HITS = 256  # a window seen more often in the train split is too common to seed a match
TRANSPOSITIONS = tuple(t for t in range(-6, 6) if t != 0)  # semitones, training stretch -> query
EXTENDED_RUNS = 8  # the longest seed runs per transposition that are extended across common windows
BEATS_PER_BAR = 4  # 4/4, as `sampling.files` lays out --bars (that module imports torch)
SECONDS_PER_BAR = BEATS_PER_BAR * 60 / 120  # a bar of 4/4 at 120 qpm
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd: the polynomial hash mod 2**64
_CHUNK = 1 << 16  # seeds verified per block (bounds the (seeds, SEED_EVENTS) gathers)


@dataclass(frozen=True)
class Copy:
    """One stretch of a query found in a training piece: `events` ids from query position
    `start`, equal to the training piece `piece` (its index in the train split; `source` its
    file) from event `piece_offset` moved by `transposition` semitones; `bars` its length in
    bars (None where the encoding declares no time)."""

    events: int
    bars: float | None
    start: int
    piece: int
    piece_offset: int
    source: str
    transposition: int = 0


@dataclass(frozen=True)
class CopyCheck:
    """The longest `exact` and `transposed` (at any transposition but 0) copies, None where no
    stretch of at least `SEED_EVENTS` ids is shared."""

    exact: Copy | None
    transposed: Copy | None

    @property
    def longest(self) -> Copy | None:
        """The longer of the two, in bars where the encoding counts time, else in events."""
        found = [c for c in (self.exact, self.transposed) if c is not None]
        return max(found, key=lambda c: (c.bars or 0.0, c.events), default=None)

    def to_dict(self) -> dict:
        return {"exact": self.exact and asdict(self.exact), "transposed": self.transposed and asdict(self.transposed)}


def window_hashes(ids: np.ndarray, k: int = SEED_EVENTS) -> np.ndarray:
    """uint64 hash of every window `ids[i:i + k]` (len(ids) - k + 1 of them, or none)."""
    n = len(ids) - k + 1
    if n <= 0:
        return np.zeros(0, dtype=np.uint64)
    values = np.asarray(ids).astype(np.uint64) + np.uint64(1)  # -1 (no id) wraps to 0
    hashes = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(k):
            hashes = hashes * _MULTIPLIER + values[j:j + n]
    return hashes


def _clean_windows(broken: np.ndarray, k: int) -> np.ndarray:
    """Start positions of the windows of `k` ids holding no `broken` one."""
    counts = np.concatenate([[0], np.cumsum(broken, dtype=np.int64)])
    return np.flatnonzero(counts[k:] == counts[:-k]) if len(broken) >= k else np.zeros(0, np.int64)


def _digest(ids: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(ids).tobytes(), digest_size=16).hexdigest()


def written_train(directory: str | Path, encoding) -> tuple[np.ndarray, np.ndarray]:
    """(ids, offsets) of the train split of `directory` as `encoding.written_out` spells each
    piece (the shard itself, memory-mapped, when that changes nothing)."""
    from melodygen.dataset.shards import TokenDataset

    train = TokenDataset(directory, "train")
    if not encoding.refers_back:
        return np.asarray(train.ids), train.offsets
    pieces = [encoding.written_out(train.ids[a:b]).astype(np.uint16)
              for a, b in zip(train.offsets[:-1], train.offsets[1:])]
    offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in pieces], out=offsets[1:])
    return (np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.uint16)), offsets


def build_index(directory: str | Path, encoding) -> dict:
    """Build the copy index of the dataset (or staging) folder `directory` (prepared with
    `encoding`) from its written-out train split and write it atomically; returns {"seconds",
    "bytes", "windows"} of the build."""
    started = time.perf_counter()
    arrays = _index_arrays(written_train(directory, encoding)[0], _raw_train(directory))
    path = _save_index(Path(directory), arrays)
    return {"seconds": round(time.perf_counter() - started, 4), "bytes": path.stat().st_size,
            "windows": int(len(arrays["hashes"]))}


def _save_index(directory: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write `arrays` as `directory/COPY_INDEX`, atomically; its path."""
    path = directory / COPY_INDEX
    with atomic_write(path) as file:
        np.savez(file, **arrays)
    return path


def _index_arrays(written: np.ndarray, raw: np.ndarray) -> dict[str, np.ndarray]:
    """The index of the `written`-out train ids, recording the `raw` shard it was made from."""
    starts = _clean_windows(written <= EOS_ID, SEED_EVENTS)  # inside one piece: no PAD/BOS/EOS
    hashes = window_hashes(written)[starts]
    order = np.argsort(hashes, kind="stable")
    position_type = np.uint32 if len(written) < 2**32 else np.int64
    return {"version": np.array(INDEX_VERSION), "seed_events": np.array(SEED_EVENTS),
            "train_tokens": np.array(len(raw)), "train_digest": np.array(_digest(raw)),
            "hashes": hashes[order], "positions": starts[order].astype(position_type)}


def _raw_train(directory: Path) -> np.ndarray:
    """The train shard's ids as stored (memory-mapped)."""
    from melodygen.dataset.shards import TokenDataset

    return np.asarray(TokenDataset(directory, "train").ids)


class CopyIndex:
    """The copy index of one prepared dataset, ready for `check`. `CopyIndex.open(directory,
    encoding)` loads `DIR/copy_index.npz`, building (and saving) it first when it is missing
    or stale; `built` then says so."""

    def __init__(self, directory: Path, arrays, encoding, sources: list[str], built: bool,
                 written: tuple[np.ndarray, np.ndarray]):
        """`written`: the train split written out, (ids, offsets) (`written_train`)."""
        self.directory, self.encoding, self.sources, self.built = directory, encoding, sources, built
        self.ids, self.offsets = written
        self.hashes, self.positions = arrays["hashes"], arrays["positions"].astype(np.int64)
        self.bar_amounts = bar_amounts(encoding)

    @classmethod
    def open(cls, directory: str | Path, encoding=None, *, build: bool = True, save: bool = True) -> CopyIndex:
        """The index of dataset `directory` (its own encoding unless `encoding` is given).
        `build=False`: `DatasetError` when it has none. Built, it is saved there unless `save`
        is False (a folder a checkpoint names is not ours to write) or the folder cannot be
        written; then it is kept in memory."""
        from melodygen.dataset.manifest import load_dataset_encoding, read_manifest

        directory = Path(directory)
        manifest = read_manifest(directory)
        encoding = encoding or load_dataset_encoding(directory)
        arrays, built = _load_arrays(directory, encoding), False
        if arrays is None and not build:
            raise DatasetError(f"{directory}: no copy index ({COPY_INDEX}); run `melodygen prepare --force`")
        written = written_train(directory, encoding)  # what lookups compare with; built from once
        if arrays is None:
            arrays, built = _build_or_compute(directory, written[0], save), True
        return cls(directory, arrays, encoding, train_sources(manifest), built, written)

    def check(self, ids, given=None) -> CopyCheck:
        """The longest exact and transposed copies of `ids` (a piece's ids written out,
        `Encoding.written_out`; specials ignored). `given` (bool per id) marks what the user
        supplied (a primer, given tracks): no stretch includes one of those, so a copy's events
        and bars are all the model's own."""
        query = np.asarray(ids, dtype=np.int64)
        # specials (and ids outside the vocabulary) are never part of a match, nor given ids
        skipped = (query <= EOS_ID) | (query >= len(self.encoding.vocab.tokens))
        if given is not None:
            skipped |= np.asarray(given, dtype=bool)
        query = np.where(skipped, -1, query)
        times = None if self.bar_amounts is None else np.concatenate(
            [[0.0], np.cumsum(self.bar_amounts[np.maximum(query, 0)] * (query >= 0))])
        best = {shift: self._longest(query, shift, times) for shift in (0, *TRANSPOSITIONS)}
        transposed = [c for shift, c in best.items() if shift and c is not None]
        return CopyCheck(best[0], max(transposed, key=_rank, default=None))

    def _longest(self, query: np.ndarray, transposition: int, times) -> Copy | None:
        mapped = query
        if transposition:  # the training stretch moved by `transposition` is the query
            table = self.encoding.pitch_shift_table(-transposition)
            mapped = np.where(query >= 0, table[np.maximum(query, 0)], -1)
        runs = _seed_runs(mapped, self._seeds(mapped))
        if not len(runs):
            return None
        best = None
        for start, train_start, events in _longest_runs(runs, times):
            start, train_start, events = _extend(mapped, self.ids, start, train_start, events)
            copy = self._copy(start, train_start, events, transposition, times)
            best = copy if best is None or _rank(copy) > _rank(best) else best
        return best

    def _seeds(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query positions, train positions) of verified equal windows."""
        starts = _clean_windows(query < 0, SEED_EVENTS)
        hashes = window_hashes(query)[starts]
        lo = np.searchsorted(self.hashes, hashes, "left")
        hits = np.searchsorted(self.hashes, hashes, "right") - lo
        keep = (hits > 0) & (hits <= MAX_SEED_HITS)
        starts, lo, hits = starts[keep], lo[keep], hits[keep]
        first = np.repeat(lo - np.concatenate([[0], np.cumsum(hits)[:-1]]), hits)
        train = self.positions[first + np.arange(int(hits.sum()))]
        return _verified(query, self.ids, np.repeat(starts, hits), train)

    def _copy(self, start: int, train_start: int, events: int, transposition: int, times) -> Copy:
        piece = int(np.searchsorted(self.offsets, train_start, "right") - 1)
        bars = None if times is None else float(times[start + events] - times[start])
        source = self.sources[piece] if piece < len(self.sources) else f"train piece {piece}"
        return Copy(int(events), bars, int(start), piece, int(train_start - self.offsets[piece] - 1),
                    source, transposition)


def _rank(copy: Copy) -> tuple[float, int]:
    return (copy.bars or 0.0, copy.events)


def _verified(query, train, starts, train_starts) -> tuple[np.ndarray, np.ndarray]:
    """The seeds whose windows are equal id for id (a hash collision is dropped here)."""
    cols = np.arange(SEED_EVENTS)
    ok = np.zeros(len(starts), dtype=bool)
    for lo in range(0, len(starts), _CHUNK):
        q, t = starts[lo:lo + _CHUNK, None] + cols, train_starts[lo:lo + _CHUNK, None] + cols
        ok[lo:lo + _CHUNK] = (query[q] == train[t]).all(axis=1)
    return starts[ok], train_starts[ok]


def _seed_runs(query: np.ndarray, seeds) -> np.ndarray:
    """(query start, train start, events) of each chain of seeds on one diagonal, (R, 3)."""
    starts, train_starts = seeds
    if not len(starts):
        return np.zeros((0, 3), dtype=np.int64)
    diagonal = train_starts - starts
    order = np.lexsort((starts, diagonal))
    starts, diagonal = starts[order], diagonal[order]
    new = np.ones(len(starts), dtype=bool)
    new[1:] = (diagonal[1:] != diagonal[:-1]) | (starts[1:] != starts[:-1] + 1)
    heads = np.flatnonzero(new)
    lengths = np.diff(np.append(heads, len(starts))) + SEED_EVENTS - 1
    return np.stack([starts[heads], starts[heads] + diagonal[heads], lengths], axis=1)


def _longest_runs(runs: np.ndarray, times) -> np.ndarray:
    """The `EXTENDED_RUNS` runs longest in time (then events) or, without time, in events."""
    events = runs[:, 2]
    span = events if times is None else times[runs[:, 0] + events] - times[runs[:, 0]]
    order = np.lexsort((-events, -span))
    return runs[order[:EXTENDED_RUNS]]


def _extend(query, train, start: int, train_start: int, events: int) -> tuple[int, int, int]:
    """A run widened both ways while the ids stay equal (across windows too common to seed);
    BOS/EOS in the shard and -1 in the query stop it at piece ends and broken ids."""
    back = _common_prefix(query[:start][::-1], train[:train_start][::-1])
    ahead = _common_prefix(query[start + events:], train[train_start + events:])
    return start - back, train_start - back, events + back + ahead


def _common_prefix(a: np.ndarray, b: np.ndarray, block: int = 256) -> int:
    n = min(len(a), len(b))
    for lo in range(0, n, block):
        hi = min(lo + block, n)
        differ = np.flatnonzero(a[lo:hi] != b[lo:hi])
        if len(differ):
            return lo + int(differ[0])
    return n


def _load_arrays(directory: Path, encoding) -> dict | None:
    """The stored index arrays when they match the train shard and this format, else None (a
    version-1 index, over the shard as stored, is the same index for an encoding that never
    refers back)."""
    path = directory / COPY_INDEX
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}
    except (OSError, ValueError, EOFError):  # damaged: built again
        return None
    ids = _raw_train(directory)
    versions = (INDEX_VERSION,) if encoding.refers_back else (1, INDEX_VERSION)
    fresh = (arrays.get("version") in versions and arrays.get("seed_events") == SEED_EVENTS
             and arrays.get("train_tokens") == len(ids) and str(arrays.get("train_digest")) == _digest(ids))
    return arrays if fresh else None


def _build_or_compute(directory: Path, written: np.ndarray, save: bool) -> dict:
    """The index of the `written`-out train split, saved in `directory` when `save` and it can
    be written (else kept in memory only)."""
    arrays = _index_arrays(written, _raw_train(directory))
    if save:
        try:
            _save_index(directory, arrays)
        except OutputError:  # a read-only dataset: the same index, kept in memory
            pass
    return arrays


def train_sources(manifest: dict) -> list[str]:
    """The source file of each train piece, by its index in the train split ('' if unknown)."""
    pieces = [p for p in manifest.get("pieces", []) if p.get("split") == "train"]
    sources = [""] * (max((p["index"] for p in pieces), default=-1) + 1)
    for p in pieces:
        sources[p["index"]] = p["path"]
    return [s or f"train piece {i}" for i, s in enumerate(sources)]


def bar_amounts(encoding) -> np.ndarray | None:
    """How many bars each id moves time (V,), from the encoding's time contract: beats / 4,
    seconds / 2 (4/4 at 120 qpm), or the BAR ids themselves; None without declared time."""
    time_per_id = encoding.time_per_id()
    if time_per_id is None:
        return None
    per_bar = {BEATS: BEATS_PER_BAR, SECONDS: SECONDS_PER_BAR, BARS: 1.0}[time_per_id.unit]
    return np.asarray(time_per_id.amounts, dtype=np.float64) / per_bar
