"""What a model saw in training, and how far a file's ids are from it.

Why: a model gives an id it never trained on whatever its untrained weights happen to give it,
so music full of such ids scores badly and steers sampling astray, and nothing used to say so.
The bundled chorale model (Bach, one loudness) scored string quartets at 7.48 nats/event, worse
than a unigram, because 24% of their ids were velocities it had never seen; with those mapped to
the velocity it knew, the same pieces scored 1.96. This module owns the three answers:

- **The data profile** (`DataProfile`): how often each id of the vocabulary, (V,) ints, occurs
  in the train split a model trained on, with the run's `training.transpose_range` (an id a
  transposition moves a seen id onto was seen too). Training stores it in every checkpoint
  (`checkpoint.DATA_PROFILE`); for a checkpoint without one (the bundled models, older runs)
  `checkpoint_profile` counts it from the run's prepared dataset (`dataset.runs.run_dataset_dir`:
  a bundled corpus is prepared into the user's cache the first time, a few seconds) and says
  nothing when that dataset cannot be found.
- **Unseen ids** (`unseen_ids` -> `Unseen`): the share of a file's ids the model never saw, i.e.
  that the train split holds fewer than `SEEN_AT_LEAST` times in every training transposition,
  by kind (the vocabulary's range names). `Unseen.warning` is the one line `evaluate`,
  `sample --primer` and `--accompany` print once the share reaches `WARN_SHARE`.
- **The usual tracks** (`DataProfile.header`): for an encoding whose ids name instruments, the
  instruments (GM programs, in track order) that open most training pieces, when at least half
  of them open so: a piece begun from nothing gets them (`encodings.multitrack_conditioning`),
  so a chorale model writes its four voices and a folk band its chord track; and each of those
  tracks' pitch range in those pieces (`ranges`), inside which the grammar keeps new notes
  (`multitrack_tracks.PitchRanges`). Only a profile
  stored at training has them (one counted on demand does not, so that what a model writes does
  not depend on whether its dataset happens to be in the cache).
- **Fitting velocities** (`fit_velocities`): each velocity id the model never saw replaced by the
  nearest one it saw, by value in the same kind (the nearest loudness): `evaluate
  --fit-velocities` and `sample --fit-velocities` (a primer).

Nothing here names an encoding or one of its tokens: kinds are the vocabulary's ranges, and which
ids carry a note's velocity is read from the encoding itself (`velocity_kinds`: the same notes
encoded soft and loud, the kinds of the ids that change), so a new encoding needs nothing declared.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from melodygen.encodings.vocab import EOS_ID
from melodygen.errors import MelodygenError

SEEN_AT_LEAST = 3
"""An id the train split holds fewer times than this (in every training transposition) counts as
unseen: once or twice among hundreds of thousands of ids teaches a model next to nothing."""
WARN_SHARE = 0.02
"""The share of a file's ids that must be unseen for the warning: 2%. Below it, a few rare ids
(a pitch at the edge of the range, a meter of one bar) cost a little and are not worth a line;
the figures (`Unseen.to_dict`) still carry them."""
_EXAMPLES = 3  # unseen tokens named per kind, the most frequent first
# The probe `velocity_kinds` encodes: a C major scale twice at 120 qpm, inside every default pitch
# range, and more notes than any encoding's default minimum.
_PROBE_PITCHES = (60, 62, 64, 65, 67, 69, 71, 72) * 2


@dataclass(frozen=True, eq=False)  # an array field: compare `counts` yourself
class DataProfile:
    """How often each id occurs in a model's train split (`counts`, (V,) int64), and the
    transpositions it trained with (`transpose_range`, inclusive semitones)."""

    counts: np.ndarray
    transpose_range: tuple[int, int] = (0, 0)
    header: tuple[int, ...] | None = None  # the usual instruments, in track order (module docstring)
    ranges: tuple[tuple[int, int], ...] | None = None  # per track of `header`: lowest, highest pitch

    def to_dict(self) -> dict:
        """What a checkpoint stores: {"counts": [int] * V, "transpose_range": [lo, hi]}, and
        "header": [program, ...] and "ranges": [[lowest, highest], ...] (one per header track)
        where there is a usual header."""
        header = {} if self.header is None else {"header": list(self.header)}
        ranges = {} if self.ranges is None else {"ranges": [list(r) for r in self.ranges]}
        return {"counts": [int(c) for c in self.counts], "transpose_range": list(self.transpose_range), **header,
                **ranges}

    @classmethod
    def from_dict(cls, d, vocab_size: int) -> DataProfile | None:
        """The profile a checkpoint stores; None when it is damaged or of another vocabulary."""
        try:
            counts = np.asarray(d["counts"], dtype=np.int64)
            lo, hi = (int(x) for x in d.get("transpose_range", (0, 0)))
            header = None if d.get("header") is None else tuple(int(p) for p in d["header"])
            ranges = None if d.get("ranges") is None else tuple((int(a), int(b)) for a, b in d["ranges"])
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        if counts.shape != (vocab_size,) or (counts < 0).any() or not lo <= 0 <= hi:
            return None
        if not _tracks_ok(header, ranges):  # damaged: the counts still hold, the tracks are dropped
            header = ranges = None
        return cls(counts, (lo, hi), header or None, ranges or None)

    def seen(self, encoding) -> np.ndarray:
        """(V,) bool: the ids the model trained on at least `SEEN_AT_LEAST` times in one of its
        transpositions (`Encoding.pitch_shift_table`), specials always."""
        best = self.counts.copy()
        lo, hi = self.transpose_range
        for shift in (s for s in range(lo, hi + 1) if s):
            table = encoding.pitch_shift_table(shift)
            moved = table >= 0
            np.maximum.at(best, table[moved], self.counts[moved])
        seen = best >= SEEN_AT_LEAST
        seen[:EOS_ID + 1] = True
        return seen


def _tracks_ok(header, ranges) -> bool:
    """A stored header of GM programs (0-128, 128 the drums) with one (lowest <= highest) range
    in 0..127 per track, or neither."""
    if header is None:
        return ranges is None
    return (all(0 <= p <= 128 for p in header)
            and (ranges is None or (len(ranges) == len(header) and all(0 <= a <= b <= 127 for a, b in ranges))))


def dataset_profile(directory: str | Path, encoding, transpose_range: Sequence[int] = (0, 0), *,
                    tracks: bool = True) -> DataProfile:
    """The profile of a prepared dataset's train split (checked by the caller); `tracks=False`
    leaves out the usual tracks and their ranges (which decode every piece)."""
    from melodygen.dataset.shards import TokenDataset

    train = TokenDataset(directory, "train")
    ids = np.asarray(train.ids, dtype=np.int64)
    counts = np.bincount(ids, minlength=encoding.vocab.size)[:encoding.vocab.size]
    lo, hi = transpose_range
    header = usual_header(ids, train.offsets, encoding) if tracks else None
    ranges = None if header is None else track_ranges(ids, train.offsets, encoding, header, (int(lo), int(hi)))
    return DataProfile(counts.astype(np.int64), (int(lo), int(hi)), header, ranges)


def track_ranges(ids: np.ndarray, offsets: np.ndarray, encoding, header: tuple[int, ...],
                 transpose_range: tuple[int, int]) -> tuple[tuple[int, int], ...]:
    """Per track of the usual `header`, the lowest and highest pitch its notes have in the
    training pieces that open with it (decoded: no token named), widened by the training
    transpositions; (0, 127) for a track without pitched notes (drums)."""
    lows, highs = [128] * len(header), [-1] * len(header)
    program_ids = encoding.program_ids()
    opening = np.asarray([program_ids[p] for p in header])
    for start, end in zip(offsets[:-1], offsets[1:]):
        if not np.array_equal(ids[start + 1:start + 1 + len(header)], opening):
            continue
        for i, track in enumerate(encoding.decode_score(ids[start + 1:end]).tracks[:len(header)]):
            pitches = [n.pitch for n in track.notes] if not track.is_drum else []
            if pitches:
                lows[i], highs[i] = min(lows[i], min(pitches)), max(highs[i], max(pitches))
    lo, hi = transpose_range
    return tuple((max(0, low + lo), min(127, high + hi)) if high >= 0 else (0, 127) for low, high in zip(lows, highs))


USUAL_SHARE = 0.5  # the share of training pieces one header must open for a piece to get it


def usual_header(ids: np.ndarray, offsets: np.ndarray, encoding) -> tuple[int, ...] | None:
    """The instruments that open at least `USUAL_SHARE` of the pieces `ids` holds (each `BOS
    ids... EOS` between `offsets`), read through `Encoding.program_ids`; None for an encoding
    whose ids name no instruments, or when no header is that common."""
    from collections import Counter

    program_ids = encoding.program_ids()
    if program_ids is None or len(offsets) < 2:
        return None
    program_of = {int(i): program for program, i in enumerate(program_ids)}
    headers: Counter = Counter()
    for start, end in zip(offsets[:-1], offsets[1:]):
        header = []
        for i in ids[start + 1:end]:
            if int(i) not in program_of:
                break
            header.append(program_of[int(i)])
        headers[tuple(header)] += 1
    header, count = headers.most_common(1)[0]
    return header if header and count >= USUAL_SHARE * (len(offsets) - 1) else None


def stored_profile(ckpt: dict, encoding) -> DataProfile | None:
    """The profile `ckpt` stores (from training or `make_pretrained`), or None: never counted."""
    from melodygen.checkpoint import DATA_PROFILE

    return DataProfile.from_dict(ckpt[DATA_PROFILE], encoding.vocab.size) if DATA_PROFILE in ckpt else None


def checkpoint_profile(ckpt: dict, encoding, origin: str) -> DataProfile | None:
    """What the model of `ckpt` (a loaded checkpoint dict) saw: its stored profile, else the one
    counted from its run's dataset, kept in `ckpt` so that a loaded model counts it once; None
    when neither is there (`origin` names the checkpoint in a config error, never shown)."""
    from melodygen.checkpoint import DATA_PROFILE

    if DATA_PROFILE in ckpt:
        return DataProfile.from_dict(ckpt[DATA_PROFILE], encoding.vocab.size)
    profile = _run_profile(ckpt.get("run_config") or {}, encoding, origin)
    if profile is not None:
        ckpt[DATA_PROFILE] = profile.to_dict()
    return profile


def _run_profile(run_config: dict, encoding, origin: str) -> DataProfile | None:
    """The profile of the dataset a run trained on, or None where it cannot be found or read."""
    from melodygen.config import config_from_dict
    from melodygen.dataset.manifest import check_dataset
    from melodygen.dataset.runs import run_dataset_dir

    data = run_config.get("data") or {}
    if not data.get("dataset") and not data.get("sources"):
        return None
    try:
        config = config_from_dict(run_config, origin)
        directory = run_dataset_dir(config, encoding)
        if not Path(directory).is_dir():
            return None
        check_dataset(directory, encoding.to_dict())
        # without the usual tracks: a piece's header must not depend on whether a cache exists
        return dataset_profile(directory, encoding, config.training.transpose_range, tracks=False)
    except (MelodygenError, OSError):
        return None


@functools.lru_cache(maxsize=16)
def velocity_kinds(encoding) -> tuple[str, ...]:
    """The names of the vocabulary ranges that carry a note's velocity, in vocabulary order
    (none for an encoding that keeps no velocity): the kinds of the ids that differ between the
    same notes encoded at velocity 1 and at 127."""
    from melodygen.notes import Note, Score, TempoMap, Track

    def probe(velocity: int) -> np.ndarray:
        notes = [Note(p, velocity, i * 0.5, i * 0.5 + 0.4) for i, p in enumerate(_PROBE_PITCHES)]
        score = Score([Track("probe", 0, False, notes)], TempoMap(qpm=(120.0,)), [(0.0, 4, 4)],
                      end_time=len(notes) * 0.5)
        return np.asarray(encoding.encode(score), dtype=np.int64)

    try:
        soft, loud = probe(1), probe(127)
    except MelodygenError:  # settings that take none of the probe's notes: nothing to fit
        return ()
    if len(soft) != len(loud):
        return ()
    differ = np.flatnonzero(soft != loud)
    kinds, _ = encoding.vocab.split(np.concatenate([soft[differ], loud[differ]]))
    return tuple(encoding.vocab.ranges[k].name for k in sorted(set(kinds.tolist())))


@dataclass(frozen=True)
class Unseen:
    """The ids of some music that the model never saw: how many ids were looked at (`ids`,
    events only), how many of them are unseen, and by kind (a vocabulary range's name) the
    unseen count and the unseen tokens, the most frequent first. `velocities`: the
    kinds that carry velocity (`velocity_kinds`), which `fit_velocities` can map."""

    ids: int
    unseen: int
    kinds: dict[str, int]
    tokens: dict[str, list[str]]
    velocities: tuple[str, ...] = ()

    @property
    def share(self) -> float:
        return self.unseen / self.ids if self.ids else 0.0

    def to_dict(self) -> dict:
        return {"ids": self.ids, "unseen": self.unseen, "share": self.share, "kinds": dict(self.kinds),
                "tokens": {k: list(v) for k, v in self.tokens.items()}}

    @property
    def far(self) -> bool:
        """Whether at least `WARN_SHARE` of the ids are unseen: far enough to say so."""
        return bool(self.ids) and self.share >= WARN_SHARE

    def warning(self, what: str, *, hint: bool = True) -> str | None:
        """`describe` when the ids are `far` from what the model saw; None otherwise."""
        return self.describe(what, hint=hint) if self.far else None

    def describe(self, what: str, *, hint: bool = True) -> str:
        """The warning line: `what` (a file, a set of files), the share of unseen ids, and each
        kind with its share and tokens; `hint` adds what `--fit-velocities` would do where
        velocities are among them."""
        parts = []
        for name, count in sorted(self.kinds.items(), key=lambda kv: -kv[1]):
            label = f"velocities ({name})" if name in self.velocities else name
            tokens = self.tokens[name]
            more = " ..." if len(tokens) > _EXAMPLES else ""
            parts.append(f"{label} {_percent(count / self.ids)} ({' '.join(tokens[:_EXAMPLES])}{more})")
        fit = hint and any(name in self.velocities for name in self.kinds)
        tail = "; --fit-velocities maps its velocities to the nearest the model saw" if fit else ""
        return (f"warning: {what}: {_percent(self.share)} of the ids are ones the model never saw in "
                f"training: {', '.join(parts)}{tail}")


def _percent(share: float) -> str:
    """24%, 2%, 0.4%, <0.1%: whole percents but under 1%."""
    return f"{share:.0%}" if share >= 0.01 else f"{share:.1%}" if share >= 0.001 else "<0.1%"


def unseen_ids(ids: Sequence[int] | np.ndarray, encoding, profile: DataProfile) -> Unseen:
    """What of `ids` (BOS/EOS and PAD not counted) the model of `profile` never saw."""
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    ids = ids[ids > EOS_ID]
    out = ids[~profile.seen(encoding)[ids]]
    values, counts = np.unique(out, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    values, counts = values[order], counts[order]
    names = [encoding.vocab.ranges[k].name for k in encoding.vocab.split(values)[0].tolist()]
    kinds, tokens = {}, {}
    # each token alone: read in a row, a multitrack PROGRAM would name the instrument of a TRACK
    for name, id_, count in zip(names, values.tolist(), counts.tolist()):
        token = encoding.readable([id_])[0]
        kinds[name] = kinds.get(name, 0) + count
        tokens.setdefault(name, []).append(token)
    return Unseen(len(ids), len(out), kinds, tokens, velocity_kinds(encoding))


def fit_velocities(ids: Sequence[int] | np.ndarray, encoding, profile: DataProfile) -> tuple[np.ndarray, int]:
    """(`ids` with each velocity id the model never saw replaced by the nearest one it saw in
    the same kind, by value (a tie: the softer), int64; how many ids changed). Every other id
    stays, and so does a velocity kind of which the model saw none."""
    ids = np.asarray(ids, dtype=np.int64)
    table = np.arange(encoding.vocab.size)
    seen = profile.seen(encoding)
    for name in velocity_kinds(encoding):
        start = encoding.vocab.offset(name)
        block = np.arange(start, start + encoding.vocab.range(name).size)
        known = block[seen[block]]
        if len(known):
            nearest = known[np.abs(block[:, None] - known[None, :]).argmin(axis=1)]
            table[block] = np.where(seen[block], block, nearest)
    fitted = table[ids]
    return fitted, int((fitted != ids).sum())


@dataclass(frozen=True)
class InputCheck:
    """A primer's or given music's ids as the model gets them (`fit_velocities` applied when
    asked), the warning about them (None: none, or what the model saw is unknown), and how many
    ids were fitted."""

    ids: list[int]
    warning: str | None = None
    fitted: int = 0


UNKNOWN_FIT = "--fit-velocities: what the model saw in training is unknown (no profile, no dataset); nothing fitted"


def resolve(profile: DataProfile | Callable[[], DataProfile | None] | None) -> DataProfile | None:
    """The profile itself, from a function giving it where that is what was passed."""
    return profile() if callable(profile) else profile


def check_input(ids: Sequence[int], encoding, profile: DataProfile | Callable[[], DataProfile | None] | None,
                what: str, *, fit: bool = False, hint: bool = True) -> InputCheck:
    """Sampling's one call for music the user gives (`what` names the file): the ids fitted
    (`fit`) and the warning (`hint`: naming `--fit-velocities` where it would help), against
    `profile` (or a function giving it, called only for ids to check; None: unknown, the ids
    pass as they are)."""
    if not len(ids):
        return InputCheck(list(ids))
    profile = resolve(profile)
    if profile is None:
        return InputCheck(list(ids), UNKNOWN_FIT if fit else None)
    fitted = 0
    if fit:
        ids, fitted = fit_velocities(ids, encoding, profile)
    warning = unseen_ids(ids, encoding, profile).warning(what, hint=hint and not fit)
    return InputCheck([int(i) for i in ids], warning, fitted)
