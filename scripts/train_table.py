"""The README's results table: train each preset on its bundled corpus, then score it and a
count-based n-gram baseline on the same validation events.

For each preset: `melodygen.training.train` into `RUN_ROOT/<preset>` (or reuse a finished run
there with --reuse), then `evaluation.evaluate_checkpoint` on the whole valid split with the
preset's window length, and `baseline.evaluate_baseline` (interpolated Witten-Bell n-gram
fitted on the train split) over exactly the same windows. Prints a Markdown table.

    python scripts/train_table.py --threads 2                 # every preset but debug
    python scripts/train_table.py --presets melody_lstm --order 5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PRESETS = ["melody_rnn", "melody_lstm", "melody_transformer", "performance_lstm",
                   "performance_transformer"]


def run_preset(name: str, args) -> dict:
    from melodygen import checkpoint
    from melodygen.config import load_config
    from melodygen.baseline import evaluate_baseline
    from melodygen.evaluation import evaluate_checkpoint
    from melodygen.models import count_parameters
    from melodygen.training import train

    run_dir = Path(args.run_root) / name
    if not (args.reuse and (run_dir / "best.pt").is_file()):
        overrides = [f"training.threads={args.threads}", f"training.device={args.device}"]
        train(load_config(REPO / "configs" / f"{name}.toml", overrides), run_dir)
    model, _, ckpt = checkpoint.load_for_inference(run_dir / "best.pt")
    elapsed = checkpoint.load(run_dir / "last.pt")["scheduler"]["elapsed_s"]  # the whole run
    figures = evaluate_checkpoint(run_dir / "best.pt", device=args.device)
    data_dir = ckpt["run_config"]["data"]["dataset"]
    baseline = evaluate_baseline(data_dir, order=args.order, seq_len=figures["seq_len"])
    params = count_parameters(model)  # a tied embedding/head counts once, unlike the state_dict
    return {"preset": name, "params": params, "minutes": elapsed / 60, "model": figures,
            "baseline": baseline, "step": ckpt["step"]}


def print_table(rows: list[dict], order: int) -> None:
    print(f"| preset | params | train time | best step | val NLL (nats/event) | perplexity | accuracy "
          f"| {order}-gram NLL | {order}-gram ppl | {order}-gram acc | NLL below the n-gram |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        m, b = r["model"], r["baseline"]
        gain = b["nll"] - m["nll"]
        print(f"| {r['preset']} | {r['params']:,} | {r['minutes']:.1f} min | {r['step']} "
              f"| {m['nll']:.3f} | {m['perplexity']:.2f} | {100 * m['accuracy']:.1f}% "
              f"| {b['nll']:.3f} | {b['perplexity']:.2f} | {100 * b['accuracy']:.1f}% "
              f"| {gain:.3f} ({100 * gain / b['nll']:.0f}%) |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=DEFAULT_PRESETS)
    parser.add_argument("--run-root", default="runs/table")
    parser.add_argument("--order", type=int, default=5, help="n-gram order of the baseline")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 = default")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--reuse", action="store_true", help="score finished runs, do not retrain")
    args = parser.parse_args()
    rows = []
    for name in args.presets:
        rows.append(run_preset(name, args))
        print(f"{name}: done", file=sys.stderr, flush=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}; "
          f"all figures on the whole valid split, same windows for model and n-gram\n")
    print_table(rows, args.order)
    return 0


if __name__ == "__main__":
    sys.exit(main())
