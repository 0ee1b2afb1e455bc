"""The file job of sampling: a checkpoint and a `GenerationRequest` -> MIDI files in a folder.

Reads the primer (through `dataset.files`, like every MIDI reader), turns a length in events,
seconds or bars into the decoding loop's limits through the encoding's time contract
(`Encoding.time_per_id`), runs `decoding.sample` (or `beam.beam_search`) through the encoding's
grammar, decodes and writes each piece, and says why a piece holds less new music than asked for.
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from melodygen.dataset.profile import DataProfile, check_input, checkpoint_profile, resolve, stored_profile
from melodygen.encodings.base import BARS, BEATS, SECONDS
from melodygen.encodings.vocab import EOS_ID
from melodygen.errors import ConfigError, OutputError
from melodygen.limits import max_piece_events, piece_events_problem
from melodygen.sampling.beam import beam_search
from melodygen.sampling.decoding import Budget, DecodeSettings, sample
from melodygen.sampling.pieces import Piece
from melodygen.sampling.request import GenerationRequest

# Where time is counted in beats or seconds, `--bars` counts 4/4 bars at the requested tempo (an
# encoding that counts bars itself, `BARS`, writes them in its own meters).
BEATS_PER_BAR = 4
# Safety cap on events per second of requested music for an encoding whose events do not all
# move time forward: dense piano music stays far below it, an untrained model that never moves
# time forward still stops.
_MAX_EVENTS_PER_SECOND = 200
_MAX_EVENTS_PER_BAR = 1024  # the same for an encoding counting bars: a dense pop bar has ~400


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


def length_budget(encoding, request: GenerationRequest, qpm: float) -> tuple[int, Budget | None]:
    """(max events, budget) for the requested length in events, seconds or bars.

    Through the encoding's time contract: when every event advances the same amount of time (a
    grid, as melody's), the length is an exact number of events; otherwise each row stops once
    its ids' time adds up to the length (a `Budget`), with a cap of 200 events per second. Bars
    are 4/4 bars at `qpm`, except for an encoding that counts bars (`BARS`): there N bars (whole,
    and seconds as 4/4 bars at `qpm`) are N bar lines plus the one that closes the last bar.
    """
    if request.seconds is None and request.bars is None:
        return request.events or 512, None
    time = encoding.time_per_id()
    if time is None:
        raise ConfigError(f"the {encoding.name!r} encoding declares no musical time: give the "
                          "length in events (--length), not --seconds or --bars")
    if time.unit == BARS:
        if request.bars is not None and request.bars != int(request.bars):
            raise ConfigError(f"the {encoding.name!r} encoding writes whole bars: --bars {request.bars:g} "
                              "is not a whole number")
        bars = request.bars if request.bars is not None else math.ceil(request.seconds * qpm / 60 / BEATS_PER_BAR)
        limit = max(1, int(bars)) + 1
        return limit * _MAX_EVENTS_PER_BAR, Budget(time.amounts, limit, BARS)
    beats = request.bars * BEATS_PER_BAR if request.bars is not None else request.seconds * qpm / 60
    seconds = request.seconds if request.seconds is not None else beats * 60 / qpm
    limit = beats if time.unit == BEATS else seconds
    step = time.fixed_step(EOS_ID + 1)
    if step is not None:
        return max(1, round(limit / step)), None
    return max(64, math.ceil(seconds * _MAX_EVENTS_PER_SECOND)), Budget(time.amounts, limit, time.unit)


def read_primer(path: Path, encoding) -> tuple[list[int], float]:
    """(ids, first tempo in qpm) of a primer MIDI file in `encoding`; errors name the file."""
    from melodygen.dataset.files import read_file

    read = read_file(path, encoding, keep_score=True).raise_if_skipped("no usable primer")
    return [int(i) for i in read.ids], float(read.score.tempo_map.qpm[0])


def sample_to_midi(checkpoint: Path, out_dir: Path, request: GenerationRequest, device: str = "auto", *,
                   name: str = "sample", overwrite: bool = False, copy_check: bool = False) -> list[Piece]:
    """Load `checkpoint`, generate `request.n` pieces, write them into `out_dir` as
    `name_000.mid`, ... (`Piece.path` says where; an existing file is an error unless
    `overwrite`). Every bad request fails before the output folder is touched.
    `copy_check`: each piece's `copy_check` against the model's training data, from the pieces
    in memory (`stats.copies.check_pieces`)."""
    from melodygen.checkpoint import load_for_inference
    from melodygen.devices import resolve_device

    device = resolve_device(device)
    model, encoding, ckpt = load_for_inference(checkpoint, device)
    plan = plan_generation(encoding, request, device, ckpt.get("instruments"),
                           partial(checkpoint_profile, ckpt, encoding, str(checkpoint)),
                           partial(stored_profile, ckpt, encoding))
    plan = for_model(model, request, plan)
    paths = output_paths(out_dir, name, request.n, overwrite)
    pieces = generate_pieces(model, encoding, request, device, plan)
    for path, piece in zip(paths, pieces):
        piece.save(path)
    if copy_check:
        from melodygen.stats.copies import check_pieces

        check_pieces(pieces, encoding, ckpt["run_config"], str(checkpoint))
    return pieces


@dataclass(frozen=True)
class GenerationPlan:
    """What a request means for one encoding: its primer ids, tempo, length limits, the logit
    processors every row goes through (the grammar, set up for the request), the given music of
    an accompaniment or infilling, and the encoding's `Conditioning`, which finishes each row."""

    primer: list[int]
    qpm: float
    max_events: int
    budget: Budget | None
    processors: list
    conditioning: object
    given: object | None = None
    input_warning: str | None = None  # the primer or given music is far from the training data


