"""Sampling: a trained generator + its encoding -> new id sequences, one batch, incrementally.

`sample()` is the core loop every model kind shares. It feeds BOS + the primer once through
`model.step` (state=None), then one id per step with the carried state (RNN hidden state,
Transformer KV cache), so the prefix is never re-run. Each step:

    logits / temperature -> top-k -> top-p -> softmax -> one draw (as torch.multinomial's)

PAD and BOS are never drawn. EOS ends a row (the others continue) unless `stop_on_eos=False`,
in which case EOS is never drawn either and every row runs to its length. Past a Transformer's
`max_context`, the model's own KV cache slides (it keeps the most recent positions). A prefix
longer than the context is fed as its last `max_context - 1` ids (BOS and the primer's start
dropped), so one chunk never exceeds it; the output still holds the whole primer.

Lengths in events, seconds or bars become a `Budget`: each id costs some amount of musical
time (`id_time_costs`) and a row stops once its total reaches the limit.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from melodygen import devices
from melodygen.encodings.vocab import BOS_ID, EOS_ID, PAD_ID
from melodygen.errors import CheckpointError, ConfigError, OutputError


# Safety cap on performance events per requested second: dense piano music stays far below it,
# an untrained model that never emits TIME_SHIFT still stops.
_MAX_EVENTS_PER_SECOND = 200


@dataclass(frozen=True)
class Budget:
    """A per-row stop condition: id `i` costs `costs[i]`; a row stops once its sum >= `limit`."""

    costs: np.ndarray  # (V,) float
    limit: float


def filter_logits(
    logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None
) -> torch.Tensor:
    """(B, V) logits -> (logits - their max) / temperature with the ids outside top-k and top-p
    set to -inf (the shift leaves the softmax as it is).

    Top-k keeps the k largest logits (ties at the k-th value are kept). Top-p (nucleus) then
    keeps the smallest set of most likely ids whose probability sums to >= top_p, plus the ids
    tied with the least likely of them (which of equal ids a sort puts first is arbitrary);
    the most likely id always survives.
    """
    if not 0 < temperature < math.inf:  # inf or nan would make every probability NaN
        raise ConfigError(f"temperature must be a finite number > 0, got {temperature}")
    # Shifted before dividing: a tiny temperature then sends the other logits to -inf instead
    # of the largest to +inf (3.0 / 1e-40 overflows float32; softmax of +inf is NaN).
    logits = (logits - logits.amax(dim=-1, keepdim=True)) / temperature
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p is not None and top_p < 1.0:
        sorted_logits = torch.sort(logits, dim=-1, descending=True).values
        probs = torch.softmax(sorted_logits, dim=-1)
        mass_before = torch.cumsum(probs, dim=-1) - probs
        least_kept = sorted_logits.masked_fill(mass_before >= top_p, math.inf).amin(dim=-1, keepdim=True)
        logits = logits.masked_fill(logits < least_kept, -math.inf)
    return logits


def draw(logits: torch.Tensor, banned: torch.Tensor, temperature: float, top_k: int | None,
         top_p: float | None, generator: torch.Generator | None) -> torch.Tensor:
    """One id per row (B,) from (B, V) logits: `banned` ids (V,) masked, then filtered, then drawn.

    The draw is `torch.multinomial(probs, 1, generator=generator)`'s own: argmax of probs over
    Exp(1) noise, the same random numbers, the same ids. Its checks of `probs` are left out
    (~10 small ops and two host syncs per draw: 6 us of 15 at batch 1 on CPU, a stall per step
    on a GPU); the softmax of filtered finite logits always passes them, and `sample` checks
    the model's first logits."""
    logits = logits.float().masked_fill(banned, -math.inf)
    probs = torch.softmax(filter_logits(logits, temperature, top_k, top_p), dim=-1)
    noise = torch.empty_like(probs).exponential_(generator=generator)
    return (probs / noise).argmax(dim=-1)


def _prefix(primer_ids: Sequence[int], num_outputs: int, max_context: int | None, device) -> torch.Tensor:
    """(B, T') ids fed before the first draw: BOS + primer, cut to the model's context."""
    ids = [BOS_ID, *(int(i) for i in primer_ids)]
    if max_context is not None and len(ids) > max_context - 1:
        ids = ids[-(max_context - 1):]
    return torch.tensor([ids] * num_outputs, dtype=torch.long, device=device)


