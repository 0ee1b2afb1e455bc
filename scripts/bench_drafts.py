"""Drafted decoding (issue 14): one piece at a time from the bundled models, as `sample` makes
it, through the plain step, the fast step alone, and the fast step with drafted ids, side by
side in one run (the LSTM has no drafting: its two fast columns are the same path).

    python scripts/bench_drafts.py                      # every bundled model, 3 seeds
    python scripts/bench_drafts.py --models folk-band --seeds 1 --repeat 1   # a quick check
    python scripts/bench_drafts.py --bare 1024          # the decoding loop alone: no grammar

Each model samples with its model card's settings (temperature, top-p, bars), one piece per
seed as `Model.generate` draws it (`plan_generation`: primer, length and grammar, then
`decoding.sample` as `sampling.files` calls it), with each path's `DecodeSettings` passed as a
value; the ids are not decoded to notes. Per seed and path the fastest of --repeat runs counts
(paths alternate, so a busier moment favours none); a figure is the seeds' events over the sum
of those times. Also: whether
the three paths drew the same ids, model calls per event with drafts (ids per call), and the
time spent in the grammar and the draw per event (what drafting cannot shorten). Every drafted
piece starts without measured times (`drafts.CallTimes`), as the first piece of a `sample` run does.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import melodygen
from melodygen.models import fast as fast_module
from melodygen.pretrained import PRETRAINED_DIR
from melodygen.sampling import decoding, drafts
from melodygen.sampling.decoding import DecodeSettings, sample
from melodygen.sampling.files import plan_generation
from melodygen.sampling.request import GenerationRequest

PATHS = ("plain", "fast", "drafted")
CARDS = {m["name"]: m for m in json.loads((PRETRAINED_DIR / "index.json").read_text())["models"]}


class Calls:
    """Counts model calls of the fast Transformer step, and the time spent drawing ids (the
    logit processors, i.e. the grammar, and the draw: `decoding.Drawer`)."""

    def __init__(self):
        self.calls = 0
        self.draw_seconds = 0.0
        for name in ("one", "many"):
            self._wrap_step(name)
        drawer = decoding.Drawer.__call__

        def timed(*args):
            start = time.perf_counter()
            result = drawer(*args)
            self.draw_seconds += time.perf_counter() - start
            return result

        decoding.Drawer.__call__ = timed

    def _wrap_step(self, name: str) -> None:
        original = getattr(fast_module._TransformerStepper, name)

        def counted(stepper, ids, cache):
            self.calls += 1
            return original(stepper, ids, cache)

        setattr(fast_module._TransformerStepper, name, counted)


def run(model, settings: dict, seed: int, path: str, args) -> tuple[list[int], float]:
    """(ids, seconds) of one piece; with --bare, `sample` itself: --bare events, no grammar, no end."""
    decode = DecodeSettings(fast=path != "plain", draft_length=args.draft_length if path == "drafted" else 0)
    drafts._TIMES.clear()  # each piece measures anew, as the first piece of a `sample` run does
    start = time.perf_counter()
    common = dict(temperature=settings.get("temperature", 1.0), top_p=settings.get("top_p"),
                  generator=torch.Generator().manual_seed(seed), settings=decode)
    if args.bare:
        ids = sample(model.model, model.encoding, max_events=args.bare, stop_on_eos=False, **common)[0]
    else:  # a length and no early end: EOS banned, as in `sampling.files._generate`
        plan = plan_generation(model.encoding, GenerationRequest.build(seed=seed, **settings), model.device)
        ids = sample(model.model, model.encoding, max_events=plan.max_events, budget=plan.budget, stop_on_eos=False,
                     primer_ids=plan.primer, processors=plan.processors, device=model.device, **common)[0]
    return ids, time.perf_counter() - start


def bench(name: str, args, calls: Calls) -> None:
    """Prints the row of bundled model `name`."""
    card = CARDS[name]
    model = melodygen.load(name)
    settings = dict(card["sampling"])
    model.generate(n=1, seed=0, events=40)  # builds the fast step
    best = {path: {} for path in PATHS}
    ids = {path: {} for path in PATHS}
    for _ in range(args.repeat):
        for seed in args.seeds:
            for path in PATHS:
                ids[path][seed], seconds = run(model, settings, seed, path, args)
                best[path][seed] = min(best[path].get(seed, float("inf")), seconds)
    events = sum(len(ids["plain"][s]) for s in args.seeds)
    rates = {path: events / sum(best[path].values()) for path in PATHS}
    calls.calls, calls.draw_seconds = 0, 0.0
    for seed in args.seeds:
        run(model, settings, seed, "drafted", args)
    draw_ms = 1e3 * calls.draw_seconds / events
    per_call = f"{events / calls.calls:.2f}" if calls.calls else "-"  # counted for the Transformer's step
    same = all(ids[path] == ids["plain"] for path in PATHS)
    print(f"{name:<11} {card['kind']:<11} {events:>6} {rates['plain']:>8,.0f} {rates['fast']:>8,.0f} "
          f"{rates['drafted']:>8,.0f} {rates['fast'] / rates['plain']:>6.2f}x "
          f"{rates['drafted'] / rates['plain']:>6.2f}x "
          f"{rates['drafted'] / rates['fast']:>6.2f}x {per_call:>8} {draw_ms:>8.3f} "
          f"{'yes' if same else 'NO':>5}", flush=True)


def main() -> None:
    """Parses the options and prints the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(CARDS), choices=list(CARDS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--repeat", type=int, default=3, help="runs per seed and path (the fastest counts)")
    parser.add_argument("--draft-length", type=int, default=decoding.DRAFT_LENGTH)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--bare", type=int, default=0, metavar="EVENTS",
                        help="time `sample` alone for EVENTS events per piece: no grammar, no end (the model's path)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    calls = Calls()
    what = (f"sample() alone, {args.bare} events, no grammar" if args.bare
            else "Model.generate's decoding, the card's settings")
    print(f"torch {torch.__version__}, {args.threads} thread(s), CPU, {what}, seeds {args.seeds}, best of "
          f"{args.repeat}, at most {args.draft_length} drafted ids per call")
    print(f"{'model':<11} {'kind':<11} {'events':>6} {'plain/s':>8} {'fast/s':>8} {'drafted':>8} {'fast':>7} "
          f"{'drafted':>7} {'d/fast':>7} {'ids/call':>8} {'draw ms':>8} {'same':>5}")
    for name in args.models:
        bench(name, args, calls)


if __name__ == "__main__":
    main()