def plan_generation(encoding, request: GenerationRequest, device="cpu",
                    instruments_seen: Collection[int] | None = None, profile=None,
                    stored_profile=None) -> GenerationPlan:
    """Check `request` against `encoding` (and the instruments the model trained on, the
    checkpoint's "instruments", where known), read its primer and set up its grammar; every
    problem is one error, raised before anything is generated or written. `profile`: what the
    model saw in training (a `dataset.profile.DataProfile`, or a function giving it, called only
    when the request gives music), for the warning about a primer or given music far from it and
    for `fit_velocities`; None: unknown, nothing said. `stored_profile`: a function giving the
    profile the checkpoint stores (None: none stored), the only source of the usual tracks and
    their ranges, so that music from nothing never waits for a dataset to be counted (a profile
    passed itself, not as a function, serves as both)."""
    if stored_profile is None and isinstance(profile, DataProfile):
        stored_profile = profile
    conditioning = encoding.conditioning(request, None if stored_profile is None else lambda: resolve(stored_profile))
    conditioning.check(instruments_seen)
    if request.accompany is not None or request.infill is not None:
        return _given_plan(encoding, request, conditioning, device, profile)
    primer, primer_qpm = read_primer(request.primer, encoding) if request.primer else ([], None)
    checked = check_input(primer, encoding, profile, request.primer and request.primer.name,
                          fit=request.fit_velocities)
    primer = conditioning.primer_ids(checked.ids)
    qpm = request.tempo or primer_qpm or 120.0
    max_events, budget = length_budget(encoding, request, qpm)
    ceiling = max_piece_events()
    if budget is None and max_events > ceiling:  # an exact number of events
        raise ConfigError(piece_events_problem(max_events, "the length asked for"))
    max_events = min(max_events, ceiling)  # a budget's safety cap
    if request.beam and budget is not None:
        raise ConfigError(f"beam search runs every sequence to a length in events: the {encoding.name!r} "
                          "encoding's --seconds/--bars are not one; give --length")
    rows = request.beam * request.branch if request.beam else request.n
    return GenerationPlan(primer, qpm, max_events, budget, conditioning.processors(primer, rows, device),
                          conditioning, input_warning=checked.warning)


