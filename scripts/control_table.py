"""Are controls obeyed? Requested vs achieved for a grid of requests, next to chance and real music.

    .venv/bin/python scripts/control_table.py                      # the bundled folk-band
    .venv/bin/python scripts/control_table.py --model runs/multitrack_nottingham/best.pt -n 16

For each request (notes per bar alone, chord progressions alone, keys alone, all three), `-n`
pieces of `--bars` bars are sampled from nothing and measured the way the training data was
labelled (`melodygen.stats.controls`):
- density: bars whose note count is within 15% of the request (goal: >= 90%);
- chord: bars whose measured chord is the requested one; melody notes on the requested chord's
  tones (goal: >= 90% where the training data has that property: the `real` row says whether it
  does);
- key: pieces whose measured key is the requested one; share of note time on its scale.

Two rows measure what the figures would be without obeying: `unsteered` (the same model, no
controls, measured against the same requests: agreement by chance) and `real` (the model's
held-out validation pieces against their own labels: what the data has). What obeying costs:
the NLL of the pieces' ids without their control tokens under the same model (nats/event, as it
scores music with every control dropped; lower is more natural to it), next to the same figure
for the unsteered pieces and the real ones.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DENSITIES = (4, 7, 10, 13)
PROGRESSIONS = ("D G A7 D", "G C D7 G", "Am Dm E7 Am", "Em C D B7", "F Bb C7 F")
KEYS = ("D", "G", "A", "Em", "F", "Bb")
TOGETHER = {"key": "D", "chords": "D G A7 D", "density": 10}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="folk-band", help="a bundled model name or a checkpoint")
    parser.add_argument("-n", type=int, default=16, help="pieces per request")
    parser.add_argument("--bars", type=int, default=8)
    parser.add_argument("--temperature", type=float, default=0.9)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="also write every figure here")
    return parser.parse_args()


def pooled(results: list) -> dict:
    """Summary figures over pieces, weighted by bars (densities, chords) or pieces (key)."""
    from melodygen.stats.controls import density_within

    bars = [r for a in results for r in a.bars]
    within = [density_within(r["achieved_density"], r["density"]) for r in bars if r["density"]]
    chords = [r["chord"] == r["achieved_chord"] for r in bars if r["chord"]]
    keys = [a.key for a in results if a.key is not None]
    tone_rates = [(a.summary["chord_tone_rate"], sum(1 for r in a.bars if r["chord_tone_rate"] is not None))
                  for a in results if a.summary.get("chord_tone_rate") is not None]
    return {
        "bars": len(bars),
        "density_within": float(np.mean(within)) if within else None,
        "density_error": (float(np.mean([abs(r["achieved_density"] - r["density"]) / r["density"] for r in bars
                                         if r["density"]])) if within else None),
        "chord_match": float(np.mean(chords)) if chords else None,
        "chord_tone_rate": (float(np.average([t for t, _ in tone_rates], weights=[w or 1 for _, w in tone_rates]))
                            if tone_rates else None),
        "key_match": float(np.mean([k["key"] == k["achieved_key"] for k in keys])) if keys else None,
        "key_scale_share": float(np.mean([k["scale_share"] for k in keys])) if keys else None,
    }


def requests() -> list[tuple[str, dict]]:
    return ([(f"density {d}", {"density": d}) for d in DENSITIES]
            + [(f"density {d}, strict", {"density": d, "strict_density": True}) for d in DENSITIES]
            + [(f"chords {p}", {"chords": p}) for p in PROGRESSIONS]
            + [(f"key {k}", {"key": k}) for k in KEYS]
            + [("key D + chords D G A7 D + density 10", TOGETHER)])


def notes_nll(model, rows: list) -> float:
    """Mean NLL (nats/event) of `rows` (ids) with their control tokens taken out, under `model`."""
    from melodygen.encodings.vocab import BOS_ID, EOS_ID
    from melodygen.metrics import score_ids

    controls = np.concatenate([*model.encoding.control_ids().values(), [-1]])
    stream = np.concatenate([np.concatenate([[BOS_ID], np.asarray(r)[~np.isin(r, controls)], [EOS_ID]]) for r in rows])
    return float(score_ids(model.model, stream.astype(np.int64), seq_len=512, device=model.device)["nll"])


def real_rows(model) -> dict:
    """The held-out pieces against their own labels (chord-tone rate, key scale share)."""
    from melodygen import harmony
    from melodygen.config import config_from_dict
    from melodygen.dataset.manifest import read_manifest
    from melodygen.encodings.controls import ControlRequest
    from melodygen.midi_io import read_score
    from melodygen.stats.controls import piece_adherence
    from melodygen.dataset.runs import run_dataset_dir

    config = config_from_dict(model.checkpoint["run_config"], model.source)
    directory = run_dataset_dir(config, model.encoding)
    valid = [p["path"] for p in read_manifest(directory)["pieces"] if p["split"] == "valid"]
    results, ids = [], []
    for path in valid:
        score = read_score(path)
        own = model.encoding.controls_of(score)
        chords = [harmony.chord_name(c) for c in own.chords if c >= 0]
        if not chords or own.key < 0:
            continue
        request = ControlRequest.parse(harmony.key_name(own.key), chords, [max(1, int(d)) for d in own.density])
        # the labels as a per-bar request: bars without a chord are left out of the chord figures
        results.append(piece_adherence(model.encoding, score, request))
        ids.append(model.encoding.encode(score).astype(np.int64))
    return {"pieces": len(results), **pooled(results), "nll": notes_nll(model, ids)}


def main() -> None:
    args = parse_args()
    import melodygen
    from melodygen.encodings.controls import ControlRequest
    from melodygen.stats.controls import piece_adherence

    model = melodygen.load(args.model)
    options = dict(n=args.n, bars=args.bars, temperature=args.temperature, top_p=args.top_p, seed=args.seed)
    rows, started = [], time.perf_counter()
    free = model.generate(**options)  # the unsteered pieces, measured against every request below
    free_nll = notes_nll(model, [p.ids for p in free])
    for name, request in requests():
        steered = model.generate(**options, **request)
        wanted = ControlRequest.parse(request.get("key"), request.get("chords"),
                                      [request["density"]] if "density" in request else None)
        chance = [piece_adherence(model.encoding, p.score, wanted, 0, args.bars) for p in free]
        rows.append({"request": name, "steered": {**pooled([p.adherence for p in steered]),
                                                  "nll": notes_nll(model, [p.ids for p in steered])},
                     "unsteered": {**pooled(chance), "nll": free_nll}})
        print(f"  {name}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    real = real_rows(model)
    print_table(rows, real, args)
    if args.json:
        args.json.write_text(json.dumps({"model": args.model, "options": options, "rows": rows, "real": real}, indent=1))


def cell(value, percent=True) -> str:
    if value is None:
        return ""
    return f"{value:.0%}" if percent else f"{value:.2f}"


def print_table(rows: list[dict], real: dict, args) -> None:
    print(f"\n{args.model}: {args.n} pieces x {args.bars} bars per request, temperature {args.temperature}, "
          f"top-p {args.top_p}, seed {args.seed}; steered / unsteered (chance)\n")
    print("| request | notes per bar within 15% | mean count error | chord as asked | melody on chord tones "
          "| key as asked | note time on its scale | NLL without controls |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        s, u = row["steered"], row["unsteered"]
        pair = lambda k, p=True: (f"**{cell(s[k], p)}** / {cell(u[k], p)}" if s[k] is not None else "")  # noqa: E731
        print(f"| {row['request']} | {pair('density_within')} | {pair('density_error', False)} | "
              f"{pair('chord_match')} | {pair('chord_tone_rate')} | {pair('key_match')} | {pair('key_scale_share')} | "
              f"{pair('nll', False)} |")
    print(f"| real: {real['pieces']} held-out pieces vs their own labels | | | {cell(real['chord_match'])} | "
          f"{cell(real['chord_tone_rate'])} | {cell(real['key_match'])} | {cell(real['key_scale_share'])} | "
          f"{cell(real['nll'], False)} |")


if __name__ == "__main__":
    main()
