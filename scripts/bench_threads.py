"""Benchmark: `melodygen sample` with torch's default thread count (the old default, `--threads 0`)
against the new default (one thread, no option), on a quiet machine and with busy processes on it.

Each run is the command a user types, in a fresh process with a fresh output folder:
`melodygen sample MODEL -n 1 --bars 8 --seed 1` (the copy check included; one untimed run first
prepares what it needs). "Busy" starts --busy CPU-bound children (`while True: pass`) for the
timed runs and kills them after. Runs alternate between the two settings; the best of --repeat
is reported, with every run, and whether the two settings wrote the same bytes. Prints a
markdown table and the machine.

    .venv/bin/python scripts/bench_threads.py
    .venv/bin/python scripts/bench_threads.py --model folk-melody --bars 16 --repeat 2
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_copies import machine

SETTINGS = {"torch's default (--threads 0, before)": ["--threads", "0"], "new default (1 thread)": []}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="folk-band", help="checkpoint or bundled model name")
    parser.add_argument("--bars", type=float, default=8)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per setting and load (best is reported)")
    parser.add_argument("--busy", type=int, default=2, help="CPU-bound processes for the busy runs")
    parser.add_argument("--timeout", type=float, default=600, help="seconds before a run is given up")
    return parser.parse_args()


def child_env() -> dict[str, str]:
    """This environment without the variables that would fix torch's default thread count."""
    return {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}


def run_sample(args, extra: list[str], out: Path) -> tuple[float, str]:
    """Seconds one `melodygen sample` took, and a digest of the MIDI it wrote."""
    env = child_env()
    command = [sys.executable, "-m", "melodygen", "sample", args.model, "-n", "1", "--bars", str(args.bars),
               "--seed", "1", "--out", str(out), *extra]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=args.timeout)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr}")
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(out.glob("*.mid")))).hexdigest()
    return seconds, digest


@contextlib.contextmanager
def busy_processes(count: int):
    """`count` CPU-bound children while the block runs; killed (by their ids) after it."""
    children = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        time.sleep(1.0)  # let them take their cores
        yield
    finally:
        for child in children:
            child.kill()
            child.wait()


def timed_runs(args, work: Path, load: str) -> list[dict]:
    """Every setting `args.repeat` times, alternating, under `load` ("quiet" or "busy")."""
    runs = {name: [] for name in SETTINGS}
    digests = {name: set() for name in SETTINGS}
    start_load = os.getloadavg()[0]  # other users' work shows here: "quiet" means none of ours
    for i in range(args.repeat):
        for name, extra in SETTINGS.items():
            seconds, digest = run_sample(args, extra, work / f"{load}-{i}-{'old' if extra else 'new'}")
            runs[name].append(seconds)
            digests[name].add(digest)
            print(f"  {load:5} {name}: {seconds:.1f} s", file=sys.stderr)
    same = len(set().union(*digests.values())) == 1
    what = "quiet" if load == "quiet" else f"{args.busy} busy processes"
    return [{"machine load": f"{what} (load average {start_load:.1f} at start)", "threads": name,
             "best s": min(times), "runs s": ", ".join(f"{t:.1f}" for t in times),
             "same MIDI bytes": "yes" if same else "NO"} for name, times in runs.items()]


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="melodygen-bench-threads-") as folder:
        work = Path(folder)
        load_before = os.getloadavg()[0]
        run_sample(args, [], work / "warm-up")  # bundled corpus and copy index prepared, caches warm
        rows = timed_runs(args, work, "quiet")
        with busy_processes(args.busy):
            rows += timed_runs(args, work, "busy")
    before = {row["machine load"]: row["best s"] for row in rows if SETTINGS[row["threads"]]}
    for row in rows:
        row["speed vs before"] = f"{before[row['machine load']] / row['best s']:.2f}x"
        row["best s"] = f"{row['best s']:.1f}"
    print(f"`melodygen sample {args.model} -n 1 --bars {args.bars:g} --seed 1`, best of {args.repeat}\n")
    print("| " + " | ".join(rows[0]) + " |")
    print("|" + "---|" * len(rows[0]))
    for row in rows:
        print("| " + " | ".join(str(v) for v in row.values()) + " |")
    print(f"\nmachine: {machine()} (the runs: unset); torch's default: {torch_default_threads()} "
          f"threads; 1-minute load average before the warm-up: {load_before:.2f}")


def torch_default_threads() -> int:
    """What torch picks in a fresh process without OMP_NUM_THREADS."""
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                         env=child_env(), capture_output=True, text=True, check=True)
    return int(out.stdout)


if __name__ == "__main__":
    main()
