"""How well a melody alone names its bars' chords: the labels accompaniment gives a model.

`sample --accompany tune.mid --given-tracks 1` hands a model with the chord control one chord
label per bar, and the model's chord track follows it. Those labels come from the melody
alone. For every two-track piece (melody + chords) of a prepared dataset's splits, this
compares, bar by bar, with the label the piece's own chord track gets (what training saw):

- the labels of the melody's notes (`multitrack_controls.measure`: template matching over the
  first half of the bar, as training data is labelled; what accompaniment used before);
- `harmony.harmonize` at its weights, and with each of its parts set to 0.

Exact: the same chord; root: the same root. The weights were chosen on the training split.

    .venv/bin/python scripts/harmonize_table.py --data runs/data/nottingham-multitrack
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from melodygen import harmony
from melodygen.encodings import get_encoding

VARIANTS = {
    "harmonize (the weights used)": {},
    "... first half weighed as the second": {"first_weight": 1.0},
    "... no bonus for the key's diatonic chords": {"diatonic": 0.0},
    "... no bonus for I, IV, V": {"primary": 0.0},
    "... no bonus for keeping a chord": {"stay": 0.0},
}


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a prepared multitrack dataset (melody + chords)")
    parser.add_argument("--pieces", type=int, default=None, help="at most this many pieces per split")
    return parser.parse_args()


def pieces(data: Path, split: str, limit: int | None):
    """(melody alone, whole piece) of each two-track piece of `split`."""
    from melodygen.dataset.manifest import read_manifest
    from melodygen.midi_io import read_score
    from melodygen.notes import Score

    found = 0
    for piece in read_manifest(data)["pieces"]:
        if piece["split"] != split or (limit is not None and found >= limit):
            continue
        score = read_score(piece["path"])
        tracks = [t for t in score.tracks if t.notes]
        if len(tracks) == 2:
            found += 1
            yield (Score(tracks[:1], score.tempo_map, score.time_signatures, score.end_time),
                   Score(tracks, score.tempo_map, score.time_signatures, score.end_time))


def agreement(encoding, data: Path, split: str, limit: int | None) -> tuple[dict[str, np.ndarray], int]:
    """{labeller: (exact, same root, bars)} over the split's pieces, and how many pieces."""
    counts = {name: np.zeros(3) for name in ("the melody's notes (before)", *VARIANTS)}
    n = 0
    for melody, whole in pieces(data, split, limit):
        n += 1
        real = encoding.controls_of(whole).chords
        measured = encoding.controls_of(melody)
        found = {"the melody's notes (before)": measured.chords}
        for name, weights in VARIANTS.items():
            found[name] = encoding.melody_chords(melody, measured.key, **weights)
        bars_both = min(len(real), len(measured.chords))
        labelled = real[:bars_both] >= 0
        for name, chords in found.items():
            chords = chords[:bars_both]
            roots = len(harmony.QUALITIES)
            counts[name] += (np.sum((chords == real[:bars_both]) & labelled),
                             np.sum((chords // roots == real[:bars_both] // roots) & labelled & (chords >= 0)),
                             labelled.sum())
    return counts, n


def main() -> None:
    """Print the table."""
    args = parse_args()
    encoding = get_encoding("multitrack", controls=["key", "chord"])
    results = {split: agreement(encoding, args.data, split, args.pieces) for split in ("train", "valid")}
    (_, n_train), (_, n_valid) = results["train"], results["valid"]
    print(f"| melody -> chord labels | training split ({n_train} tunes) | validation split ({n_valid} tunes) |")
    print("|---|---:|---:|")
    for name in results["train"][0]:
        cells = []
        for split in ("train", "valid"):
            exact, root, bars = results[split][0][name]
            cells.append(f"{exact / bars:.1%} exact, {root / bars:.1%} root ({int(bars):,} bars)")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
