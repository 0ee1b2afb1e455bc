"""What REPEAT saves in the multitrack stream (issue 22): one table per bundled corpus.

    .venv/bin/python scripts/repeat_table.py                              # all three corpora
    .venv/bin/python scripts/repeat_table.py --corpus nottingham --repeats 16

Every file of each corpus (`data/`) goes through the multitrack encoding (default settings,
drums kept) with repeats off and on (`--repeats K`, the farthest bar a REPEAT may point to):

- ids/note: ids per note without and with repeats (notes: PITCH and DRUM ids with repeats off);
- REPEAT bars: the share of bars with notes (or tempo changes) written as REPEAT, exactly and
  transposed (REPEAT SHIFT); the distances k used, by range, and the commonest ones;
- melody only: the share of those bars whose melody track alone repeats an earlier bar within K
  (exactly or transposed) while the whole bar does not, i.e. what whole-bar repeats miss (the
  melody: the track named Soprano or Melody, else the first one);
- H(k | k before): how hard the distance is to guess, as the entropy in bits of each REPEAT's
  (k, shift) given the previous bar's (its (k, shift), or none), for the encoder's rule (keep
  the previous bar's distance while it fits, then the nearest) and for always the nearest;
- varied repeats (`varied_repeats`): the share of bars written as `REPEAT(k) POS(p)` and a new
  part (an earlier bar's opening, then new music), and ids/note with them on (K as the table's);
- lossless: files whose decoded score (notes, tempos, meters) is the same with repeats off, on,
  and varied, and whose varied ids written out (`written_out`) are the ids with repeats off.
A second table gives the share of REPEAT bars and ids/note for other values of K.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CORPORA = ("nottingham", "bach-chorales", "pop909")
BUCKETS = ((1, 1), (2, 2), (3, 4), (5, 8), (9, 16), (17, 32), (33, 64))


def parse_args() -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", nargs="+", default=list(CORPORA), choices=CORPORA)
    parser.add_argument("--repeats", type=int, default=16, help="K of the main table")
    parser.add_argument("--also", type=int, nargs="*", default=[4, 8, 32, 64], help="other K values")
    return parser.parse_args()


def melody_of(score):
    """The score with only its melody track (Soprano / Melody by name, else the first)."""
    from melodygen.notes import Score

    tracks = [t for t in score.tracks if t.notes]
    named = [t for t in tracks if any(word in t.name.lower() for word in ("soprano", "melody"))]
    return Score([(named or tracks)[0]], score.tempo_map, score.time_signatures, score.end_time)


def bodies_of(encoding, ids) -> list[np.ndarray]:
    """The body ids of each bar of `ids` (repeats off)."""
    from melodygen.encodings.multitrack_repeats import bar_spans

    ids = np.asarray(ids, dtype=np.int64)
    return [ids[body:end] for _, body, end in bar_spans(ids, encoding.vocab)]


def measure_corpus(folder: Path, repeats: int, also: list[int]) -> dict:
    """{"counts": the figures summed over the folder's files, "distances": Counter of k}."""
    from melodygen.encodings import get_encoding
    from melodygen.encodings.multitrack_repeats import find_repeats
    from melodygen.errors import MidiReadError, NoUsableMusicError
    from melodygen.midi_io import read_score

    off = get_encoding("multitrack")
    on = {k: get_encoding("multitrack", repeats=k) for k in {repeats, *also}}
    varied = get_encoding("multitrack", repeats=repeats, varied_repeats=True)
    pitch_lo, drum_hi = off.vocab.offset("PITCH"), off.vocab.offset("DRUM") + 128
    m = Counter()
    distances = Counter()
    pairs = {True: Counter(), False: Counter()}  # keep_distance -> Counter of (bar before, bar)
    for path in sorted(folder.glob("*.mid")):
        try:
            score = read_score(path, include_drums=True)
            ids = off.encode(score)
        except (MidiReadError, NoUsableMusicError):
            m["skipped"] += 1
            continue
        m["files"] += 1
        m["notes"] += int(((ids >= pitch_lo) & (ids < drum_hi)).sum())
        m["ids_off"] += len(ids)
        for k, encoding in on.items():
            m[f"ids_on_{k}"] += len(encoding.encode(score))
        bodies = bodies_of(off, ids)
        whole = find_repeats(bodies, off.vocab, repeats)
        m["bars"] += sum(1 for body in bodies if len(body))
        varied_ids = varied.encode(score)
        m["ids_varied"] += len(varied_ids)
        kinds = [name for name, _ in varied.vocab.events(varied_ids)]
        m["varied"] += sum(a == "REPEAT" and b == "POS" for a, b in zip(kinds, kinds[1:]))  # the cuts
        for k in also:
            m[f"repeat_bars_{k}"] += sum(d is not None for d in find_repeats(bodies, off.vocab, k))
        for d in whole:
            if d is not None:
                m["exact" if d[1] == 0 else "transposed"] += 1
                distances[d[0]] += 1
        for keep in pairs:
            found = whole if keep else find_repeats(bodies, off.vocab, repeats, keep_distance=False)
            pairs[keep].update((a, b) for a, b in zip([None, *found[:-1]], found) if b is not None)
        melody = find_repeats(bodies_of(off, off.encode(melody_of(score))), off.vocab, repeats)
        for w, mel in zip(whole, melody):
            m["melody_missed"] += w is None and mel is not None
        back = on[repeats].decode_score(on[repeats].encode(score))
        m["lossless"] += (back == off.decode_score(ids) == varied.decode_score(varied_ids)
                          and np.array_equal(varied.written_out(varied_ids), ids))
    return {"counts": m, "distances": distances, "entropy": {keep: conditional_entropy(c) for keep, c in pairs.items()}}


def conditional_entropy(pairs: Counter) -> float:
    """H(b | a) in bits from counts of (a, b)."""
    total, given = sum(pairs.values()), Counter()
    for (a, _), count in pairs.items():
        given[a] += count
    return -sum(count / total * math.log2(count / given[a]) for (a, _), count in pairs.items()) if total else 0.0


def main() -> None:
    """Measure each corpus, print the two tables (Markdown)."""
    args = parse_args()
    also = [k for k in args.also if k != args.repeats]
    rows = {}
    for corpus in args.corpus:
        started = time.perf_counter()
        rows[corpus] = measure_corpus(REPO / "data" / corpus, args.repeats, also)
        print(f"{corpus}: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    k = args.repeats
    print(f"\nrepeats = {k}\n")
    ranges = [(lo, hi) for lo, hi in BUCKETS if lo <= k]
    print("| corpus | files (lossless) | bars with a body | ids/note off | ids/note on | ids saved "
          "| REPEAT bars: exact | transposed | k = " + " / ".join(f"{lo}" if lo == hi else f"{lo}-{min(hi, k)}"
                                                             for lo, hi in ranges)
          + " (share of REPEATs) | commonest k | H(k given k before), bits: kept / nearest "
          "| melody repeats, bar does not | varied repeats: bars | ids/note |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|---:|---:|---:|")
    for corpus, row in rows.items():
        m, dist = row["counts"], row["distances"]
        used = sum(dist.values()) or 1
        buckets = " / ".join(f"{sum(c for d, c in dist.items() if lo <= d <= hi) / used:.0%}" for lo, hi in ranges)
        entropy = f"{row['entropy'][True]:.2f} / {row['entropy'][False]:.2f}"
        common = ", ".join(f"{d} ({c / used:.0%})" for d, c in dist.most_common(4))
        print(f"| {corpus} | {m['files']:,} ({m['lossless']:,}) | {m['bars']:,} | {m['ids_off'] / m['notes']:.2f} "
              f"| {m[f'ids_on_{k}'] / m['notes']:.2f} | {1 - m[f'ids_on_{k}'] / m['ids_off']:.1%} "
              f"| {m['exact'] / m['bars']:.1%} | {m['transposed'] / m['bars']:.1%} | {buckets} | {common} | {entropy} "
              f"| {m['melody_missed'] / m['bars']:.1%} | {m['varied'] / m['bars']:.1%} "
              f"| {m['ids_varied'] / m['notes']:.2f} |")
    print("\n| corpus | " + " | ".join(f"K = {x}: REPEAT bars, ids/note" for x in sorted({k, *also})) + " |")
    print("|---|" + "---:|" * len({k, *also}))
    for corpus, row in rows.items():
        m = row["counts"]
        cells = []
        for x in sorted({k, *also}):
            share = (m["exact"] + m["transposed"]) if x == k else m[f"repeat_bars_{x}"]
            cells.append(f"{share / m['bars']:.1%}, {m[f'ids_on_{x}'] / m['notes']:.2f}")
        print(f"| {corpus} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
