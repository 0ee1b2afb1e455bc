"""Sampling speed: tokens/s of `melodygen.sampling.decoding.sample` for each model kind at batch 1 and 16,
and, for the Transformer, the KV-cached path against re-running the whole prefix at every step,
in the same run.

    python scripts/bench_sample.py                       # 1024 tokens, default model settings
    python scripts/bench_sample.py --tokens 64 --kinds lstm transformer   # a quick check
    python scripts/bench_sample.py --repeat 5 --no-uncached   # cached paths only, median of 5
    python scripts/bench_sample.py --no-fast             # the plain model.step (issue 14: bench_fast.py
                                                         # puts both side by side)
    python scripts/bench_sample.py --kinds transformer --positions relative --max-context 1024 --batches 1
                                                         # Music Transformer's cache at 1024 events

Models are built with their default settings (random weights: speed does not depend on them)
over the performance vocabulary (391 ids). EOS is disabled so every row runs to --tokens.
Run on a quiet machine; --threads sets torch's intra-op threads (default 1). Each figure is
the median of --repeat runs (default 3; the uncached path, slow, runs once).

Each cached row also says how close a step comes to the machine's two limits, measured in the
same run: compute (the step's matmul FLOPs, about 2 x dense weights x batch, at the peak of a
large fp32 matmul) and memory (the step's fp32 weights read once, at the rate this machine copies
a buffer of that size: from cache for a small model, from DRAM for a large one). A step far from
both is bound by per-op overhead; near the memory limit, only fewer or smaller weights (or a
larger batch) can make it faster.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from melodygen.encodings import get_encoding
from melodygen.encodings.vocab import BOS_ID, EOS_ID, PAD_ID
from melodygen.models import MODELS, build_model
from melodygen.sampling.decoding import DecodeSettings, draw, sample
from melodygen.sampling.processors import BanIds


def timed_sample(model, encoding, batch: int, tokens: int, device, fast: bool = True) -> tuple[list, float]:
    """(the ids `sample` draws with seed 0, every row running to `tokens`; seconds it took)."""
    start = time.perf_counter()
    rows = sample(model, encoding, num_outputs=batch, max_events=tokens, stop_on_eos=False,
                  generator=torch.Generator(device).manual_seed(0), device=device, settings=DecodeSettings(fast=fast))
    return rows, time.perf_counter() - start


def cached_tokens_per_s(model, encoding, batch: int, tokens: int, device, fast: bool = True) -> float:
    return batch * tokens / timed_sample(model, encoding, batch, tokens, device, fast)[1]


def uncached_tokens_per_s(model, batch: int, tokens: int, device) -> float:
    """The naive loop: a full forward pass over the (context-limited) prefix for every new id."""
    generator = torch.Generator(device).manual_seed(0)
    ids = torch.full((batch, 1), BOS_ID, dtype=torch.long, device=device)
    context = model.max_context or tokens + 1
    ban = BanIds([PAD_ID, BOS_ID, EOS_ID], model.vocab_size, device)  # as sample(stop_on_eos=False)
    start = time.perf_counter()
    with torch.inference_mode():
        for _ in range(tokens):
            new = draw(ban(model(ids[:, -context:])[:, -1], None), 1.0, None, None, generator)
            ids = torch.cat([ids, new[:, None]], dim=1)
    return batch * tokens / (time.perf_counter() - start)


def matmul_peak(device) -> float:
    """fp32 matmul FLOP/s of `device`, measured on 1024 x 1024 x 1024."""
    a = torch.randn(1024, 1024, device=device)
    return _best_rate(lambda: a @ a, 2 * 1024**3, device)


def read_rate(nbytes: int, device) -> float:
    """Bytes/s at which `device` reads a buffer of `nbytes` it has just touched (a copy into a
    buffer of the same size, counting the bytes read and written; into an existing one: a clone
    of a large buffer mostly timed the kernel mapping fresh pages, and on a busy machine put the
    memory limit below what a sampling step reached)."""
    buffer = torch.ones(max(nbytes // 4, 1), device=device)
    target = torch.empty_like(buffer)
    return _best_rate(lambda: target.copy_(buffer), 2 * buffer.numel() * 4, device)


def limit_shares(weights: int, batch: int, step_s: float, peak: float, bandwidth: float) -> tuple[float, float]:
    """(compute, memory): the share of each limit a step of `step_s` seconds reaches, for a model
    of `weights` dense fp32 weights at `batch` rows (module docstring)."""
    return 2 * weights * batch / peak / step_s, 4 * weights / bandwidth / step_s


def _best_rate(work, amount: float, device, runs: int = 5) -> float:
    work()
    best = float("inf")
    for _ in range(runs):
        _sync(device)
        start = time.perf_counter()
        work()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return amount / best


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def dense_weights(model) -> int:
    """Weights a step multiplies by (embedding tables are looked up, not multiplied)."""
    return sum(p.numel() for m in model.modules() if not isinstance(m, torch.nn.Embedding)
               for p in m.parameters(recurse=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--kinds", nargs="+", default=sorted(MODELS), choices=sorted(MODELS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=3, help="runs per cached figure (median)")
    parser.add_argument("--positions", default=None, choices=["rope", "relative", "learned"],
                        help="the Transformer's positions [default: its default, rope]")
    parser.add_argument("--max-context", type=int, default=None, help="the Transformer's context")
    parser.add_argument("--no-fast", action="store_true", help="DecodeSettings(fast=False): the plain model.step")
    parser.add_argument("--no-uncached", action="store_true",
                        help="skip the Transformer's re-run-the-prefix path (slow at batch 16)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    encoding = get_encoding("performance")
    print(f"torch {torch.__version__}, {args.threads} thread(s), {device}, {args.tokens} tokens per row")
    peak = matmul_peak(device)
    print(f"measured fp32 matmul peak: {peak / 1e9:.0f} GFLOP/s; compute/memory: share of each limit a step reaches")
    print(f"{'model':<14} {'batch':>5} {'path':<9} {'tokens/s':>10} {'us/step':>9} {'compute':>8} {'memory':>8}")
    for kind in args.kinds:
        torch.manual_seed(0)
        settings = {} if kind != "transformer" else {
            k: v for k, v in (("positions", args.positions), ("max_context", args.max_context)) if v is not None}
        model = build_model(kind, settings, encoding.vocab.size).to(device).eval()
        cached_tokens_per_s(model, encoding, 1, 8, device, not args.no_fast)  # warm-up: first-call allocations
        weights = dense_weights(model)
        bandwidth = read_rate(4 * weights, device)
        for batch in args.batches:
            cached = statistics.median(cached_tokens_per_s(model, encoding, batch, args.tokens, device,
                                                           not args.no_fast)
                                       for _ in range(args.repeat))
            step = batch / cached  # seconds per step of the whole batch
            compute, memory = limit_shares(weights, batch, step, peak, bandwidth)
            print(f"{kind:<14} {batch:>5} {'cached':<9} {cached:>10.0f} {step * 1e6:>9.0f} {compute:>8.1%} "
                  f"{memory:>8.1%}", flush=True)
            if kind == "transformer" and not args.no_uncached:
                naive = uncached_tokens_per_s(model, batch, args.tokens, device)
                print(f"{kind:<14} {batch:>5} {'uncached':<9} {naive:>10.0f}   cache speed-up {cached / naive:.1f}x")


if __name__ == "__main__":
    main()
