"""Time the multitrack grammar per draw, and fingerprint the masks it gives.

    python scripts/bench_grammar.py                  # every set-up, batch 1 and 16
    python scripts/bench_grammar.py --calls 4000 --repeat 5

Each set-up builds the bundled folk-band (or chorale) encoding's grammar (folk-band's as it
was before repeats) the way sampling does
(`Encoding.grammar` with instruments, controls, strict density, given music), then drives it
with random ids it allows (seeded), so the same set-up walks the same stream on every version of
the grammar. Per set-up: microseconds per call (the median of --repeat runs over the same walk,
one thread) and a digest of every mask it returned, so a refactor that claims the same masks can
be checked by running this script before and after it (same digests) and compared for speed in
the same run of the machine.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
from pathlib import Path

import torch

from melodygen.encodings.controls import ControlRequest
from melodygen.encodings.multitrack_given import accompaniment_plan, infill_plan
from melodygen.midi_io import read_score

ROOT = Path(__file__).resolve().parent.parent
TUNE = ROOT / "data/nottingham/ashover1.mid"


def folk_and_chorale():
    """The encodings of the bundled folk-band (as it was trained before repeats: its controls on
    default settings) and chorale (default settings), built from their settings, not loaded."""
    from melodygen.encodings import get_encoding

    return get_encoding("multitrack", controls=["key", "chord", "density"]), get_encoding("multitrack")


def with_repeats(encoding, repeats: int = 32):
    """The same encoding with REPEAT/SHIFT ids (as configs/multitrack_nottingham.toml now has)."""
    import dataclasses

    from melodygen.encodings import get_encoding

    return get_encoding(encoding.name, **{**dataclasses.asdict(encoding.settings), "repeats": repeats})


def setups(folk, chorale) -> dict[str, tuple]:
    """name -> (encoding, grammar keywords, primer ids) of each set-up; the last two (the
    multitrack syntax with repeats, and a form plan) exist only since issue 22."""
    from melodygen.encodings.form import FormPlan

    tune = read_score(TUNE)
    primer = [int(i) for i in folk.encode(tune)[:60]]
    controls = ControlRequest.parse("D", "D G A7 D", None)
    strict = ControlRequest.parse(None, None, "8,6", strict_density=True)
    return {
        "free": (folk, {}, []),
        "instruments": (folk, {"instruments": [73, 0]}, []),
        "primer": (folk, {}, primer),
        "controls": (folk, {"controls": controls}, []),
        "strict density": (folk, {"controls": strict}, []),
        "accompaniment": (folk, {"given": accompaniment_plan(folk, tune, [0], [0])}, []),
        "infill": (folk, {"given": infill_plan(folk, tune, 3, 5)}, []),
        "chorale free": (chorale, {}, []),
        "repeats free": (with_repeats(folk), {}, []),
        "form A4A4B4A4": (with_repeats(folk), {"form": FormPlan.parse("A4 A4 B4 A4")}, []),
    }


def walk(encoding, keywords: dict, primer: list[int], rows: int, calls: int, seed: int = 0) -> tuple[float, str, int]:
    """(seconds in the grammar's calls, digest of its masks, calls made) over one seeded walk."""
    generator = torch.Generator().manual_seed(seed)
    grammar = encoding.grammar(primer, rows, "cpu", **keywords)
    digest, spent, last = hashlib.sha256(), 0.0, None
    logits = torch.zeros(rows, encoding.vocab.size)
    for made in range(calls):
        start = time.perf_counter()
        out = grammar(logits, last)
        spent += time.perf_counter() - start
        allowed = torch.isfinite(out)
        digest.update(allowed.numpy().tobytes())
        weights = allowed.float() * torch.rand(rows, encoding.vocab.size, generator=generator)
        last = weights.argmax(1)
        if bool((last == 2).all()):  # every row ended (EOS): start over from the same set-up
            grammar, last = encoding.grammar(primer, rows, "cpu", **keywords), None
    return spent, digest.hexdigest()[:16], calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="grammar calls per set-up and batch")
    parser.add_argument("--repeat", type=int, default=3, help="timed walks per set-up (the median is shown)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()
    torch.set_num_threads(1)
    chosen = setups(*folk_and_chorale())
    print(f"torch {torch.__version__}, 1 thread, {args.calls} calls per walk, median of {args.repeat}")
    print(f"{'set-up':<16} {'batch':>5} {'µs/call':>8}  mask digest")
    for name, (encoding, keywords, primer) in chosen.items():
        for rows in args.batches:
            runs = [walk(encoding, keywords, primer, rows, args.calls) for _ in range(args.repeat)]
            micro = statistics.median(spent / calls * 1e6 for spent, _, calls in runs)
            print(f"{name:<16} {rows:>5} {micro:>8.1f}  {runs[0][1]}")


if __name__ == "__main__":
    main()
