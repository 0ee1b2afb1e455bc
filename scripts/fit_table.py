"""`melodygen fit` on three folders of music the bundled models never trained on: its figures.

    .venv/bin/python scripts/fit_table.py                          # the three folders, 12 minutes each
    .venv/bin/python scripts/fit_table.py --only chorales --minutes 6
    .venv/bin/python scripts/fit_table.py --pop909 ~/POP909         # where the whole POP909 lies

The folders (copied into --work, each fitted into WORK/fit-NAME):
- chorales: 30 Bach chorales of the bundled corpus's validation split, which the bundled
  `chorale` held out (music21 corpus terms);
- reels: 50 Nottingham tunes of the bundled corpus's validation split, held out by `folk-band`
  and `folk-melody` (GPL-3.0);
- pop: 30 POP909 songs outside the bundled subset that `pop-piano` learned from (MIT), every
  25th of the others in number order; needs the whole POP909 (--pop909);
- quartets: the chorales above played by a string quartet with dynamics (`unseen_table.as_quartet`:
  violin, violin, viola, cello, velocities swelling over 8 beats with seeded accents), music of a
  kind no bundled model met: the same counterpoint, instruments and velocities they never saw.

Per folder, from its fit.json: the held-out pieces, every bundled model that reads the folder's
encoding on them, the trials (a base fine-tuned, a model from scratch), the fitted model and a
5-gram, all in nats per note; the fit's wall-clock minutes; the memorisation audit; and the
real-vs-generated accuracy of its samples against the folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
from make_pretrained import machine  # noqa: E402

FOLDERS = ("chorales", "reels", "pop", "quartets")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "fit_table")
    parser.add_argument("--only", nargs="+", choices=FOLDERS, default=list(FOLDERS))
    parser.add_argument("--minutes", type=float, default=12.0)
    parser.add_argument("--pop909", type=Path, default=REPO.parent / "shared" / "data" / "pop909")
    parser.add_argument("--reuse", action="store_true", help="take a fit already finished in WORK/fit-NAME")
    return parser.parse_args()


def held_out_by(corpus: str) -> list[Path]:
    """The files of a bundled corpus in the validation split its bundled models held out."""
    from melodygen.dataset.manifest import split_of

    files = sorted((REPO / "data" / corpus).glob("*.mid"))
    return [f for f in files if split_of(hashlib.sha1(f.read_bytes()).hexdigest(), 0.1) == "valid"]


def folder_files(name: str, pop909: Path) -> list[Path]:
    if name == "chorales":
        return held_out_by("bach-chorales")[:30]
    if name == "reels":
        return held_out_by("nottingham")[:50]
    bundled = {f.name for f in (REPO / "data" / "pop909").glob("*.mid")}
    others = [f for f in sorted(pop909.glob("*.mid")) if f.name not in bundled]
    if not others:
        raise SystemExit(f"{pop909}: no POP909 songs outside the bundled subset (give --pop909 DIR)")
    return others[::25][:30]


def write_folder(name: str, folder: Path, pop909: Path) -> None:
    """Copy (or, for the quartets, write) the folder's files."""
    import numpy as np
    from unseen_table import as_quartet

    from melodygen.midi_io import write_score

    rng = np.random.default_rng(23)
    for f in folder_files("chorales" if name == "quartets" else name, pop909):
        if name == "quartets":
            write_score(as_quartet(f, rng, None), folder / f.name)
        else:
            shutil.copy(f, folder / f.name)


def fit_folder(name: str, args: argparse.Namespace) -> dict:
    """The fit of folder `name` (made again unless --reuse finds it finished): its fit.json."""
    import melodygen

    done = args.work / f"fit-{name}" / "fit.json"
    if args.reuse and done.is_file() and "real_vs_generated" in json.loads(done.read_text()).get("final", {}):
        return {"name": name, "state": json.loads(done.read_text())}
    folder = args.work / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    write_folder(name, folder, args.pop909)
    result = melodygen.fit(folder, out=args.work / f"fit-{name}", minutes=args.minutes, overwrite=True)
    return {"name": name, "state": result.state}


def row(entry: dict) -> str:
    state = entry["state"]
    bases, final, training = state["bases"], state["final"], state["training"]
    best = state["base"]
    scratch = training.get("trials", {}).get("scratch")
    audit = final["audit"]["summary"]
    two = final.get("real_vs_generated") or {}
    accuracy = f"{two['accuracy']:.0%}" if two.get("accuracy") is not None else "n/a"
    gain = 1 - final["fitted"]["nats_per_note"] / bases[best]["nats_per_note"] if best else None
    return " | ".join([
        entry["name"], f"{state['dataset']['train_pieces']} / {state['dataset']['held_out_pieces']}",
        f"{best} {bases[best]['nats_per_note']:.3f}" if best else "none",
        f"{scratch['nats_per_note']:.3f} ({scratch['minutes']:.1f} min)" if scratch else "-",
        f"**{final['fitted']['nats_per_note']:.3f}**", f"{final['ngram']['nats_per_note']:.3f}",
        f"{-gain:+.1%}" if gain is not None else "-", training["winner"], f"{state['spent_s'] / 60:.1f}",
        f"{audit['copying']} of {audit['files']} (longest {audit['longest_bars']['max']:.1f} bars)", accuracy])


def main() -> None:
    args = parse_args()
    print(machine())
    entries = []
    for name in args.only:
        entries.append(fit_folder(name, args))
        (args.work / "fit_table.json").write_text(json.dumps(entries, indent=1, default=str))
    print("\n| folder | pieces learned / held out | best bundled model | from scratch (trial) | fitted | 5-gram "
          "| fitted vs best bundled | winner | minutes | samples copying > 4 bars | real-vs-generated |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|---|---:|")
    for entry in entries:
        print(f"| {row(entry)} |")
    print("\nnats per note on each folder's held-out pieces (lower is better); minutes: the whole fit, "
          "reading and report included")


if __name__ == "__main__":
    sys.exit(main())
