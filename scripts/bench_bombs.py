"""Benchmark: peak memory and time of every MIDI-reading command on malformed and extreme files.

Builds the bombs an attacker (or a damaged disk) hands melodygen: a few bytes describing years
of music (huge deltas), a 10-hour silence, a 10-hour note, an absurd tempo, 600,000 events,
2,000 tracks, one tick per beat, SMPTE timing, 480,000 events (just under the ceiling), plus --flips bit-flipped and --cuts truncated
copies of a real Nottingham tune. Runs each command on each file in its own process with a
--limit-s time limit and reports, per command: how many files ran, were refused in one line,
printed a traceback or ran out of time, and the worst peak memory (the child's max RSS) and time.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python scripts/bench_bombs.py
    .venv/bin/python scripts/bench_bombs.py --flips 5 --cuts 2 --commands stats tokens-melody
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import midi_factory as mf  # noqa: E402  (the bomb builders the tests use)
from bench_copies import machine  # noqa: E402

MELODYGEN = [sys.executable, "-m", "melodygen"]
COMMANDS = {  # name -> arguments, FILE and OUT filled in
    "tokens-melody": ["tokens", "FILE", "--encoding", "melody"],
    "tokens-multitrack": ["tokens", "FILE", "--encoding", "multitrack"],
    "stats": ["stats", "FILE"],
    "sample-primer": ["sample", "folk-melody", "--primer", "FILE", "--out", "OUT", "--length", "64",
                      "--seed", "1", "--no-copy-check"],
    "sample-accompany": ["sample", "folk-band", "--accompany", "FILE", "--out", "OUT", "--seed", "1",
                         "--no-copy-check"],
}
TUNE = REPO / "data" / "nottingham" / "ashover1.mid"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", nargs="+", default=list(COMMANDS), choices=list(COMMANDS))
    parser.add_argument("--flips", type=int, default=20, help="bit-flipped copies of a real tune")
    parser.add_argument("--cuts", type=int, default=5, help="truncated copies of a real tune")
    parser.add_argument("--limit-s", type=float, default=60.0, help="time limit per command and file")
    parser.add_argument("--work", type=Path, default=None, help="folder for the bombs (default: a temporary one)")
    return parser.parse_args()


def named_bombs(folder: Path) -> list[Path]:
    """The extreme files, each named after what it is."""
    two_thousand = [mf.note_events([(40 + i % 40, i, i + mf.TPB)], channel=i % 16) for i in range(2000)]
    bombs = [mf.huge_deltas_file(folder), mf.long_silence_file(folder, minutes=600),
             mf.fast_tempo_file(folder), mf.many_events_file(folder, 300_000),
             mf.midi_file(folder / "tracks_2000.mid", two_thousand),
             mf.one_track_file(folder / "held_10h.mid", b"\x00\x90\x3c\x50" + mf.vlq(36_000 * 2 * mf.TPB) + b"\x80\x3c\x00"),
             mf.many_events_file(folder, 240_000, name="events_480k.mid"),  # under the ceiling: must run
             mf.resolution_file(folder, 1), mf.long_silence_file(folder, minutes=29, name="silence_29min.mid")]
    smpte = bytearray(TUNE.read_bytes())
    smpte[12:14] = bytes([256 - 25, 40])  # 25 frames a second, 40 ticks a frame
    (folder / "smpte.mid").write_bytes(bytes(smpte))
    return bombs + [folder / "smpte.mid"]


def damaged_copies(folder: Path, flips: int, cuts: int) -> list[Path]:
    """Copies of a real tune with 1-8 random bits flipped after the header, or cut short."""
    data, rng, paths = TUNE.read_bytes(), random.Random(0), []
    for i in range(flips):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            damaged[rng.randrange(14, len(data))] ^= 1 << rng.randrange(8)
        paths.append(folder / f"flip_{i:03d}.mid")
        paths[-1].write_bytes(bytes(damaged))
    for i in range(cuts):
        paths.append(folder / f"cut_{i:03d}.mid")
        paths[-1].write_bytes(data[:rng.randrange(14, len(data))])
    return paths


@dataclass
class Outcome:
    seconds: float
    peak_mb: float
    code: int | None  # None: killed at the time limit
    output: str


def run(command: list[str], limit_s: float) -> Outcome:
    """Runs `command` alone and measures its peak RSS through wait4 (this child's only)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+", newline="") as out:  # keep the progress bars' \r
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 env=os.environ | {"OMP_NUM_THREADS": "1"})
        code: int | None = None
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                code = os.waitstatus_to_exitcode(status)
                break
            if time.perf_counter() - start > limit_s:
                child.kill()
                _, _, usage = os.wait4(child.pid, 0)
                break
            time.sleep(0.02)
        child.returncode = code if code is not None else -9  # reaped above: keep Popen from waiting
        out.seek(0)
        return Outcome(time.perf_counter() - start, usage.ru_maxrss / 1024, code, out.read())


def verdict(outcome: Outcome) -> str:
    if outcome.code is None:
        return "timeout"
    if "Traceback" in outcome.output:
        return "traceback"
    if outcome.code == 0:
        return "ran"
    lines = shown_lines(outcome.output)
    return "refused" if len(lines) == 1 and lines[0].startswith("Error: ") else "other"


def shown_lines(output: str) -> list[str]:
    """The lines a terminal keeps: what follows the last carriage return (a progress bar's)."""
    return [kept for line in output.split("\n") if (kept := line.split("\r")[-1].strip())]


def main() -> None:
    args = parse_args()
    folder = args.work or Path(tempfile.mkdtemp(prefix="melodygen-bombs-"))
    folder.mkdir(parents=True, exist_ok=True)
    files = named_bombs(folder) + damaged_copies(folder, args.flips, args.cuts)
    print(f"{len(files)} files in {folder}; limit {args.limit_s:g} s per run\n")
    print("| command | file | verdict | peak MB | seconds | last line |\n|---|---|---|---:|---:|---|")
    totals: dict[str, list] = {}
    for name in args.commands:
        for path in files:
            out = folder / "out" / name / path.stem
            command = MELODYGEN + [str(path) if a == "FILE" else str(out) if a == "OUT" else a for a in COMMANDS[name]]
            outcome = run(command, args.limit_s)
            kind = verdict(outcome)
            totals.setdefault(name, []).append((kind, outcome))
            if not path.name.startswith(("flip_", "cut_")) or kind in ("timeout", "traceback", "other"):
                first = (shown_lines(outcome.output) or [""])[-1][:110].replace("|", "/")
                print(f"| {name} | {path.name} | {kind} | {outcome.peak_mb:,.0f} | {outcome.seconds:.1f} | {first} |")
    print("\n| command | files | ran | refused in one line | traceback | other | timeout | worst peak MB | worst seconds |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, rows in totals.items():
        count = {k: sum(kind == k for kind, _ in rows) for k in ("ran", "refused", "traceback", "other", "timeout")}
        print(f"| {name} | {len(rows)} | " + " | ".join(str(count[k]) for k in count)
              + f" | {max(o.peak_mb for _, o in rows):,.0f} | {max(o.seconds for _, o in rows):.1f} |")
    print(f"\nmachine: {machine()}")


if __name__ == "__main__":
    main()
