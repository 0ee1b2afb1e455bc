"""Fast generation (issue 14): `sample` with the plain `model.step` against the fast path
(`melodygen.models.fast`), side by side in one run, per model kind at the shipped presets' sizes.

    python scripts/bench_fast.py                            # every preset below, batch 1 and 16
    python scripts/bench_fast.py --presets melody_lstm --tokens 128 --repeat 1   # a quick check
    python scripts/bench_fast.py --tokens 256 --repeat 7    # what docs/benchmarks.md records

Models are the presets' (configs/melody_*.toml: rnn, lstm, attention_lstm, transformer, music
transformer; gru at the lstm preset's sizes; the d512 x 8 Transformer of melody_transformer_gpu)
with random weights over the preset's encoding; EOS is disabled so every row runs to --tokens.
Per row: events/s of each path (the best of --repeat runs, alternating, after a warm-up: on a
shared machine the least disturbed run is the one to compare) and the speed-up; the time to the
first event and to a piece of `DecodeSettings().fast_min_events` (32) events, batch 1, on a model
never stepped fast before (best of 3; 32 events set the fast path up, its cost counted; a shorter
piece does not, so both paths take the same time to the first event); whether both paths drew
the same ids (same seed); the fast step's share of the compute and memory limits measured in this
run (bench_sample.py's helpers).
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch

from bench_sample import dense_weights, limit_shares, matmul_peak, read_rate, timed_sample
from melodygen.config import load_config
from melodygen.encodings import get_encoding
from melodygen.models import build_model
from melodygen.sampling.decoding import DecodeSettings

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
PRESETS = ["melody_rnn", "melody_lstm", "melody_lstm:gru", "melody_attention_lstm", "melody_transformer",
           "melody_music_transformer", "melody_transformer_gpu"]


def preset_model(name: str, device):
    """(label, model in eval mode, encoding) of preset `name` (`preset:kind` swaps the kind)."""
    preset, _, kind = name.partition(":")
    config = load_config(CONFIGS / f"{preset}.toml")
    encoding = get_encoding(config.encoding.name, **config.encoding.settings)
    torch.manual_seed(0)
    model = build_model(kind or config.model.kind, config.model.settings, encoding.vocab.size)
    return name, model.to(device).eval(), encoding


def cold_ms(model, encoding, tokens: int, device, fast: bool) -> float:
    """Milliseconds to `tokens` events of a copy of `model` no fast path was built for."""
    return 1e3 * timed_sample(copy.deepcopy(model), encoding, 1, tokens, device, fast)[1]


def bench(name: str, args, device, peak: float) -> None:
    """Prints the rows of preset `name`: one per batch size."""
    label, model, encoding = preset_model(name, device)
    weights = dense_weights(model)
    bandwidth = read_rate(4 * weights, device)
    # cold, best of 3: fast_min_events events set the fast path up (its cost counted), 1 does not
    first, short = ([min(cold_ms(model, encoding, events, device, fast) for _ in range(3)) for fast in (False, True)]
                    for events in (1, DecodeSettings().fast_min_events))
    for batch in args.batches:
        runs = {False: [], True: []}
        for fast in (False, True):
            timed_sample(model, encoding, batch, 8, device, fast)  # warm-up
        for _ in range(args.repeat):  # alternating, so a busier moment does not favour one path
            for fast in (False, True):
                runs[fast].append(timed_sample(model, encoding, batch, args.tokens, device, fast))
        ids = [runs[fast][0][0] for fast in (False, True)]
        rates = [batch * args.tokens / min(s for _, s in runs[fast]) for fast in (False, True)]
        step = batch / rates[1]
        compute, memory = limit_shares(weights, batch, step, peak, bandwidth)
        print(f"{label:<26} {weights / 1e6:>6.1f}M {batch:>5} {rates[0]:>9,.0f} {rates[1]:>9,.0f} "
              f"{rates[1] / rates[0]:>6.2f}x {'yes' if ids[0] == ids[1] else 'NO':>5} {step * 1e6:>8.0f} "
              f"{compute:>7.1%} {memory:>7.1%} {first[0]:>6.1f}/{first[1]:<6.1f} {short[0]:>6.0f}/{short[1]:<6.0f}",
              flush=True)


def main() -> None:
    """Parses the options and prints the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=PRESETS, help="config names; NAME:KIND swaps the kind")
    parser.add_argument("--tokens", type=int, default=512, help="events per row")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (the fastest counts)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    peak = matmul_peak(device)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {device}, {args.tokens} events per row, "
          f"best of {args.repeat}; fp32 matmul peak {peak / 1e9:.0f} GFLOP/s")
    print(f"{'preset':<26} {'dense':>7} {'batch':>5} {'plain/s':>9} {'fast/s':>9} {'gain':>7} {'same':>5} "
          f"{'fast us':>8} {'compute':>7} {'memory':>7} {'1st ms p/f':>13} {'32 ev ms p/f':>13}")
    for name in args.presets:
        bench(name, args, device, peak)


if __name__ == "__main__":
    main()
