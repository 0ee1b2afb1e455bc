"""Filling blanks with a masked model (`models.masked`): infilling, accompaniment and music from
nothing on the voices grid.

The ids hold blanks where music is to be written (`encodings.voices`: bars A..B of every voice,
the voices that are not given, or every cell of N new bars). They are filled in rounds, as
Coconet (Huang et al. 2017) rewrites a chorale in rounds, on MaskGIT's cosine schedule (Chang et
al. 2022), about `BLANKS_PER_ROUND` blanks kept per round: each round the model reads the window
with what is filled so far, a candidate is drawn for every blank left (temperature, top-k and
top-p as `sample`'s; only ids of the blank's own voice, and no hold where that voice is known to
rest just before, or at the piece's start), and a random share of them is kept, a cosine share
of all the blanks by the end of each round; the others are drawn again in the next round, with
more of the music around them known. Keeping the surest candidates first (MaskGIT's choice) kept
holds, the likeliest cells, and wrote 1.9 notes per beat where chorales have 4.2 (random: 4.1; 8
pieces of 8 bars from the bundled chorale-infiller). A hold kept before the cell it follows was
known, which then rests, becomes a rest at the end, so every filled piece decodes whole.

A piece longer than the model's window is filled window by window from the first blank on, each
window reaching a quarter of its length back and the rest forward, so that every blank reads
music on both sides of it.
"""

from __future__ import annotations

import math

import numpy as np
import torch

# Blanks kept per round, on average: the draws kept in one round are drawn independently, so
# fewer per round join up better (bars 3-4 of 20 held-out chorales, bundled chorale-infiller:
# the interval into the next bar 4.99 semitones at 8 per round, 4.40 at 4, 3.13 at 2, real 3.24;
# leaps over a fifth 30%, 19%, 7.5%, real 11%), at a model call per round (1.2, 2.3, 4.8 s a gap).
BLANKS_PER_ROUND = 2


def fill(model, encoding, ids, *, rows: int, temperature: float = 1.0, top_k: int | None = None,
         top_p: float | None = None, generator: torch.Generator | None = None, device="cpu",
         per_round: int = BLANKS_PER_ROUND) -> list[list[int]]:
    """`rows` fillings of the blanks of `ids` (the whole piece), each the whole piece's ids."""
    from melodygen.sampling.decoding import draw

    ids = np.asarray(ids, dtype=np.int64)
    todo = encoding.blank_of(ids) == ids
    written = todo.copy()
    cells = {name: torch.as_tensor(getattr(encoding.cells(), name), device=device)
             for name in ("voice", "blank", "rest", "hold")}
    x = torch.as_tensor(np.tile(ids, (rows, 1)), device=device)
    context = model.max_context
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            while todo.any():
                first = int(np.flatnonzero(todo)[0])
                lo = max(0, min(first - context // 4, len(ids) - context))
                hi = min(len(ids), lo + context)
                reach = hi if hi == len(ids) else lo + context * 3 // 4  # this window's blanks end here
                positions = torch.as_tensor(np.flatnonzero(todo[lo:reach]), device=device)
                _fill_window(model, x[:, lo:hi], positions, cells, encoding.settings.voices, per_round,
                             lambda logits: draw(logits, temperature, top_k, top_p, generator), generator, lo == 0)
                todo[lo:reach] = False
    finally:
        model.train(was_training)
    return [_held_only_where_sounding(row, written, cells, encoding.settings.voices) for row in x.tolist()]


def _held_only_where_sounding(row: list[int], written: np.ndarray, cells: dict, voices: int) -> list[int]:
    """`row` with each written hold whose voice does not sound (a rest, or nothing, before it)
    made a rest: a cell drawn before the one it follows was known can hold nothing."""
    voice_of, rest, hold = (cells[k].tolist() for k in ("voice", "rest", "hold"))
    sounding = [False] * voices
    rest_of = {}
    for i, token in enumerate(row):
        voice = voice_of[token]
        if voice < 0:
            continue
        if hold[token] and not sounding[voice] and written[i]:
            row[i] = rest_of.setdefault(voice, next(t for t, v in enumerate(voice_of) if v == voice and rest[t]))
            continue
        sounding[voice] = not rest[token] and (not hold[token] or sounding[voice])
    return row


def _fill_window(model, window, positions, cells: dict, voices: int, per_round: int, drawn_from, generator,
                 piece_start: bool) -> None:
    """Fill the blanks of `window` (rows, W), a view written in place, at `positions`, in rounds;
    `drawn_from(logits)`: an id per row of (N, V) logits (`sampling.decoding.draw`, the request's
    filters); `piece_start`: the window opens the piece (nothing sounds before its first cells)."""
    if not len(positions):
        return
    rows, count = window.shape[0], len(positions)
    voice = cells["voice"][window[0, positions]]  # each blank's voice
    allowed = (cells["voice"][None, :] == voice[:, None]) & ~cells["blank"][None, :]  # (count, V)
    done = torch.zeros(rows, count, dtype=torch.bool, device=window.device)
    steps = math.ceil(count / per_round)
    for r in range(steps):
        logits = model(window)[:, positions].float().masked_fill(~allowed[None], -math.inf)
        before, found = _cell_before(window, positions, voice, cells["voice"], voices)
        resting = cells["rest"][before] | (~found & piece_start)  # (rows, count): nothing sounds at the step before
        logits = logits.masked_fill(resting[..., None] & cells["hold"][None, None, :], -math.inf)
        drawn = drawn_from(logits.flatten(0, 1))
        # which blanks keep their draw: at random, not the surest first (that keeps holds, the
        # likeliest cells, and wrote a quarter of the chorales' notes per beat: 1.9 vs 4.1)
        order = torch.rand(rows, count, generator=generator, device=window.device).masked_fill(done, -1.0)
        target = count if r == steps - 1 else math.ceil(count * (1 - math.cos(math.pi / 2 * (r + 1) / steps)))
        take = target - int(done[0].sum())
        if take > 0:
            picked = torch.zeros_like(done).scatter_(1, torch.topk(order, take, dim=1).indices, True) & ~done
            window[:, positions] = torch.where(picked, drawn.view(rows, count), window[:, positions])
            done |= picked


def _cell_before(window, positions, voice, voice_of_id, voices: int) -> tuple[torch.Tensor, torch.Tensor]:
    """((rows, count) ids of each blank's voice one step earlier: `voices` ids back, one more
    across a bar line; whether there is one in the window)."""
    back, further = (positions - voices).clamp(min=0), (positions - voices - 1).clamp(min=0)
    same = (voice_of_id[window[:, back]] == voice[None, :]) & (positions >= voices)[None, :]
    beyond = (voice_of_id[window[:, further]] == voice[None, :]) & (positions > voices)[None, :]
    return torch.where(same, window[:, back], window[:, further]), same | beyond
