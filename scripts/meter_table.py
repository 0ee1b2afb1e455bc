"""Which meters a multitrack model opens a piece in, exactly, against its training tunes.

A multitrack model states a piece's meter once, in its first bar's head (`BAR TIMESIG(6/8)`), so
the share of pieces from nothing in each meter is the model's probability of that TIMESIG id
after its usual header and the first bar line, reshaped by the temperature and cut by top-p as
sampling does (`sampling.decoding.filter_logits`): no sampling needed. Beside it, the share of
the training tunes in each meter (their first time signature). `sample --meter 3/4` asks for one.

    .venv/bin/python scripts/meter_table.py folk-band --data data/nottingham
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import torch


def parse_args() -> argparse.Namespace:
    """The model, the tunes and the sampling settings."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a multitrack checkpoint or bundled model name")
    parser.add_argument("--data", type=Path, required=True, help="folder of the MIDI files it trained on")
    parser.add_argument("--temperature", type=float, nargs="+", default=[1.0, 0.9])
    parser.add_argument("--top-p", type=float, default=0.95)
    return parser.parse_args()


def opening_meters(model, temperature: float, top_p: float) -> dict[str, float]:
    """The chance a piece from nothing opens in each meter, as `sample` draws its first ids:
    after the usual header and a bar line, through the grammar (controls not asked are banned),
    the temperature and top-p."""
    from melodygen.encodings.vocab import BOS_ID, EOS_ID
    from melodygen.sampling.decoding import filter_logits

    encoding, v = model.encoding, model.encoding.vocab
    header = list((model.checkpoint.get("data_profile") or {}).get("header") or [0])
    prefix = [*(v.id_of("PROGRAM", p) for p in header), v.id_of("BAR")]
    grammar = encoding.grammar([], 1, instruments=header)
    with torch.inference_mode():
        logits = model.model(torch.tensor([[BOS_ID, *prefix]]))[0, -1:].float().clone()
    last = None
    for i in prefix:  # the grammar takes the prefix in, id by id, as the sampler feeds it
        grammar(torch.zeros(1, v.size), last)
        last = torch.tensor([i])
    logits = grammar(logits, last)
    logits[:, :EOS_ID + 1] = -torch.inf  # the sampler never draws PAD or BOS; a piece runs to its length
    probs = torch.softmax(filter_logits(logits, temperature, None, top_p), -1)[0]
    first = v.offset("TIMESIG")
    return {label: float(probs[first + i]) for i, label in enumerate(v.range("TIMESIG").labels) if probs[first + i] > 0}


def tune_meters(folder: Path) -> Counter:
    """The first time signature of each MIDI file under `folder` (4/4 where none is written)."""
    from melodygen.midi_io import read_score

    found = Counter()
    for path in sorted(folder.rglob("*.mid")):
        signatures = sorted(read_score(path).time_signatures)
        found["{1}/{2}".format(*signatures[0]) if signatures else "4/4"] += 1
    return found


def main() -> None:
    """The table: meters, the tunes' share, the model's at each temperature."""
    import melodygen

    args = parse_args()
    model = melodygen.load(args.checkpoint, device="cpu")
    tunes = tune_meters(args.data)
    shares = {t: opening_meters(model, t, args.top_p) for t in args.temperature}
    meters = sorted(set(tunes) | {m for s in shares.values() for m in s}, key=lambda m: -tunes.get(m, 0))
    total = sum(tunes.values())
    print(f"{args.checkpoint}: the meter a piece from nothing opens in (top-p {args.top_p}), "
          f"against {total} files in {args.data}\n")
    print("| meter | tunes | " + " | ".join(f"T {t:g}" for t in args.temperature) + " |")
    print("|---|---:|" + "---:|" * len(args.temperature))
    for meter in meters:
        cells = " | ".join(f"{shares[t].get(meter, 0.0):.1%}" for t in args.temperature)
        print(f"| {meter} | {tunes.get(meter, 0) / total:.1%} | {cells} |")


if __name__ == "__main__":
    main()