def sample(
    model,
    encoding,
    *,
    num_outputs: int = 1,
    max_events: int = 512,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    primer_ids: Sequence[int] = (),
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
    stop_on_eos: bool = True,
    budget: Budget | None = None,
) -> list[list[int]]:
    """Generate `num_outputs` continuations of BOS + `primer_ids` together as one batch.

    Returns one list of new ids per output: the continuation only (no BOS, no primer, no EOS),
    at most `max_events` long, shorter where the row drew EOS or spent its `budget`.
    `generator` (on `device`) makes the draw reproducible bit-for-bit; None uses torch's global RNG.
    """
    vocab_size = encoding.vocab.size
    banned = torch.zeros(vocab_size, dtype=torch.bool, device=device)
    banned[[PAD_ID, BOS_ID]] = True
    if not stop_on_eos:
        banned[EOS_ID] = True
    dtype = devices.accumulator_dtype(device)
    costs = torch.as_tensor(budget.costs, dtype=dtype, device=device) if budget else None
    spent = torch.zeros(num_outputs, dtype=dtype, device=device)
    done = torch.zeros(num_outputs, dtype=torch.bool, device=device)
    drawn = []  # one (B,) tensor per step: memory follows what is generated, not max_events
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            logits, state = model.step(_prefix(primer_ids, num_outputs, model.max_context, device), None)
            if not bool((logits[:, -1] < math.inf).all()):  # NaN or +inf; -inf is a valid 'never'
                raise CheckpointError("the model gives NaN or infinite logits: its weights are damaged "
                                      "or its training diverged")
            for t in range(max_events):
                ids = draw(logits[:, -1], banned, temperature, top_k, top_p, generator)
                ids = ids.masked_fill(done, PAD_ID)
                drawn.append(ids)
                done |= ids == EOS_ID
                if costs is not None:
                    spent += costs[ids]
                    done |= spent >= budget.limit
                if t + 1 == max_events or bool(done.all()):
                    break
                logits, state = model.step(ids[:, None], state)
    finally:
        model.train(was_training)
    rows = torch.stack(drawn, dim=1).tolist() if drawn else [[] for _ in range(num_outputs)]
    return [[i for i in row if i > EOS_ID] for row in rows]


@dataclass(frozen=True)
class SampleRequest:
    """What `melodygen sample` asks for. At most one of `events`, `seconds`, `bars` is set.

    A given length is the amount of new music each piece gets: end-of-piece is not drawn
    before it unless `allow_early_end`. With none, a piece ends where the model ends it, after
    at most 512 events. `qpm=None` takes the primer's first tempo, else 120."""

    num_outputs: int = 1
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    events: int | None = None
    seconds: float | None = None
    bars: float | None = None
    primer: Path | None = None
    continuation_only: bool = False
    seed: int = 0
    qpm: float | None = None
    program: int = 0
    name: str = "sample"
    overwrite: bool = False
    allow_early_end: bool = False  # with a length: the model may still end a piece before it

    @property
    def has_length(self) -> bool:
        return not (self.events is None and self.seconds is None and self.bars is None)


@dataclass(frozen=True)
class SampleResult:
    """One written file and what is in it."""

    path: Path
    notes: int
    seconds: float
    pitch_range: tuple[int, int] | None
    generated: int
    shortfall: str | None = None  # why the piece has less new music than asked, if it has


def output_paths(out_dir: Path, name: str, count: int, overwrite: bool) -> list[Path]:
    """`out_dir/<name>_000.mid`, `_001`, ...; `OutputError` naming the first that exists
    unless `overwrite`, or when `out_dir` cannot be created or written."""
    paths = [out_dir / f"{name}_{i:03d}.mid" for i in range(count)]
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        raise OutputError(f"{existing[0]}: already exists; pass --overwrite or choose another --out")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out_dir}: cannot create the output folder ({exc.strerror})") from None
    if not os.access(out_dir, os.W_OK):
        raise OutputError(f"{out_dir}: output folder is not writable")
    return paths


