"""How often the key measure finds a real tune's own key in its opening bars: the ceiling of the
"key asked -> key found" figure.

The adherence line measures the key of N new bars with Krumhansl-Kessler (`harmony.detect_key`
over note durations per pitch class); a tune's KEY control token is the same measure over the
whole tune. For every Nottingham tune with at least N bars, this counts how often the first N bars
are measured in the whole tune's key, for major and minor tunes apart: a model that wrote real
tunes would score this, not 100%.

    .venv/bin/python scripts/key_ceiling.py --bars 4 8 16
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bars", type=int, nargs="+", default=[4, 8, 16], help="opening lengths to measure")
    parser.add_argument("--folder", type=Path, default=REPO / "data" / "nottingham")
    return parser.parse_args()


def main() -> None:
    """Print, per opening length, the share of major and of minor tunes measured in their key."""
    from melodygen import harmony
    from melodygen.encodings import get_encoding
    from melodygen.errors import MelodygenError
    from melodygen.midi_io import read_score

    args = parse_args()
    encoding = get_encoding("multitrack", controls=["key"])
    tunes = []
    for path in sorted(args.folder.glob("*.mid")):
        try:
            score = read_score(path)
            key = encoding.controls_of(score).key
            _, notes, bars = encoding._laid_out(score)
        except MelodygenError:
            continue
        if key >= 0:
            tunes.append((key, notes, bars))
    print(f"{len(tunes)} tunes of {args.folder}")
    print("| opening bars | major tunes: key found | minor tunes: key found |\n|---:|---:|---:|")
    for count in args.bars:
        found = {False: [0, 0], True: [0, 0]}
        for key, notes, bars in tunes:
            if len(bars) < count:
                continue
            end = bars[count - 1].start + bars[count - 1].length
            inside = notes["start"] < end
            weights = np.bincount(notes["pitch"][inside] % 12, weights=notes["duration"][inside], minlength=12)
            minor = harmony.key_name(key).endswith("m")
            found[minor][0] += int(harmony.detect_key(weights) == key)
            found[minor][1] += 1
        cells = [f"{hit / total:.1%} ({hit} of {total})" for hit, total in (found[False], found[True])]
        print(f"| {count} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
