"""Keys asked for, and found: a model's key control at several `--key-strength` values, one run.

    .venv/bin/python scripts/key_table.py folk-band --strengths 0 1 2 3 4 --keys G D Em Am --cadence on off
    .venv/bin/python scripts/key_table.py folk-band --strengths 4 --bars 16 --form AABA   # under a form plan

For each strength and cadence (on: the chord track opens and closes on the key's tonic chord,
`sample --cadence`; off: no chords written, `--no-cadence`), --samples pieces of --bars bars per
key asked (seed --seed, T 0.9, top-p 0.95, the card's settings) and, per mode (major, minor):

- key found: pieces whose Krumhansl-Kessler key (the adherence line's measure, `harmony.detect_key`,
  which also labels the training data) is the one asked;
- key found by Kostka-Payne: the same with Temperley's Kostka-Payne profiles, a second judge, since
  the lean itself uses the Krumhansl-Kessler profile;
- on the scale: the share of note time on the asked key's scale (natural minor for minor keys);

and over all pieces of that row, the real-vs-generated classifier test (`stats.two_sample`)
against the Nottingham validation tunes cut to --bars bars: what leaning costs in how real the
music looks. The validation tunes' own figures (each against its whole-tune key) are the last
row: a model that wrote real tunes would score those.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))


def parse_args() -> argparse.Namespace:
    """The command line (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a multitrack checkpoint with the key control, or a bundled name")
    parser.add_argument("--strengths", type=float, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--keys", nargs="+", default=["G", "D", "Em", "Am"])
    parser.add_argument("--samples", type=int, default=16, help="pieces per key and strength")
    parser.add_argument("--bars", type=int, default=8)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--cadence", nargs="+", choices=["on", "off"], default=["on", "off"])
    parser.add_argument("--form", default=None, help="a form plan for every piece (`sample --form`), e.g. AABA")
    return parser.parse_args()


def judged(weights: np.ndarray, key: int) -> tuple[int, int, float]:
    """(found by K-K, found by Kostka-Payne, share on the scale) of one piece against `key`."""
    from melodygen import harmony

    return (int(harmony.detect_key(weights) == key), int(harmony.detect_key(weights, "kostka-payne") == key),
            harmony.key_fit(weights, key))


def row_of(results: list[tuple[bool, tuple]]) -> dict:
    """Per mode: pieces, found (K-K), found (Kostka-Payne), mean share on the scale."""
    row = {}
    for minor, label in ((False, "major"), (True, "minor")):
        mine = np.array([r for m, r in results if m == minor], dtype=np.float64).reshape(-1, 3)
        scale = float(mine[:, 2].mean()) if len(mine) else 0.0
        row[label] = (len(mine), int(mine[:, 0].sum()), int(mine[:, 1].sum()), scale)
    return row


def main() -> None:
    """Sample at each strength, judge the keys, print the table."""
    args = parse_args()
    torch.set_num_threads(1)
    from form_table import cut, validation_tunes

    import melodygen
    from melodygen import harmony, stats
    from melodygen.encodings import get_encoding
    from melodygen.midi_io import read_score, write_score
    from melodygen.stats.controls import pitch_class_time

    model = melodygen.load(args.model)
    keys = [harmony.parse_key(k) for k in args.keys]
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        labeller = get_encoding("multitrack", controls=["key"])
        real: list = []
        (work / "reference").mkdir()
        for path in validation_tunes():
            score = read_score(path)
            key = labeller.controls_of(score).key
            opening = cut(score, args.bars)
            write_score(opening, work / "reference" / path.name)
            if key >= 0:
                real.append((harmony.is_minor(key), judged(pitch_class_time(opening), key)))
        reference = stats.describe_set(sorted((work / "reference").glob("*.mid")))
        for cadence, strength in ((c, s) for c in args.cadence for s in args.strengths):
            label = f"{strength:g}, cadence {cadence}"
            out, results = work / label.replace(", ", "-").replace(" ", ""), []
            out.mkdir()
            for name, key in zip(args.keys, keys):
                pieces = model.generate(n=args.samples, bars=args.bars, key=name, key_strength=strength,
                                        cadence=cadence == "on", seed=args.seed, temperature=0.9, top_p=0.95,
                                        form=args.form)
                for i, piece in enumerate(pieces):
                    piece.save(out / f"{name}_{i:03d}.mid")
                    results.append((harmony.is_minor(key), judged(pitch_class_time(piece.score), key)))
            described = stats.describe_set(sorted(out.glob("*.mid")))
            rows[label] = {**row_of(results),
                           "accuracy": stats.compare_sets(described, reference)["two_sample"]["accuracy"]}
            print(f"strength {label} done", file=sys.stderr, flush=True)
        rows["validation tunes"] = {**row_of(real), "accuracy": None}
    print(f"{args.model}: {args.samples} pieces of {args.bars} bars per key ({', '.join(args.keys)}), "
          f"{f'form {args.form}, ' if args.form else ''}seed {args.seed}, T 0.9, top-p 0.95; real-vs-generated against {reference['count']} validation tunes "
          f"cut to {args.bars} bars")
    print("| --key-strength | major: K-K found | Kostka-Payne | on the scale | minor: K-K found | Kostka-Payne "
          "| on the scale | real-vs-generated |")
    print("|---|" + "---:|" * 7)
    for label, row in rows.items():
        cells = []
        for mode in ("major", "minor"):
            n, kk, kp, scale = row[mode]
            cells += [f"{kk}/{n}", f"{kp}/{n}", f"{scale:.0%}"]
        accuracy = "" if row["accuracy"] is None else f"{row['accuracy']:.1%}"
        print(f"| {label} | " + " | ".join(cells) + f" | {accuracy} |")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