def length_budget(encoding, request: SampleRequest, qpm: float) -> tuple[int, Budget | None]:
    """(max events, budget) for the requested length in events, seconds or 4/4 bars.

    Melody: one event per grid step, so seconds and bars become a number of events at `qpm`.
    Performance: a row stops once its TIME_SHIFTs add up to the seconds (bars at `qpm`), with
    a cap of 200 events per second for a model that never moves time forward.
    """
    if request.seconds is None and request.bars is None:
        return request.events or 512, None
    seconds = request.seconds if request.seconds is not None else request.bars * 4 * 60 / qpm
    if encoding.name == "melody":
        steps_per_second = qpm / 60 * encoding.settings.steps_per_quarter
        return max(1, round(seconds * steps_per_second)), None
    if encoding.name == "performance":
        costs = np.zeros(encoding.vocab.size)  # seconds each id moves time forward
        shifts, first = encoding.vocab.range("TIME_SHIFT"), encoding.vocab.offset("TIME_SHIFT")
        steps = np.arange(shifts.lo, shifts.hi + 1)
        costs[first:first + shifts.size] = steps / encoding.settings.steps_per_second
        return max(64, math.ceil(seconds * _MAX_EVENTS_PER_SECOND)), Budget(costs, seconds)
    raise ConfigError(f"--seconds/--bars do not know the {encoding.name!r} encoding; use --length")


def read_primer(path: Path, encoding) -> tuple[list[int], float]:
    """(ids, first tempo in qpm) of a primer MIDI file in `encoding`; errors name the file."""
    from melodygen.encodings import encode_midi_file

    ids, score = encode_midi_file(path, encoding, "no usable primer")
    return [int(i) for i in ids], float(score.tempo_map.qpm[0])


def sample_to_midi(checkpoint: Path, out_dir: Path, request: SampleRequest,
                   device: str = "auto") -> list[SampleResult]:
    """Load `checkpoint`, generate `request.num_outputs` pieces, write them into `out_dir`."""
    from melodygen.checkpoint import load_for_inference
    from melodygen.devices import resolve_device
    from melodygen.midi_io import write_midi

    device = resolve_device(device)
    model, encoding, _ = load_for_inference(checkpoint, device)
    primer, primer_qpm = read_primer(request.primer, encoding) if request.primer else ([], None)
    paths = output_paths(out_dir, request.name, request.num_outputs, request.overwrite)
    qpm = request.qpm or primer_qpm or 120.0
    max_events, budget = length_budget(encoding, request, qpm)
    rows = sample(model, encoding, num_outputs=request.num_outputs, max_events=max_events,
                  temperature=request.temperature, top_k=request.top_k, top_p=request.top_p,
                  primer_ids=primer, generator=torch.Generator(device).manual_seed(request.seed),
                  device=device, budget=budget,
                  stop_on_eos=request.allow_early_end or not request.has_length)
    results = []
    for path, row in zip(paths, rows):
        shortfall = _shortfall(row, request, max_events, budget)
        notes = encoding.decode(row if request.continuation_only else primer + row, qpm=qpm)
        write_midi(notes, path, qpm=qpm, program=request.program,
                   track_name=f"melodygen {encoding.name} t={request.temperature:g}")
        pitches = (min(n.pitch for n in notes), max(n.pitch for n in notes)) if notes else None
        end = max((n.end for n in notes), default=0.0)
        results.append(SampleResult(path, len(notes), end, pitches, len(row), shortfall))
    return results


def _shortfall(row: list[int], request: SampleRequest, max_events: int,
               budget: Budget | None) -> str | None:
    """Why `row` holds less new music than `request` asked for (None if it holds it all)."""
    if budget is not None:
        spent = float(budget.costs[row].sum()) if row else 0.0
        if spent >= budget.limit:
            return None
        if len(row) < max_events:
            return (f"{spent:.1f} of {budget.limit:.1f} s of new music: the model ended the piece "
                    "(--allow-early-end)")
        return (f"{spent:.1f} of {budget.limit:.1f} s of new music: the safety cap of {max_events} "
                "events was reached (the model hardly moves time forward)")
    if len(row) == max_events:
        return None
    if request.has_length:
        return f"{len(row)} of {max_events} new events: the model ended the piece (--allow-early-end)"
    if not row:
        return ("no new music: the model ended the piece at once; ask for a length "
                "(--length, --bars or --seconds) to get new music")
    return None