def _given_plan(encoding, request: GenerationRequest, conditioning, device, profile) -> GenerationPlan:
    """Accompaniment (`accompany`) or infilling (`infill` bars of `primer`): the given music is
    forced through the grammar, the model writes the rest; rows end with the given music."""
    from melodygen.dataset.files import read_file

    source = request.accompany if request.accompany is not None else request.primer
    if source is None:
        raise ConfigError("--infill rewrites bars of the --primer piece: give --primer FILE")
    score = read_file(source, encoding, keep_score=True).raise_if_skipped("no usable music to work with").score
    given, processors, cap = conditioning.given(score, request.n, device)
    # the ids the model is given (the given tracks, not the blanks it is to fill); no --fit-velocities for them
    heard = given.ids[encoding.blank_of(given.ids) != given.ids] if getattr(given, "blanks", False) else given.ids
    warning = check_input(heard, encoding, profile, source.name, hint=False).warning
    ceiling = max_piece_events()
    if len(given.ids) > ceiling:
        time = encoding.time_per_id()
        length = f" ({time.amounts[given.ids].sum():g} {time.unit})" if time is not None else ""
        raise ConfigError(piece_events_problem(len(given.ids), f"{source}: its given music{length}"))
    return GenerationPlan([], float(score.tempo_map.qpm[0]), min(cap, ceiling), None, processors, conditioning,
                          given, warning)


NO_NOTES = "the model wrote no notes (only bar lines, silence or settings): sample again or lower --temperature"


def generate_pieces(model, encoding, request: GenerationRequest, device,
                    plan: GenerationPlan | None = None) -> list[Piece]:
    """`request.n` new pieces from a loaded `model` (eval mode, on `device`) and its
    `encoding`: the one generation path of `melodygen sample` and `melodygen.load(...).generate`."""
    request = request.seeded()
    plan = for_model(model, request, plan or plan_generation(encoding, request, device))
    rows, likelihoods = _generate(model, encoding, request, plan, device)
    given = _given(encoding, request, plan)
    finish = plan.conditioning.finish
    pieces = []
    for row, likelihood in zip(rows, likelihoods):
        score = finish(row, plan.primer, plan.qpm, plan.given)
        short = _shortfall(row, request, plan) or (None if score.note_count() else NO_NOTES)
        pieces.append(Piece(score, row, short, likelihood, given=given, input_warning=plan.input_warning))
    plan.conditioning.measure(pieces, plan.primer)
    if request.transpose:  # after the steering is measured: density does not move with the pitches
        for piece in pieces:
            piece.score = piece.score.transposed(request.transpose)
    return pieces


@dataclass(frozen=True)
class GivenPrimer:
    """A primer at the start of a piece, for the copy check to skip (`Piece.given`)."""

    encoding: object
    ids: tuple[int, ...]

    def given_mask(self, ids) -> np.ndarray:
        """Which of `ids` (the piece as the encoding reads it back) are the primer's: those that
        end within its time (multitrack: its header and bars, the last one whole though the model
        may complete it; performance: also notes struck the moment it ends). By time, not by
        comparing ids: where primer and continuation meet the ids may be spelled anew (one time
        shift where there were two), and a multitrack piece's KEY, measured over the whole piece,
        may change in the primer's bars too."""
        time = self.encoding.time_per_id()
        if time is None:  # no time declared: the primer's own number of ids
            return np.arange(len(ids)) < len(self.ids)
        amounts = np.asarray(time.amounts)
        end = amounts[list(self.ids)].sum() + 1e-9  # seconds summed in another order round apart
        return np.cumsum(amounts[np.asarray(ids, dtype=np.int64)]) <= end


def _given(encoding, request: GenerationRequest, plan: GenerationPlan) -> object:
    """What of each piece the user gave: the given music of an accompaniment or infilling, or
    the primer it starts with (none with --continuation-only, which leaves it out)."""
    if plan.given is not None:
        return plan.given
    return GivenPrimer(encoding, tuple(plan.primer)) if plan.primer and not request.continuation_only else None


BLANK_BARS = 8  # what a masked model writes from nothing without --bars


def for_model(model, request: GenerationRequest, plan: GenerationPlan) -> GenerationPlan:
    """The plan as `model` carries it out, checked before anything is written: a masked model
    fills blanks (`_blank_plan`), and blanks (an encoding's given music with blanks) need one."""
    if model.fills_blanks:
        return _blank_plan(request, plan)
    if getattr(plan.given, "blanks", False):
        raise ConfigError(f"{plan.conditioning.encoding.name}: --infill and --accompany fill blanks: they need a "
                          "masked model (kind = \"masked\")")
    return plan


