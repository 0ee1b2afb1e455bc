"""Infilling figures: a masked model (both sides) against a left-to-right model (constrained
decoding), on the same gaps of held-out chorales, in one run.

For each of `--pieces` validation chorales (the split `prepare` makes of data/bach-chorales, by
content hash) with at least `--bars` + 4 bars, the gap is `--bars` bars starting at its bar 3
(two bars before it, at least two after), and:

1. **The gap's notes' NLL.** Each model scores the true music of the gap, in nats per note
   (the gap's summed NLL over the notes that start in it, so that two encodings compare):
   - the masked model (voices grid): every cell of the gap erased, then the cells revealed one at
     a time in time order, each scored before it is revealed (the chain rule: an exact NLL of
     the gap given everything outside it, the bars after included);
   - the left-to-right model (multitrack): the gap's ids given the bars before it, as
     `--infill` writes them (it cannot see the bars after).
2. **How the gap joins the bar after it.** `sample --infill` writes the gap (seed 1, T=1.0,
   top-p 0.95); per voice, the interval in semitones from its last note starting in the gap to
   its first note after it, mean over voices and pieces, next to the same in the real pieces;
   and the share of those intervals larger than a fifth (7 semitones), real about 2%.
3. **Seconds per gap** (batch 1, this machine, one thread).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/infill_table.py runs/masked_bach/best.pt chorale --pieces 20
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent


def parse_args() -> argparse.Namespace:
    """The command line (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("masked", help="a masked model's checkpoint (voices encoding)")
    parser.add_argument("left_to_right", help="a multitrack checkpoint or bundled name (e.g. chorale)")
    parser.add_argument("--pieces", type=int, default=20)
    parser.add_argument("--bars", type=int, default=2, help="bars in each gap")
    parser.add_argument("--json", type=Path, default=None)
    return parser.parse_args()


def held_out_chorales() -> list[Path]:
    """The validation chorales of data/bach-chorales (the split `prepare` makes, val_fraction 0.1)."""
    from melodygen.dataset.manifest import split_of
    from melodygen.dataset.sources import content_hash

    folder = REPO / "data" / "bach-chorales"
    return [p for p in sorted(folder.glob("*.mid")) if split_of(content_hash(p), 0.1) == "valid"]


def bar_spans(score, bars_wanted: int) -> list[tuple[float, float]]:
    """(start, end) beats of the score's bars, as the grid encodings lay them out."""
    from melodygen.meter import score_bars

    return [(b.start / 12, (b.start + b.length) / 12) for b in score_bars(score, 12)][:bars_wanted]


def masked_gap_nll(model, encoding, ids: np.ndarray, first: int, last: int) -> float:
    """Summed NLL of the gap's cells given everything outside, revealed in time order."""
    bar = np.cumsum(ids == encoding.vocab.id_of("BAR"))
    cells = np.flatnonzero((encoding.voice_of(ids) >= 0) & (bar >= first) & (bar <= last))
    lo = max(0, min(int(cells[0]) - model.max_context // 3, len(ids) - model.max_context))
    window = torch.as_tensor(ids[lo:lo + model.max_context], dtype=torch.long)[None].clone()
    truth = window[0, cells - lo].clone()
    window[0, cells - lo] = torch.as_tensor(encoding.blank_of(ids[cells]))
    total = 0.0
    with torch.inference_mode():
        for k, at in enumerate((cells - lo).tolist()):
            logits = model(window)[0, at].float()
            total -= float(torch.log_softmax(logits, -1)[truth[k]])
            window[0, at] = truth[k]
    return total


def left_gap_nll(model, encoding, score, first: int, last: int) -> float:
    """Summed NLL of the gap's ids (multitrack, as infilling streams it) given the bars before."""
    from melodygen.encodings.vocab import BOS_ID

    ids = [BOS_ID, *encoding.encode_with(score, track_at_every_position=True, controls=False).tolist()]
    bar = np.cumsum(np.asarray(ids) == encoding.vocab.id_of("BAR"))
    inside = np.flatnonzero((bar >= first) & (bar <= last))
    end = int(inside[-1]) + 1
    start = max(0, end - model.max_context)
    window = torch.as_tensor(ids[start:end], dtype=torch.long)[None]
    with torch.inference_mode():
        logp = torch.log_softmax(model(window[:, :-1]).float(), -1)[0]
    return -sum(float(logp[i - start - 1, ids[i]]) for i in inside.tolist() if i > start)


def joins(score, gap: tuple[float, float]) -> list[int]:
    """Per voice (first four tracks with notes): |last pitch starting in the gap - first pitch after it|."""
    tempo = score.tempo_map
    out = []
    for track in [t for t in score.tracks if t.notes][:4]:
        inside = [n for n in track.notes if gap[0] <= tempo.to_beats(n.start) < gap[1]]
        after = [n for n in track.notes if tempo.to_beats(n.start) >= gap[1]]
        if inside and after:
            out.append(abs(max(inside, key=lambda n: n.start).pitch - min(after, key=lambda n: n.start).pitch))
    return out


def notes_in_gap(score, gap: tuple[float, float]) -> int:
    tempo = score.tempo_map
    return sum(gap[0] <= tempo.to_beats(n.start) < gap[1] for t in score.tracks for n in t.notes)


def main() -> None:
    """Print the table (module docstring)."""
    import melodygen
    from melodygen.midi_io import read_score

    args = parse_args()
    masked, left = melodygen.load(args.masked, device="cpu"), melodygen.load(args.left_to_right, device="cpu")
    first, last = 3, 2 + args.bars
    rows = {"masked": {"nll": 0.0, "notes": 0, "joins": [], "seconds": 0.0},
            "left": {"nll": 0.0, "notes": 0, "joins": [], "seconds": 0.0}, "real": {"joins": []}}
    used = 0
    for path in held_out_chorales():
        if used == args.pieces:
            break
        score = read_score(path)
        spans = bar_spans(score, last + 3)
        if len(spans) < last + 3 or len([t for t in score.tracks if t.notes]) != 4:
            continue
        used += 1
        gap = (spans[first - 1][0], spans[last - 1][1])
        notes = notes_in_gap(score, gap)
        ids = masked.encoding.encode(score).astype(np.int64)
        rows["masked"]["nll"] += masked_gap_nll(masked.model, masked.encoding, ids, first, last)
        rows["left"]["nll"] += left_gap_nll(left.model, left.encoding, score, first, last)
        for key in ("masked", "left"):
            rows[key]["notes"] += notes
        rows["real"]["joins"] += joins(score, gap)
        for key, model in (("masked", masked), ("left", left)):
            started = time.perf_counter()
            (piece,) = model.generate(n=1, primer=path, infill=(first, last), seed=1, temperature=1.0, top_p=0.95)
            rows[key]["seconds"] += time.perf_counter() - started
            rows[key]["joins"] += joins(piece.score, gap)
    print(f"{used} held-out four-voice chorales, gap = bars {first}-{last}")
    print("| figure | masked (both sides) | left to right (before only) | real |\n|---|---:|---:|---:|")
    nll = {k: rows[k]["nll"] / max(rows[k]["notes"], 1) for k in ("masked", "left")}
    print(f"| gap notes' NLL, nats per note | {nll['masked']:.3f} | {nll['left']:.3f} | |")
    mean = {k: float(np.mean(rows[k]["joins"])) for k in rows}
    wide = {k: float(np.mean(np.asarray(rows[k]["joins"]) > 7)) for k in rows}
    print(f"| interval into the next bar, semitones (mean) | {mean['masked']:.2f} | {mean['left']:.2f} | "
          f"{mean['real']:.2f} |")
    print(f"| ... wider than a fifth | {wide['masked']:.1%} | {wide['left']:.1%} | {wide['real']:.1%} |")
    print(f"| seconds per gap | {rows['masked']['seconds'] / used:.2f} | {rows['left']['seconds'] / used:.2f} | |")
    if args.json:
        args.json.write_text(json.dumps({"pieces": used, "nll_per_note": nll, "join_mean": mean, "join_wide": wide,
                                         "seconds": {k: rows[k]["seconds"] / used for k in ("masked", "left")}}))


if __name__ == "__main__":
    main()
