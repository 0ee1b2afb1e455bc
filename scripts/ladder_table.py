"""The model ladder: CNN (causal dilated convolutions) -> RNN -> LSTM -> attention LSTM ->
Transformer (learned, rope positions) -> Music Transformer (relative attention), trained on the
same split with the same time budget.

For each rung: `melodygen.training.train` from its preset (`configs/`) on one prepared Nottingham
melody dataset, with every rung's time budget set to `--minutes` (and no step limit), then:
- val NLL, perplexity and accuracy of its best checkpoint on the whole valid split in windows of
  `--eval-len` events, and the 5-gram (fitted on the train split) on exactly the same windows;
- `--samples` pieces of `--length` events at each of `--temperatures`, described with
  `melodygen.stats` and compared with the held-out (valid) tunes as the melody encoding sees them
  (their first `--length` events); the temperature with the best mean overlap is the rung's.
The three Transformers share one shape (the Music Transformer preset's) and differ only in
positions. Prints Markdown: the table and how to read it. Caveat: the rungs whose presets train
on windows starting at a tune's beginning are scored, like every rung, on sequential windows that
start mid-tune; a model with learned positions, which only ever saw a BOS at position 0, is the
most disadvantaged by that.

    python scripts/ladder_table.py --minutes 5 --threads 2            # ~50 min on 2 CPU cores
    python scripts/ladder_table.py --rungs "cnn (dilated)"             # one rung (~7 min)
    python scripts/ladder_table.py --reuse                             # re-score finished runs
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
RUNGS = [  # (name, preset, overrides)
    ("cnn (dilated)", "melody_cnn", []),
    ("rnn", "melody_rnn", []),
    ("lstm", "melody_lstm", []),
    ("attention_lstm", "melody_attention_lstm", []),
    ("transformer (learned)", "melody_music_transformer", ["model.positions=learned"]),
    ("transformer (rope)", "melody_music_transformer", ["model.positions=rope"]),
    ("music transformer", "melody_music_transformer", []),
]
STRUCTURE = ("repetition", "bar_repeat_exact", "longest_repeat_bars")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=5.0, help="training budget of every rung")
    p.add_argument("--run-root", type=Path, default=Path("runs/ladder"))
    p.add_argument("--rungs", nargs="+", default=[name for name, _, _ in RUNGS],
                   choices=[name for name, _, _ in RUNGS], metavar="RUNG")
    p.add_argument("--eval-len", type=int, default=768, help="validation window, events")
    p.add_argument("--temperatures", type=float, nargs="+", default=[0.8, 0.9, 1.0])
    p.add_argument("--samples", type=int, default=8, help="pieces per temperature")
    p.add_argument("--length", type=int, default=512, help="events per sample (32 bars of 16ths)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--reuse", action="store_true", help="score finished runs, do not retrain")
    return p.parse_args()


def prepared(args) -> Path:
    from melodygen.dataset.prepare import prepare
    from melodygen.encodings import get_encoding

    out = args.run_root / "data"
    prepare(["bundled:nottingham"], get_encoding("melody"), out, progress=False)
    return out


def train_rung(name: str, preset: str, overrides: list[str], data: Path, args) -> Path:
    from melodygen.config import load_config
    from melodygen.training import train

    run_dir = args.run_root / name.replace(" ", "_").replace("(", "").replace(")", "")
    if args.reuse and (run_dir / "best.pt").is_file():
        return run_dir
    config = load_config(REPO / "configs" / f"{preset}.toml", [
        *overrides, f"data.dataset={json.dumps(str(data))}", f"training.max_minutes={args.minutes}",
        "training.max_steps=1000000", f"training.threads={args.threads}", f"training.device={args.device}"])
    train(config, run_dir, overwrite=True, progress=False)
    return run_dir


def score_rung(run_dir: Path, data: Path, args) -> dict:
    from melodygen import checkpoint
    from melodygen.evaluation import evaluate_checkpoint
    from melodygen.models import count_parameters

    model, _, ckpt = checkpoint.load_for_inference(run_dir / "best.pt")
    elapsed = checkpoint.load(run_dir / "last.pt")["scheduler"]["elapsed_s"]
    figures = evaluate_checkpoint(run_dir / "best.pt", data_dir=data, seq_len=args.eval_len, device=args.device)
    return {"params": count_parameters(model), "minutes": elapsed / 60, "steps": ckpt["step"], "figures": figures}


def sample_rung(run_dir: Path, reference: dict, args) -> dict:
    """The temperature with the best mean overlap: {temperature, overlap, samples (described)}."""
    from melodygen.sampling.files import sample_to_midi
    from melodygen.sampling.request import GenerationRequest
    from melodygen.stats import compare_sets, describe_set
    from melodygen.stats.compare import mean_overlap

    best = None
    for temperature in args.temperatures:
        request = GenerationRequest(n=args.samples, temperature=temperature, events=args.length, seed=0)
        written = sample_to_midi(run_dir / "best.pt", run_dir / f"samples_t{temperature:g}", request, args.device,
                                 overwrite=True)
        described = describe_set([r.path for r in written])
        overlap = mean_overlap(compare_sets(described, reference))
        if best is None or overlap > best["overlap"]:
            best = {"temperature": temperature, "overlap": overlap, "samples": described}
    return best


def held_out(data: Path, args) -> dict:
    from melodygen.dataset.manifest import read_manifest
    from melodygen.encodings import get_encoding
    from melodygen.stats import describe_encoded_set

    paths = [p["path"] for p in read_manifest(data)["pieces"] if p["split"] == "valid"]
    return describe_encoded_set(paths, get_encoding("melody"), max_events=args.length, workers=2)


def table(rows: list[dict], baseline: dict, reference: dict, args) -> str:
    ref = {k: reference["scalars"][k]["mean"] for k in STRUCTURE}
    lines = [
        f"| rung | params | steps | val NLL | perplexity | accuracy | NLL below the 5-gram | best T "
        f"| repeated 4-grams (held-out {ref['repetition']:.2f}) | bars repeated ({ref['bar_repeat_exact']:.2f}) "
        f"| longest repeat, bars ({ref['longest_repeat_bars']:.1f}) | mean overlap |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        m, s = r["figures"], r["best"]["samples"]["scalars"]
        gain = baseline["nll"] - m["nll"]
        lines.append(
            f"| {r['name']} | {r['params']:,} | {r['steps']} | {m['nll']:.3f} | {m['perplexity']:.2f} "
            f"| {100 * m['accuracy']:.1f}% | {gain:.3f} ({100 * gain / baseline['nll']:.0f}%) "
            f"| {r['best']['temperature']:g} | {s['repetition']['mean']:.2f} "
            f"({s['repetition']['mean'] / ref['repetition']:.2f}x) | {s['bar_repeat_exact']['mean']:.2f} "
            f"| {s['longest_repeat_bars']['mean']:.1f} | {r['best']['overlap']:.3f} |")
    lines.append(f"| 5-gram | | | {baseline['nll']:.3f} | {baseline['perplexity']:.2f} "
                 f"| {100 * baseline['accuracy']:.1f}% | | | | | | |")
    return "\n".join(lines)


def main() -> int:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from melodygen.baseline import evaluate_baseline

    started = time.time()
    data = prepared(args)
    reference = held_out(data, args)
    baseline = evaluate_baseline(data, order=5, seq_len=args.eval_len)
    rows = []
    for name, preset, overrides in RUNGS:
        if name not in args.rungs:
            continue
        run_dir = train_rung(name, preset, overrides, data, args)
        rows.append({"name": name, **score_rung(run_dir, data, args), "best": sample_rung(run_dir, reference, args)})
        print(f"{name}: done after {(time.time() - started) / 60:.1f} min", file=sys.stderr, flush=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}; "
          f"{args.minutes:g} min of training per rung; val NLL on the {reference['count']}-tune valid split in "
          f"windows of {args.eval_len} events (model and 5-gram on the same windows); samples: "
          f"{args.samples} x {args.length} events per temperature {args.temperatures}, compared with the "
          f"held-out tunes' first {args.length} events; {(time.time() - started) / 60:.0f} min in all\n")
    print(table(rows, baseline, reference, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