def _blank_plan(request: GenerationRequest, plan: GenerationPlan) -> GenerationPlan:
    """A masked model's plan: its blanks are given (infilling, accompaniment), or are whole
    bars after the primer (`--bars`, else `BLANK_BARS`)."""
    if plan.given is not None:
        return plan
    if request.events is not None or request.seconds is not None or request.beam:
        raise ConfigError("a masked model fills whole bars of blanks: give --bars N (not --length, --seconds or "
                          "--beam), or --infill A-B / --accompany")
    given = plan.conditioning.blank_bars(plan.primer, math.ceil(request.bars) if request.bars else BLANK_BARS)
    ceiling = max_piece_events()
    if len(given.ids) > ceiling:
        raise ConfigError(piece_events_problem(len(given.ids), "the bars asked for"))
    return GenerationPlan([], plan.qpm, len(given.ids), None, [], plan.conditioning, given, plan.input_warning)


def _generate(model, encoding, request: GenerationRequest, plan: GenerationPlan,
              device) -> tuple[list[list[int]], list[float | None]]:
    """(new ids per piece, log-likelihood per piece or None): sampled, by beam search, or a
    masked model's blanks filled (`sampling.blanks`)."""
    generator = torch.Generator(device).manual_seed(request.seed)
    if getattr(plan.given, "blanks", False):
        from melodygen.sampling.blanks import fill

        rows = fill(model, encoding, plan.given.ids, rows=request.n, temperature=request.temperature,
                    top_k=request.top_k, top_p=request.top_p, generator=generator, device=device)
        return rows, [None] * len(rows)
    common = dict(max_events=plan.max_events, temperature=request.temperature, top_k=request.top_k,
                  top_p=request.top_p, primer_ids=plan.primer, generator=generator, device=device,
                  processors=plan.processors, source=None if plan.given is None else plan.given.source())
    if request.beam:
        kept = beam_search(model, encoding, beam_size=request.beam, branch_factor=request.branch,
                           steps_per_iteration=request.beam_steps, num_outputs=request.n, **common)
        return [k.ids for k in kept], [k.log_likelihood for k in kept]
    ends = request.allow_early_end or not request.has_length or plan.given is not None
    rows = sample(model, encoding, num_outputs=request.n, budget=plan.budget, stop_on_eos=ends,
                  settings=DecodeSettings.sampling(request.fast, request.draft), **common)
    return rows, [None] * len(rows)


def _shortfall(row: list[int], request: GenerationRequest, plan: GenerationPlan) -> str | None:
    """Why `row` holds less new music than `request` asked for (None if it holds it all)."""
    max_events, budget = plan.max_events, plan.budget
    if getattr(plan.given, "blanks", False):  # every blank filled: the piece is whole
        return None
    if plan.given is not None:
        return None if len(row) < max_events else (
            f"the cap of {max_events} events came before the given music ended: the written tracks "
            "stop there (the given ones are whole)")
    if budget is not None:
        spent = float(budget.costs[row].sum()) if row else 0.0
        if spent >= budget.limit:
            return None
        if budget.unit == BARS:  # the closing bar line is not a bar of music
            got = f"{max(0, int(spent) - 1)} of {int(budget.limit) - 1} new bars"
        else:
            unit = "s" if budget.unit == SECONDS else budget.unit
            got = f"{spent:.1f} of {budget.limit:.1f} {unit} of new music"
        if len(row) < max_events:
            return f"{got}: the model ended the piece (--allow-early-end)"
        return (f"{got}: the safety cap of {max_events} events was reached (the model hardly "
                "moves time forward)")
    if len(row) == max_events:
        return None
    if request.has_length:
        return f"{len(row)} of {max_events} new events: the model ended the piece (--allow-early-end)"
    if not row:
        return ("no new music: the model ended the piece at once; ask for a length "
                "(--length, --bars or --seconds) to get new music")
    return None
