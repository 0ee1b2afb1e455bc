"""Benchmark: the copy check's index build and lookups on the bundled corpora, in one run.

For each (corpus, encoding) it prepares the corpus (reused when unchanged, not timed), then times
`dataset.copies.build_index` on the train split (best of --repeat), and looks up every validation
piece (held out: real music the model never saw, which should copy little) and --train-pieces
train pieces fed back in (each must be found whole, from its own source file). Lookups cover the
exact match and the 11 transpositions. Prints a markdown table and the machine.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python scripts/bench_copies.py
    .venv/bin/python scripts/bench_copies.py --cases nottingham:melody --work /tmp/bench_copies
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from melodygen.dataset.copies import COPY_INDEX, CopyIndex, build_index
from melodygen.dataset.manifest import load_dataset_encoding
from melodygen.dataset.prepare import prepare
from melodygen.dataset.shards import TokenDataset
from melodygen.encodings import get_encoding

CASES = ("nottingham:melody", "bach-chorales:performance", "nottingham:multitrack")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), help="corpus:encoding pairs (bundled corpora)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "melodygen_bench_copies",
                        help="where the prepared datasets go (reused between runs)")
    parser.add_argument("--workers", type=int, default=2, help="prepare's worker processes")
    parser.add_argument("--repeat", type=int, default=3, help="index builds timed (best is reported)")
    parser.add_argument("--train-pieces", type=int, default=50, help="train pieces fed back in")
    return parser.parse_args()


def machine() -> str:
    try:
        info = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        info = ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("Model name")),
                 platform.processor() or "unknown CPU")
    return (f"{model}, {os.cpu_count()} cores, {'AVX-512' if 'avx512f' in info else 'no AVX-512'}, "
            f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")


def pieces(directory: Path, split: str) -> list[np.ndarray]:
    data = TokenDataset(directory, split)
    return [np.array(data.piece(i)[1:-1]) for i in range(data.num_pieces)]


def timed_checks(index: CopyIndex, queries: list[np.ndarray]) -> tuple[list, float]:
    started = time.perf_counter()
    checks = [index.check(q) for q in queries]
    return checks, (time.perf_counter() - started) / max(1, len(queries)) * 1000


def bench_case(case: str, args) -> dict:
    corpus, encoding_name = case.split(":")
    out = args.work / f"{corpus}-{encoding_name}"
    prepare([f"bundled:{corpus}"], get_encoding(encoding_name), out, workers=args.workers, progress=False)
    builds = [build_index(out, load_dataset_encoding(out)) for _ in range(args.repeat)]
    index = CopyIndex.open(out)
    train, held_out = pieces(out, "train"), pieces(out, "valid")
    chosen = np.random.default_rng(0).choice(len(train), min(args.train_pieces, len(train)), replace=False)
    fed_back, train_ms = timed_checks(index, [train[i] for i in chosen])
    found = sum(c.exact is not None and c.exact.events == len(train[i]) and c.exact.piece == i
                for c, i in zip(fed_back, chosen))
    checks, valid_ms = timed_checks(index, held_out)
    exact = [c.exact.bars if c.exact else 0.0 for c in checks]
    moved = [c.transposed.bars if c.transposed else 0.0 for c in checks]
    return {"case": case, "train pieces": len(train), "train ids": sum(len(p) for p in train),
            "index MB": round((out / COPY_INDEX).stat().st_size / 2**20, 1),
            "build s": round(min(b["seconds"] for b in builds), 3),
            "lookup ms/piece (held-out / fed back)": f"{valid_ms:.1f} / {train_ms:.1f}",
            "held-out pieces": len(held_out), "held-out ids/piece": round(statistics.fmean(len(p) for p in held_out)),
            "held-out exact bars (median / max)": f"{statistics.median(exact):.2f} / {max(exact):.2f}",
            "held-out transposed bars (median / max)": f"{statistics.median(moved):.2f} / {max(moved):.2f}",
            "train fed back found whole": f"{found}/{len(chosen)}"}


def main() -> None:
    args = parse_args()
    rows = [bench_case(case, args) for case in args.cases]
    headers = list(rows[0])
    print("| " + " | ".join(headers) + " |")
    print("|" + "---|" * len(headers))
    for row in rows:
        cells = [f"{v:,}" if isinstance(v, (int, float)) else str(v) for v in row.values()]
        print("| " + " | ".join(cells) + " |")
    print(f"\nmachine: {machine()}")


if __name__ == "__main__":
    main()
