"""The texture figures of the bundled models (issue "bundled models that sound finished"), each
next to the same figure of its corpus's validation pieces.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/texture_table.py
    OMP_NUM_THREADS=1 .venv/bin/python scripts/texture_table.py --models chorale --samples 48 --seed 2

Samples are drawn at each model card's settings (index.json "sampling", its bars included), one
thread, seed --seed. The reference is the validation split `prepare` makes of the corpus the
model learned (val_fraction 0.1, by content hash): data/bach-chorales, data/pop909,
data/nottingham. Per model:

- chorale: pieces with exactly four voices and with at least four (voices: non-drum tracks with
  notes), each sample's voice count, and the voice crossing rate: voices in track order (soprano
  first, as in the data); at every distinct onset each voice's sounding pitch (the highest note
  with start <= t < end); a crossing is an adjacent pair, both sounding, whose upper voice is
  below the lower; rate = crossings / pairs compared. Also over the four-voice pieces only (4 of
  the 38 validation chorales add horns, trumpets, timpani or a continuo to the four voices);
- pop-piano: notes per beat (non-drum notes / quarter notes from 0 to the last note's end) per
  sample and their mean, and the samples' length; against the validation songs whole, and cut to the card's bars
  of 4 quarters (most POP909 files say 1/4 throughout, a meter the model learned: its "8 bars"
  may be 8 quarters), from the bar of their first note; the ratio samples / songs; the empty
  samples (no notes);
- folk-band: pieces with a chord track (a second non-drum track with notes), sampled with
  chords "G C D7 G" and free.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))
from make_pretrained import machine  # noqa: E402

from melodygen.dataset.manifest import split_of  # noqa: E402
from melodygen.dataset.sources import content_hash  # noqa: E402
from melodygen.midi_io import read_score  # noqa: E402
from melodygen.notes import Score  # noqa: E402
from melodygen.pretrained import INDEX  # noqa: E402

CORPORA = {"chorale": "bach-chorales", "pop-piano": "pop909", "folk-band": "nottingham"}
CHORDS = "G C D7 G"
BAR = 4  # quarters in a bar of a POP909 song (most files say 1/4 throughout)


def parse_args() -> argparse.Namespace:
    """The command line (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(CORPORA), choices=list(CORPORA))
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


def card_sampling(name: str) -> dict:
    """The sampling options of the model card of bundled model `name`."""
    entries = json.loads(INDEX.read_text(encoding="utf-8"))["models"]
    return next(e["sampling"] for e in entries if e["name"] == name)


def validation_scores(corpus: str) -> list[Score]:
    """The corpus's validation pieces as `prepare` splits them (val_fraction 0.1), duplicates once."""
    seen, scores = set(), []
    for path in sorted((REPO / "data" / corpus).glob("*.mid")):
        digest = content_hash(path)
        if digest not in seen and split_of(digest, 0.1) == "valid":
            seen.add(digest)
            scores.append(read_score(path, include_drums=True))
    return scores


def voices(score: Score) -> list:
    """The non-drum tracks with notes, in track order."""
    return [t for t in score.tracks if not t.is_drum and t.notes]


def crossings(score: Score) -> tuple[int, int]:
    """(crossings, adjacent pairs compared) over the distinct onsets of `score` (module docstring)."""
    parts = voices(score)
    onsets = np.unique([n.start for t in parts for n in t.notes])
    sounding = []
    for track in parts:
        start, end, pitch = (np.array([getattr(n, k) for n in track.notes]) for k in ("start", "end", "pitch"))
        on = (start[:, None] <= onsets[None, :] + 1e-6) & (end[:, None] > onsets[None, :] + 1e-6)
        sounding.append(np.where(on, pitch[:, None], -1).max(axis=0))
    crossed = compared = 0
    for upper, lower in zip(sounding, sounding[1:]):
        both = (upper >= 0) & (lower >= 0)
        crossed += int((upper[both] < lower[both]).sum())
        compared += int(both.sum())
    return crossed, compared


def crossing_rate(scores: list[Score]) -> float:
    """Crossings / pairs compared, pooled over `scores`."""
    counts = np.array([crossings(s) for s in scores] or [(0, 0)])
    return counts[:, 0].sum() / max(counts[:, 1].sum(), 1)


def notes_per_beat(score: Score) -> float:
    """Non-drum notes per quarter note from 0 to the last note's end (0 for an empty score)."""
    notes = [n for t in voices(score) for n in t.notes]
    length = score.tempo_map.to_beats(max((n.end for n in notes), default=0.0))
    return len(notes) / length if length > 0 else 0.0


