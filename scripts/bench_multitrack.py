"""Benchmark: what the multitrack encoding keeps of real arrangements, and how long its streams
are, next to MidiTok's REMI (one sequence per track) and REMI+ (programs, one stream), on the
same files in the same run.

Per corpus and tool, every file is encoded and decoded back, and its notes are compared with
the file's own notes as melodygen reads them (all tracks, drums included), in quarter notes:

- exact notes: share of the file's notes found again with the same pitch, onset and duration
  (to 1/100 of a quarter note, finer than any grid here, so a triplet written as 341/1024 of a
  beat still counts as on the grid), on any track;
- on its own track: the same, but the note must come back on the track it came from (track i
  of the file = track i decoded);
- onset error: mean distance (quarter notes) from each note's onset to the nearest decoded
  onset of the same pitch on any track: the timing a grid costs performed music (POP909);
- tokens per note: ids (melodygen, without BOS/EOS) or tokens (MidiTok, all sequences) per note.

MidiTok runs in its own environment through a subprocess (see scripts/bench_prepare.py):

    python -m venv bench_env && bench_env/bin/pip install miditok==3.1.0
    .venv/bin/python scripts/bench_multitrack.py
    .venv/bin/python scripts/bench_multitrack.py --corpus pop909 --data-root ../shared/data --limit 200
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from bench_prepare import run_in_miditok

REPO = Path(__file__).resolve().parent.parent

MIDITOK_SNIPPET = r"""
import json, sys
from pathlib import Path
from miditok import REMI, TokenizerConfig

job = json.loads(sys.stdin.read())
tokenizer = REMI(TokenizerConfig(use_programs=job["programs"]))
out = []
for path in job["paths"]:
    try:
        seqs = tokenizer(Path(path))
        seqs = seqs if isinstance(seqs, list) else [seqs]
        tokens = sum(len(s.ids) for s in seqs)  # before decode, which may change the sequences
        score = tokenizer.decode(seqs if len(seqs) > 1 or not job["programs"] else seqs[0])
        tpq = score.ticks_per_quarter
        tracks = [[(n.pitch, n.time / tpq, n.duration / tpq) for n in t.notes] for t in score.tracks]
        out.append({"tokens": tokens, "tracks": tracks})
    except Exception as exc:
        out.append({"error": f"{type(exc).__name__}: {exc}"})
print(json.dumps(out))
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", nargs="+", default=["nottingham", "bach-chorales", "pop909"])
    parser.add_argument("--data-root", type=Path, default=REPO / "data", help="default: the bundled corpora")
    parser.add_argument("--limit", type=int, default=None, help="only the first N files of each corpus")
    parser.add_argument("--miditok-python", default=str(REPO / "bench_env" / "bin" / "python"))
    return parser.parse_args()


def file_notes(score) -> list[list[tuple[int, float, float]]]:
    """Per track: (pitch, onset, duration) in quarter notes."""
    tm = score.tempo_map
    return [[(n.pitch, tm.to_beats(n.start), tm.to_beats(n.end) - tm.to_beats(n.start)) for n in t.notes]
            for t in score.tracks]


def compare(original: list[list[tuple]], decoded: list[list[tuple]]) -> dict[str, float]:
    """Counts for one file: notes, exact on any track, exact on own track, summed onset error."""
    def key(note):
        return note[0], round(note[1], 2), round(note[2], 2)

    anywhere = Counter(key(n) for track in decoded for n in track)
    exact = own = 0
    for i, track in enumerate(original):
        here = Counter(key(n) for n in decoded[i]) if i < len(decoded) else Counter()
        for note in track:
            k = key(note)
            if anywhere[k] > 0:
                anywhere[k] -= 1
                exact += 1
            if here[k] > 0:
                here[k] -= 1
                own += 1
    onsets: dict[int, np.ndarray] = {}
    for track in decoded:
        for pitch, onset, _ in track:
            onsets.setdefault(pitch, []).append(onset)
    onsets = {p: np.sort(v) for p, v in onsets.items()}
    error, missing = 0.0, 0
    for track in original:
        for pitch, onset, _ in track:
            found = onsets.get(pitch)
            if found is None:
                missing += 1
                continue
            j = np.searchsorted(found, onset)
            error += min(abs(found[k] - onset) for k in (j - 1, j) if 0 <= k < len(found))
    return {"notes": sum(map(len, original)), "exact": exact, "own": own, "error": error, "missing": missing}


def bench_corpus(name: str, args: argparse.Namespace) -> None:
    from melodygen.dataset.sources import find_midi_files
    from melodygen.encodings import get_encoding
    from melodygen.midi_io import read_score

    encoding = get_encoding("multitrack")
    paths = [str(p) for p in find_midi_files([args.data_root / name])[:args.limit]]
    originals, ours, skipped = {}, {}, Counter()
    for path in paths:
        score = read_score(path, include_drums=True)
        try:
            ids = encoding.encode(score)
        except Exception as exc:  # noqa: BLE001 - a benchmark reports, it does not stop
            skipped[str(exc)[:60]] += 1
            continue
        originals[path] = file_notes(score)
        ours[path] = {"tokens": len(ids), "tracks": file_notes(encoding.decode_score(ids))}
    used = list(originals)
    print(f"\n{name}: {len(paths)} files, {len(used)} encoded by melodygen"
          + (f" (skipped: {dict(skipped)})" if skipped else ""))
    tools = {"melodygen multitrack": ours}
    for label, programs in (("MidiTok REMI (per track)", False), ("MidiTok REMI+ (programs)", True)):
        runs = run_in_miditok(args.miditok_python, MIDITOK_SNIPPET, {"paths": used, "programs": programs})
        if isinstance(runs, str):
            print(f"  {label}: {runs}")
            continue
        tools[label] = {p: r for p, r in zip(used, runs) if "error" not in r}
    print(f"  {'':<26} {'files':>6} {'exact notes':>12} {'own track':>10} {'onset err':>10} {'tokens/note':>12}")
    for label, results in tools.items():
        if not results:
            print(f"  {label}: every file failed")
            continue
        totals = Counter()
        for path, result in results.items():
            totals.update(compare(originals[path], result["tracks"]))
            totals["tokens"] += result["tokens"]
        notes = totals["notes"]
        print(f"  {label:<26} {len(results):>6} {totals['exact'] / notes:>11.2%} {totals['own'] / notes:>9.2%} "
              f"{totals['error'] / max(1, notes - totals['missing']):>10.4f} {totals['tokens'] / notes:>12.2f}")


def main() -> None:
    args = parse_args()
    print(f"python {sys.version.split()[0]}; notes compared in quarter notes (see the docstring)")
    for name in args.corpus:
        bench_corpus(name, args)


if __name__ == "__main__":
    main()
