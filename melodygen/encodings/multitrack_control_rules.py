"""The grammar part of the multitrack controls (`multitrack_controls`): what a request steers.

Requested controls are forced where their tokens go (`KEY`, and `CHORD` and `DENSITY` from the
request's lists, in each new bar, the lists repeating; a chord None is any chord, the model's
choice, as between a cadence's tonic chords, `ControlRequest.with_cadence`); the kinds not requested are banned, so
the model writes as it learned to with that control dropped (but a kind left `free`: chords that
follow a form plan); a bar's head keeps its order up to
the next requested control, so a forced token cannot be skipped. With strict density, each new
bar's note count is held within `DENSITY_TOLERANCE` of the request. (The request's
conditioning, `encodings.conditioning`, has checked that the model has the controls asked for.)
"""

from __future__ import annotations

import torch

from melodygen.encodings.controls import DENSITY_TOLERANCE, ControlRequest
from melodygen.encodings.multitrack_controls import density_bins
from melodygen.encodings.multitrack_grammar import (
    AFTER_HEAD,
    BAR_NOTES_FIELD,
    BIG,
    HEAD,
    HEAD_PLACE,
    NEW_BARS_FIELD,
    GrammarPart,
    new_bar,
)


class ControlRules(GrammarPart):
    """Forced, banned and held controls for one request (module docstring)."""

    def __init__(self, encoding, request: ControlRequest | None, device="cpu", free: tuple[str, ...] = ()):
        """`free`: kinds (token names) not requested that are left to the model instead of banned
        (chords that follow a form plan: `multitrack_form.FormChords`)."""
        request = request or ControlRequest()
        present = {r.name for r in encoding.vocab.ranges}
        key = None if request.key is None else [request.key]
        chords = None if request.chords is None else list(request.chords)
        density = None if request.density is None else [int(d) for d in density_bins(request.density)]
        self.steered = [(name, wanted) for name, wanted in (("KEY", key), ("CHORD", chords), ("DENSITY", density))
                        if name in present and (wanted is not None or name not in free)]
        # the requested values, bar after bar: per control its bounds (value - 1, -(value + 1); for
        # None, bounds every value meets) in one flat table, and where its list starts in it and how long it is
        self.forced = [(name, wanted) for name, wanted in self.steered if wanted is not None]
        lengths = [len(wanted) for _, wanted in self.forced]
        starts = [sum(lengths[:i]) for i in range(len(lengths))]
        self.forced_bounds = torch.tensor([[-1, -BIG] if v is None else [v - 1, -(v + 1)]
                                           for _, wanted in self.forced for v in wanted],
                                          dtype=torch.long, device=device).reshape(-1, 2)
        self.forced_lengths = torch.tensor(lengths, dtype=torch.long, device=device)
        self.forced_starts = torch.tensor(starts, dtype=torch.long, device=device)
        counts = torch.tensor(request.density or (0,), dtype=torch.float64)
        self.fewest = torch.ceil(counts * (1 - DENSITY_TOLERANCE) - 1e-9).long().to(device)
        self.most = torch.floor(counts * (1 + DENSITY_TOLERANCE) + 1e-9).long().to(device)
        self.strict = bool(self.steered) and request.strict_density and request.density is not None
        self.device = device

    def restrict_rules(self, allowed, grammar) -> None:
        """Kinds not requested never; a bar's head in order up to the next requested control."""
        if not self.steered:
            return
        for name, wanted in self.steered:
            if wanted is None:
                allowed[:, :, grammar.block[name][0]:grammar.block[name][1]] = False
        required = [HEAD.index(name) for name, _ in self.forced]
        id_place = torch.full((grammar.vocab_size,), AFTER_HEAD, dtype=torch.long)
        for head_place, name in enumerate(HEAD):
            if name in grammar.block and name != "BAR":  # a bar line closes the head: it comes after it
                id_place[grammar.block[name][0]:grammar.block[name][1]] = head_place
        for phase, head_place in HEAD_PLACE.items():
            need = min([r for r in required if r > head_place], default=AFTER_HEAD)
            allowed[phase] &= id_place <= need
        if self.strict:
            if "REPEAT" in grammar.block:  # a repeated bar's notes are not counted as they come
                allowed[:, :, grammar.block["REPEAT"][0]:grammar.block["REPEAT"][1]] = False
            self.note_ids = grammar.ids_of("POS", "TRACK", "PITCH", "DRUM").to(self.device)
            eos = torch.arange(grammar.vocab_size, device=self.device) == grammar.eos
            self.closing_ids = grammar.ids_of("BAR").to(self.device) | eos
            self.bar_id = grammar.block["BAR"][0]

    def bounds(self, grammar):
        """The requested value alone: `value - 1 < place` and `-(value + 1) < -place`."""
        place = grammar.place_of
        return [bound for i, (name, _) in enumerate(self.forced)
                for bound in ((0, name, 2 * i, place), (1, name, 2 * i + 1, -place))]

    def thresholds(self, state):
        """The requested controls' bounds for each row's bar."""
        if not self.forced:
            return None
        at = _bar(state)[:, None] % self.forced_lengths + self.forced_starts
        return self.forced_bounds.index_select(0, at.view(-1)).view(len(state), -1)

    def mask(self, allowed, state):
        """Strict density: no new note once a new bar has the most notes the request allows, no
        bar line or end before it has the fewest (unless nothing else is left to draw)."""
        if not self.strict:
            return allowed
        bar, notes, steered = _bar(state), state[:, BAR_NOTES_FIELD], state[:, NEW_BARS_FIELD] >= 1
        full = steered & (notes >= self.most[bar % len(self.most)])
        short = steered & (notes < self.fewest[bar % len(self.fewest)])
        allowed = allowed & ~(full[:, None] & self.note_ids)
        closing = allowed[:, self.bar_id]
        allowed = allowed & ~(short[:, None] & self.closing_ids)
        stuck = ~allowed.any(dim=1)
        allowed[:, self.bar_id] |= stuck & closing
        return allowed


class MeterChoice(GrammarPart):
    """A requested meter (`sample --meter 3/4`): the first new bar states it, and no bar states
    another. Why: the model picks a piece's meter once, in its first bar's head, and sampling
    there favours the common ones. At folk-band's card settings (T 0.9, top-p 0.95) a piece opens
    in 3/4 3.3% of the time, in 2/4 and 9/8 never (the tunes: 5.8%, 4.0%, 1.4%; docs/benchmarks.md)."""

    def __init__(self, meter_id: int, device="cpu"):
        self.meter_id = meter_id
        self.device = device

    def restrict_rules(self, allowed, grammar) -> None:
        """Other meters never."""
        other = grammar.ids_of("TIMESIG")
        other[self.meter_id] = False
        allowed[:, :, other] = False
        self.only_meter = (torch.arange(grammar.vocab_size) == self.meter_id).to(self.device)

    def mask(self, allowed, state):
        """In the first new bar, where the meter may be stated, it must be."""
        stating = (new_bar(state) == 0) & allowed[:, self.meter_id]
        return torch.where(stating[:, None], allowed & self.only_meter, allowed)


def _bar(state):
    """(B,) which new bar each row is in (0 before the first)."""
    return new_bar(state).clamp(min=0)
