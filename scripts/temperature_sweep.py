"""Temperature sweep: sample a checkpoint at several temperatures and compare each sampled set
with held-out real music, metric by metric; writes a markdown report (docs/temperature_sweep.md).

Sampling goes through `melodygen sample` (a subprocess per temperature, same seed for all).
The reference files are passed through the checkpoint's own encoding (encode, keep the first
--length events, decode), so both sides are measured on what the model can express and over
the same number of events: a melody model is not blamed for dropping the chords of a folk tune.
--raw-reference measures the reference files as they are instead.

    python scripts/temperature_sweep.py runs/melody_lstm/best.pt --dataset runs/data/nottingham-melody
    python scripts/temperature_sweep.py best.pt --reference bundled:nottingham -n 16 --length 256
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
from pathlib import Path

from melodygen import stats
from melodygen.dataset.manifest import read_manifest
from melodygen.dataset.sources import find_midi_files
from melodygen.errors import MelodygenError, NoUsableMusicError
from melodygen.stats.compare import compare_sets, mean_overlap

TEMPERATURES = (0.5, 0.8, 1.0, 1.2, 1.5)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", type=Path)
    ref = p.add_mutually_exclusive_group(required=True)
    ref.add_argument("--reference", nargs="+", help="MIDI folders/files of held-out real music")
    ref.add_argument("--dataset", type=Path, help="prepared dataset folder: use its validation files")
    p.add_argument("--temperatures", type=float, nargs="+", default=list(TEMPERATURES))
    p.add_argument("-n", "--num-outputs", type=int, default=32, help="files sampled per temperature")
    p.add_argument("--length", type=int, default=512, help="events per sample and per reference piece")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--raw-reference", action="store_true", help="do not pass the reference through the encoding")
    p.add_argument("--samples", type=Path, default=Path("runs/temperature_sweep"), help="where samples go")
    p.add_argument("--doc", type=Path, default=Path("docs/temperature_sweep.md"))
    p.add_argument("--workers", type=int, default=1, help="processes reading MIDI files")
    return p.parse_args(argv)


def reference_paths(args: argparse.Namespace) -> list[Path]:
    """The reference MIDI files: named ones, or the validation pieces of a prepared dataset."""
    if args.reference:
        return find_midi_files(args.reference)
    manifest = read_manifest(args.dataset)
    paths = [Path(p["path"]) for p in manifest["pieces"] if p["split"] == "valid"]
    if not paths:
        raise NoUsableMusicError(f"{args.dataset}: the dataset has no validation pieces")
    return paths


def describe_reference(args: argparse.Namespace, paths: list[Path]) -> dict:
    if args.raw_reference:
        return stats.describe_set(paths, workers=args.workers)
    from melodygen.checkpoint import load
    from melodygen.encodings import encoding_from_dict

    encoding = encoding_from_dict(load(args.checkpoint)["encoding"])
    return stats.describe_encoded_set(paths, encoding, max_events=args.length, workers=args.workers)


def sample_set(args: argparse.Namespace, temperature: float) -> dict:
    """Sample `num_outputs` files at `temperature` with `melodygen sample`; describe them."""
    out = args.samples / f"t{temperature:g}"
    command = [sys.executable, "-m", "melodygen", "sample", str(args.checkpoint), "--out", str(out),
               "-n", str(args.num_outputs), "--temperature", str(temperature), "--length", str(args.length),
               "--seed", str(args.seed), "--device", args.device, "--name", "sample", "--overwrite"]
    print(f"T={temperature:g}: {' '.join(command[1:])}", flush=True)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return stats.describe_set(sorted(out.glob("sample_*.mid")), workers=args.workers)


def markdown(args: argparse.Namespace, reference: dict, sweep: list[tuple[float, dict, dict]]) -> str:
    """The report: overlap and KL per temperature and metric, then the means."""
    names = [*stats.SCALAR_METRICS, *stats.HISTOGRAM_METRICS]
    how = "as they are" if args.raw_reference else f"passed through the checkpoint's encoding, first {args.length} events"
    lines = [
        "# Temperature sweep: sampled music against held-out real music", "",
        f"Generated {datetime.date.today()} by `python scripts/temperature_sweep.py {' '.join(sys.argv[1:])}`.", "",
        f"- checkpoint: `{args.checkpoint}`; {args.num_outputs} samples of {args.length} events per "
        f"temperature, seed {args.seed} (files under `{args.samples}`)",
        f"- reference: {_source(args)}: {reference['count']} files ({how}); {len(reference['skipped'])} skipped",
        "- overlap: area shared by the metric's distributions over the two sets (1 = same, 0 = disjoint; "
        "histograms: sum of min of the pooled histograms); KL(samples || reference) in nats. "
        "Metrics: `melodygen/stats/metrics.py`.", "",
        "## Overlapping area with the reference (higher is closer)", "",
        *_table(["T", *names, "mean"], [[f"{t:g}", *_cells(c, names, "overlap"), f"**{mean_overlap(c):.3f}**"]
                                         for t, _, c in sweep]),
        "", "## KL divergence from the reference (nats, lower is closer)", "",
        *_table(["T", *names], [[f"{t:g}", *_cells(c, names, "kl")] for t, _, c in sweep]),
        "", "## Mean ± std per file", "",
        *_table(["set", *stats.SCALAR_METRICS], [_means_row("reference", reference)]
                + [_means_row(f"T={t:g}", d) for t, d, _ in sweep]),
    ]
    return "\n".join(lines) + "\n"


def _source(args: argparse.Namespace) -> str:
    if args.dataset:
        return f"validation split of `{args.dataset}`"
    shown = ", ".join(f"`{r}`" for r in args.reference[:3])
    return shown + (f" and {len(args.reference) - 3} more" if len(args.reference) > 3 else "")


def _cells(comparison: dict, names: list[str], key: str) -> list[str]:
    merged = {**comparison["scalars"], **comparison["histograms"]}
    return ["-" if merged[n][key] is None else f"{merged[n][key]:.3f}" for n in names]


def _means_row(title: str, described: dict) -> list[str]:
    return [title, *(f"{s['mean']:.3g} ± {s['std']:.2g}" for s in described["scalars"].values())]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(row) + " |" for row in rows)]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        reference = describe_reference(args, reference_paths(args))
        sweep = []
        for t in args.temperatures:
            described = sample_set(args, t)
            sweep.append((t, described, compare_sets(described, reference)))
    except (MelodygenError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:
        print(f"error: melodygen sample failed (exit {exc.returncode})", file=sys.stderr)
        return 1
    args.doc.parent.mkdir(parents=True, exist_ok=True)
    args.doc.write_text(markdown(args, reference, sweep), encoding="utf-8")
    print(f"wrote {args.doc} ({len(sweep)} temperatures, reference {reference['count']} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
