"""What `evaluate` says of music outside a model's training data, and what `--fit-velocities` does.

Issue 23, item 5: a model scores ids it never trained on silently badly. For the validation
pieces of the dataset a multitrack checkpoint trained on (the bundled `chorale`: Bach chorales,
all at one velocity) that have four voices, in one run, each row `melodygen evaluate CHECKPOINT
FOLDER [--fit-velocities]` on a folder it writes:

1. the pieces as they are;
2. played as a string quartet: violin, violin, viola, cello, velocities swelling over 8 beats
   (76 +- 24) with seeded accents (+- 9), 35..118;
3. the quartets barred in 4/2 (a meter the chorale model met twice as 3/2, never as 4/2);
4. the POP909 files kept for the tests (`tests/data/pop909`): piano songs with dynamics.

Each row gives the share of ids the model never saw (by kind), the NLL (nats/event), and the
velocity ids fitted.

    .venv/bin/python scripts/unseen_table.py chorale --pieces 8 --out /tmp/unseen
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
QUARTET = (40, 40, 41, 42)  # violin, violin, viola, cello


def parse_args() -> argparse.Namespace:
    """The command line (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a multitrack checkpoint or bundled model name")
    parser.add_argument("--pieces", type=int, default=8, help="four-voice validation pieces to use")
    parser.add_argument("--out", type=Path, required=True, help="folder for the MIDI files it writes")
    parser.add_argument("--seed", type=int, default=23)
    return parser.parse_args()


def held_out(checkpoint: str, count: int) -> list[Path]:
    """The first `count` validation pieces with four voices of the dataset `checkpoint` trained on."""
    from melodygen.checkpoint import load
    from melodygen.config import config_from_dict
    from melodygen.dataset.manifest import read_manifest
    from melodygen.dataset.runs import run_dataset_dir
    from melodygen.encodings import encoding_from_dict
    from melodygen.midi_io import read_score

    ckpt = load(checkpoint)
    directory = run_dataset_dir(config_from_dict(ckpt["run_config"], checkpoint), encoding_from_dict(ckpt["encoding"]))
    paths = [Path(p["path"]) for p in read_manifest(directory)["pieces"] if p["split"] == "valid"]
    return [p for p in paths if sum(bool(t.notes) for t in read_score(p).tracks) == 4][:count]


def as_quartet(path: Path, rng: np.random.Generator, meter: tuple[int, int] | None):
    """The piece's four voices as strings with dynamics, optionally in another meter throughout."""
    from melodygen.midi_io import read_score
    from melodygen.notes import Note

    score = read_score(path)
    voices = [t for t in score.tracks if t.notes]
    for track, program in zip(voices, QUARTET):
        track.program = program
        track.notes = [Note(n.pitch, _velocity(score.tempo_map.to_beats(n.start), rng), n.start, n.end)
                       for n in track.notes]
    if meter is not None:
        score = dataclasses.replace(score, time_signatures=[(0.0, *meter)])
    return score


def _velocity(beat: float, rng: np.random.Generator) -> int:
    swell = 76 + 24 * np.sin(2 * np.pi * beat / 8)
    return int(np.clip(round(swell + rng.normal(0, 9)), 35, 118))


def write_sets(pieces: list[Path], out: Path, seed: int) -> dict[str, Path]:
    """{set name: folder} for the originals, the quartets and the quartets in 4/2."""
    from melodygen.midi_io import write_score

    folders = {"chorales": out / "chorales", "quartets": out / "quartets", "quartets in 4/2": out / "quartets-4-2"}
    for name, meter in (("chorales", None), ("quartets", None), ("quartets in 4/2", (4, 2))):
        folders[name].mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(seed)
        for path in pieces:
            if name == "chorales":
                (folders[name] / path.name).write_bytes(path.read_bytes())
            else:
                write_score(as_quartet(path, rng, meter), folders[name] / path.name)
    return {**folders, "POP909 (tests/data)": REPO / "tests" / "data" / "pop909"}


def main() -> None:
    """Writes the sets and prints one table row per set, without and with the fit."""
    from melodygen.devices import use_threads
    from melodygen.evaluation import evaluate_checkpoint

    args = parse_args()
    use_threads("evaluate", 1)
    folders = write_sets(held_out(args.checkpoint, args.pieces), args.out, args.seed)
    print(f"{args.checkpoint}: {args.pieces} held-out four-voice pieces, files in {args.out}")
    print("| set | --fit-velocities | unseen ids | by kind | NLL (nats/event) | fitted ids |")
    print("|---|---|---:|---|---:|---:|")
    for name, folder in folders.items():
        for fit in (False, True):
            r = evaluate_checkpoint(args.checkpoint, sources=[str(folder)], fit_velocities=fit, device="cpu")
            unseen = r.get("unseen") or {}
            kinds = ", ".join(f"{k} {v / unseen['ids']:.2%}" for k, v in unseen.get("kinds", {}).items())
            print(f"| {name} | {'yes' if fit else 'no'} | {unseen.get('share', float('nan')):.1%} | {kinds or '-'} "
                  f"| {r['nll']:.3f} | {r.get('fitted', 0)} |")
            if r.get("input_warning"):
                print(f"|  | {r['input_warning']} |||||")


if __name__ == "__main__":
    main()
