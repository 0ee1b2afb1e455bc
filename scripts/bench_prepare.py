"""Benchmark: notes/s of `melodygen prepare`, from file paths to finished shards, next to MidiTok.

For each corpus it runs `prepare` (all steps: discovery, hashing, reading, encoding, writing the
shards and manifest) into a temporary folder, then, on exactly the files prepare used, MidiTok's
REMI tokenizer from path (MidiTok reads with symusic) in one process. Both rates divide the same
note count (notes melodygen read from those files, all non-drum tracks) by each tool's wall time.

MidiTok is not a melodygen dependency: it runs in its own virtual env, through a subprocess:

    python -m venv bench_env && bench_env/bin/pip install miditok
    .venv/bin/python scripts/bench_prepare.py                       # the bundled corpora
    .venv/bin/python scripts/bench_prepare.py --data-root ../shared/data --corpus pop909 --workers 1 2 --repeat 3
    .venv/bin/python scripts/bench_prepare.py --encoding multitrack --miditok-programs --workers 1 2 --repeat 2

Without a usable MidiTok interpreter the MidiTok column is skipped with a message.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA_ROOT = REPO / "data"  # the bundled corpora; pass --data-root for others (e.g. POP909)

MIDITOK_SNIPPET = r"""
import json, sys, time
from pathlib import Path
from miditok import REMI, TokenizerConfig

job = json.loads(sys.stdin.read())
paths = job["paths"]
tokenizer = REMI(TokenizerConfig(use_programs=job["programs"]))  # programs: REMI+, one stream
started = time.perf_counter()
failed = tokens = 0
for path in paths:
    try:
        seqs = tokenizer(Path(path))
        tokens += sum(len(s) for s in seqs) if isinstance(seqs, list) else len(seqs)
    except Exception:
        failed += 1
print(json.dumps({"seconds": time.perf_counter() - started, "failed": failed, "tokens": tokens}))
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", nargs="+", default=["nottingham", "bach-chorales"],
                        help="corpus folders under --data-root (default: nottingham bach-chorales)")
    parser.add_argument("--data-root", type=Path, default=DATA_ROOT, help=f"default: {DATA_ROOT}")
    parser.add_argument("--limit", type=int, default=None, help="only the first N files of each corpus")
    parser.add_argument("--encoding", default="performance", help="melodygen encoding (default: performance)")
    parser.add_argument("--workers", type=int, nargs="+", default=[os.cpu_count() or 1],
                        help="prepare worker counts to time (default: every CPU)")
    parser.add_argument("--repeat", type=int, default=1, help="best of N runs for each figure")
    parser.add_argument("--miditok-programs", action="store_true",
                        help="MidiTok REMI+ (use_programs: every track in one stream with Program tokens), "
                             "the like of the multitrack encoding; default: plain REMI")
    parser.add_argument("--miditok-python", default=str(REPO / "bench_env" / "bin" / "python"),
                        help="interpreter that can import miditok (default: bench_env/bin/python)")
    return parser.parse_args()


def corpus_files(root: Path, limit: int | None) -> list[Path]:
    from melodygen.dataset.sources import find_midi_files

    return find_midi_files([root])[:limit]


def time_prepare(files: list[Path], encoding_name: str, workers: int, repeat: int) -> tuple[float, dict]:
    """Best wall time of `prepare` over `repeat` runs, and the manifest of the last one."""
    from melodygen.dataset.prepare import prepare
    from melodygen.dataset.manifest import read_manifest
    from melodygen.encodings import get_encoding

    best = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeat):
            started = time.perf_counter()
            prepare(files, get_encoding(encoding_name), Path(tmp) / "ds", workers=workers, progress=False, force=True)
            best = min(best, time.perf_counter() - started)
        return best, read_manifest(Path(tmp) / "ds")


def time_miditok(python: str, files: list[str], repeat: int, programs: bool = False) -> dict | str:
    """MidiTok's best run as {"seconds", "failed", "tokens"}, or why it could not run."""
    runs = []
    for _ in range(repeat):
        run = run_in_miditok(python, MIDITOK_SNIPPET, {"paths": files, "programs": programs})
        if isinstance(run, str):
            return run
        runs.append(run)
    return min(runs, key=lambda r: r["seconds"])


def run_in_miditok(python: str, snippet: str, job: dict):
    """What `snippet` prints as JSON, run by the interpreter that has MidiTok with `job` (JSON)
    on its standard input; or, as a str, why it could not run."""
    if not Path(python).exists():
        return (f"skipped: {python} not found; create it with `python -m venv bench_env && "
                "bench_env/bin/pip install miditok` or pass --miditok-python")
    proc = subprocess.run([python, "-c", snippet], input=json.dumps(job), capture_output=True, text=True)
    if proc.returncode != 0:
        return f"skipped: MidiTok failed in {python}: {proc.stderr.strip().splitlines()[-1:]}"
    return json.loads(proc.stdout)


def bench_corpus(name: str, args: argparse.Namespace) -> None:
    files = corpus_files(args.data_root / name, args.limit)
    rows = []
    for workers in args.workers:
        seconds, manifest = time_prepare(files, args.encoding, workers, args.repeat)
        rows.append((f"melodygen prepare ({args.encoding}, {workers} worker{'s' * (workers > 1)})", seconds))
    used = [p["path"] for p in manifest["pieces"]]
    notes = manifest["totals"]["notes"]
    print(f"\n{name}: {len(files)} files, {len(used)} used, {notes:,} notes")
    miditok = time_miditok(args.miditok_python, used, args.repeat, args.miditok_programs)
    if isinstance(miditok, dict):
        remi = "REMI+" if args.miditok_programs else "REMI"
        rows.append((f"MidiTok {remi} from path (1 process; {miditok['failed']} failed)", miditok["seconds"]))
    for label, seconds in rows:
        print(f"  {label:<52} {seconds:8.2f} s {notes / seconds:>12,.0f} notes/s")
    if isinstance(miditok, dict):
        for label, seconds in rows[:-1]:
            print(f"  ratio {label} / MidiTok: {miditok['seconds'] / seconds:.2f}x")
    else:
        print(f"  MidiTok {miditok}")


def main() -> None:
    args = parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, best of {args.repeat}")
    for name in args.corpus:
        bench_corpus(name, args)


if __name__ == "__main__":
    main()