def cut_notes_per_beat(score: Score, bars: int) -> tuple[float, float] | None:
    """(notes per beat, quarters) of `bars` bars of BAR quarters from the bar of the first note:
    the notes starting in them over the quarters from that bar to the last such note's end (cut
    at the last bar's end). None for a score without notes."""
    notes = [n for t in voices(score) for n in t.notes]
    if not notes:
        return None
    onsets = score.tempo_map.beats_of([n.start for n in notes])
    ends = score.tempo_map.beats_of([n.end for n in notes])
    start = np.floor(onsets.min() / BAR + 1e-6) * BAR
    inside = onsets < start + bars * BAR - 1e-6
    length = min(ends[inside].max(), start + bars * BAR) - start
    return inside.sum() / length, length


def counted(flags) -> str:
    """'k of n' for a sequence of booleans."""
    flags = list(flags)
    return f"{sum(flags)} of {len(flags)}"


def chorale(pieces: list, real: list[Score]) -> list[tuple]:
    """The chorale rows: voice counts and crossing rates, samples and validation pieces."""
    scores = [p.score for p in pieces]
    rows = [(f"{label} four voices", counted(test(len(voices(s))) for s in scores),
             counted(test(len(voices(s))) for s in real))
            for label, test in (("exactly", lambda v: v == 4), ("at least", lambda v: v >= 4))]
    rows.append(("voice crossing rate", f"{crossing_rate(scores):.4f}", f"{crossing_rate(real):.4f}"))
    four = [[s for s in group if len(voices(s)) == 4] for group in (scores, real)]
    rows.append(("voice crossing rate, four-voice pieces", *(f"{crossing_rate(g):.4f}" for g in four)))
    rows.append(("voices per sample", " ".join(str(len(voices(s))) for s in scores), ""))
    return rows


def pop_piano(pieces: list, real: list[Score], bars: int) -> list[tuple]:
    """The pop-piano rows: notes per beat of samples and cut songs, their ratio, lengths, empty samples."""
    dense = [notes_per_beat(p.score) for p in pieces]
    length = [p.score.tempo_map.to_beats(p.seconds) for p in pieces]
    cut = np.array([c for c in (cut_notes_per_beat(s, bars) for s in real) if c is not None])
    whole = np.array([notes_per_beat(s) for s in real if s.note_count()])
    return [("notes per beat (mean)", f"{np.mean(dense):.3f}", f"{cut[:, 0].mean():.3f} ({len(cut)} songs' openings)"),
            ("ratio samples / songs' openings", f"{np.mean(dense) / cut[:, 0].mean():.3f}", ""),
            ("notes per beat, whole songs", "", f"{whole.mean():.3f} ({len(whole)} songs)"),
            ("ratio samples / whole songs", f"{np.mean(dense) / whole.mean():.3f}", ""),
            ("length in quarters (mean)", f"{np.mean(length):.1f}", f"{cut[:, 1].mean():.1f} ({bars} bars of {BAR})"),
            ("empty samples", counted(not p.score.note_count() for p in pieces), ""),
            ("notes per beat per sample", " ".join(f"{d:.2f}" for d in dense), "")]


def folk_band(model, pieces: list, real: list[Score], args, sampling: dict) -> list[tuple]:
    """The folk-band rows: pieces with a chord track, steered by CHORDS and free."""
    steered = model.generate(n=args.samples, seed=args.seed, chords=CHORDS, **sampling)
    reference = counted(len(voices(s)) >= 2 for s in real)
    return [(f"with a chord track, chords '{CHORDS}'", counted(len(voices(p.score)) >= 2 for p in steered), reference),
            ("with a chord track, free", counted(len(voices(p.score)) >= 2 for p in pieces), reference)]


def table(name: str, args) -> None:
    """Samples model `name` at its card's settings and prints its table."""
    import melodygen

    sampling = card_sampling(name)
    model = melodygen.load(name, device="cpu")
    started = time.perf_counter()
    pieces = model.generate(n=args.samples, seed=args.seed, **sampling)
    seconds = time.perf_counter() - started
    real = validation_scores(CORPORA[name])
    if name == "chorale":
        rows = chorale(pieces, real)
    elif name == "pop-piano":
        rows = pop_piano(pieces, real, int(sampling["bars"]))
    else:
        rows = folk_band(model, pieces, real, args, sampling)
    settings = ", ".join(f"{k}={v}" for k, v in sampling.items())
    print(f"\n### {name}: {args.samples} samples ({settings}, seed {args.seed}; {seconds:.1f} s) "
          f"against {len(real)} validation pieces of data/{CORPORA[name]}\n")
    print("| figure | samples | validation pieces |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main() -> None:
    """Prints the command, the machine and one table per model."""
    args = parse_args()
    torch.set_num_threads(1)
    print("command: " + " ".join(["python", "scripts/texture_table.py", *sys.argv[1:]]))
    print(f"machine: {machine()}")
    for name in args.models:
        table(name, args)


if __name__ == "__main__":
    main()
