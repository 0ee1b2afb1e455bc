"""Training throughput: melodygen's loop against a bare PyTorch loop, per shipped preset.

For each preset, in the same process and on the same device, with the same model, batch size
and sequence length:

  bare       random ids already in memory -> forward -> cross-entropy -> backward ->
             gradient clipping (when the preset clips) -> AdamW step. Nothing else.
  melodygen  `melodygen.training.train` on the preset's real (prepared, cached) dataset:
             window sampling with transposition, the lr schedule, loss read back every
             `log_every` steps, metrics.csv, and a checkpoint (last.pt) every log interval --
             more often than any preset does. Validation passes are not counted (the loop's
             own tokens/s excludes them); checkpoint writes are.

Both skip their first interval of steps (warm-up) and time the rest; each is run `--repeats`
times, alternating, and the best run of each is kept. melodygen should reach >= 0.9 of bare.

With `--variants`, each preset is instead trained once per variant (a list of `--set`-style
overrides joined by commas) with melodygen's loop for the same `--minutes` of wall time (the lr
decay follows the time used). The table gives the steps reached, training tokens/s (over the
whole run, and steady: after the first log interval) and the best validation NLL: what a
setting buys within an equal budget (issue 14: dropout; torch.compile, whose compile time is
inside the budget).

    python scripts/bench_train.py                          # every preset but debug, 60 steps
    python scripts/bench_train.py --presets melody_lstm --steps 100 --threads 2
    python scripts/bench_train.py --presets melody_transformer performance_transformer --threads 1 \
        --minutes 4 --variants model.dropout=0.1 model.dropout=0.0
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PRESETS = ["melody_rnn", "melody_lstm", "melody_transformer", "performance_lstm",
                   "performance_transformer"]
TARGET = 0.9


def bare_tokens_per_s(config, vocab_size: int, steps: int, warmup: int, device) -> float:
    """A minimal loop over random in-memory batches of the preset's shape."""
    from melodygen.devices import autocast
    from melodygen.models import build_model

    cfg = config.training
    torch.manual_seed(cfg.seed)
    model = build_model(config.model.kind, config.model.settings, vocab_size).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=cfg.betas,
                                  weight_decay=cfg.weight_decay)
    ids = torch.randint(3, vocab_size, (steps, cfg.batch_size, cfg.seq_len + 1), device=device)
    for i in range(steps):
        if i == warmup:
            _sync(device)
            started = time.perf_counter()
        with autocast(device):
            logits = model(ids[i, :, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1).float(), ids[i, :, 1:].flatten())
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    _sync(device)
    return (steps - warmup) * cfg.batch_size * cfg.seq_len / (time.perf_counter() - started)


def melodygen_tokens_per_s(config, steps: int, warmup: int, workdir: Path) -> float:
    """melodygen's loop, from its own per-interval tokens/s (first interval dropped)."""
    from melodygen.training import train

    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=workdir))
    config = config.replace(training={"max_steps": steps, "log_every": warmup, "eval_every": warmup,
                                      "eval_max_batches": 1, "max_minutes": 0.0, "grad_accum": 1})
    train(config, run_dir, resume=False, progress=False)
    return steady_tokens_per_s(run_dir)


def steady_tokens_per_s(run_dir: Path) -> float:
    """Tokens/s of a finished run after its first log interval (warm-up, compilation)."""
    with open(run_dir / "metrics.csv", newline="") as f:
        rates = [float(r["tokens_per_s"]) for r in csv.DictReader(f) if r["tokens_per_s"]][1:]
    # equal tokens per interval: the overall rate is the harmonic mean of the interval rates
    return len(rates) / sum(1.0 / r for r in rates) if rates else float("nan")


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_preset(name: str, args, workdir: Path) -> dict:
    from melodygen.config import load_config
    from melodygen.devices import resolve_device
    from melodygen.encodings import get_encoding
    from melodygen.models import build_model, count_parameters
    from melodygen.training.data import dataset_dir
    from melodygen.training.distributed import DistInfo

    overrides = [f"training.device={args.device}", f"training.threads={args.threads}"]
    config = load_config(REPO / "configs" / f"{name}.toml", overrides)
    encoding = get_encoding(config.encoding.name, **config.encoding.settings)
    directory, _ = dataset_dir(config, encoding, DistInfo(), progress=False)  # prepare once
    config = config.replace(data={"dataset": str(directory)})
    device = resolve_device(args.device)
    warmup = max(1, args.steps // 5)
    bare, ours = [], []
    for _ in range(args.repeats):
        bare.append(bare_tokens_per_s(config, encoding.vocab.size, args.steps, warmup, device))
        ours.append(melodygen_tokens_per_s(config, args.steps, warmup, workdir))
    params = count_parameters(build_model(config.model.kind, config.model.settings, encoding.vocab.size))
    return {"preset": name, "params": params, "bare": max(bare), "melodygen": max(ours)}


def variant_figures(name: str, variant: str, args, workdir: Path) -> dict:
    """Preset `name` with `variant`'s overrides, trained for `args.minutes` by melodygen's loop."""
    from melodygen.config import load_config
    from melodygen.training import train

    overrides = [f"training.device={args.device}", f"training.threads={args.threads}",
                 f"training.max_minutes={args.minutes}", "training.max_steps=1000000",
                 *(o for o in variant.split(",") if o)]
    config = load_config(REPO / "configs" / f"{name}.toml", overrides)
    started = time.perf_counter()
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=workdir))
    result = train(config, run_dir, progress=False)
    return {"steps": result.step, "tokens_per_s": result.tokens_per_s, "steady": steady_tokens_per_s(run_dir),
            "val_nll": result.best["nll"] if result.best else float("nan"),
            "wall_s": time.perf_counter() - started}


def run_variants(args) -> int:
    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads, "
          f"{args.minutes} min per run")
    print(f"{'preset':<26}{'variant':<34}{'steps':>7}{'tok/s':>9}{'steady':>9}{'val NLL':>9}{'wall s':>8}")
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.presets:
            for variant in args.variants:
                r = variant_figures(name, variant, args, Path(workdir))
                print(f"{name:<26}{variant:<34}{r['steps']:>7}{r['tokens_per_s']:>9,.0f}{r['steady']:>9,.0f}"
                      f"{r['val_nll']:>9.4f}{r['wall_s']:>8.0f}", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=DEFAULT_PRESETS)
    parser.add_argument("--steps", type=int, default=60, help="steps per measured run")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="0 = torch's default")
    parser.add_argument("--variants", nargs="+", default=None,
                        help="overrides per variant, e.g. model.dropout=0.0 (several: a,b); "
                             "trains each for --minutes instead of the bare comparison")
    parser.add_argument("--minutes", type=float, default=3.0, help="budget per variant run")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.variants:
        return run_variants(args)
    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads, "
          f"{args.steps} steps per run (first {max(1, args.steps // 5)} not timed), "
          f"best of {args.repeats}")
    print(f"{'preset':<26}{'params':>12}{'bare tok/s':>14}{'melodygen tok/s':>18}{'ratio':>8}")
    worst = float("inf")
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.presets:
            r = bench_preset(name, args, Path(workdir))
            ratio = r["melodygen"] / r["bare"]
            worst = min(worst, ratio)
            print(f"{name:<26}{r['params']:>12,}{r['bare']:>14,.0f}{r['melodygen']:>18,.0f}"
                  f"{ratio:>8.3f}", flush=True)
    verdict = "meets" if worst >= TARGET else "MISSES"
    print(f"lowest ratio {worst:.3f}: {verdict} the >= {TARGET} target")
    return 0 if worst >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
