"""The grammar parts of a form plan (`encodings.form`) for the multitrack encoding with repeats.

`FormRules`: in each new bar that the plan repeats, the bar's head is written as usual (its
controls; the meter going on: no TIMESIG, so the bar has the length of the music it repeats in a
one-meter piece), then the only body allowed is `REPEAT(k)` pointing at the planned bar,
untransposed: no position, no other distance, no SHIFT, and no bar line or end before it. With
varied repeats (`varied_repeats`), each bar a varied section (`A'`) writes anew is a varied
repeat of the bar it follows: `REPEAT(k)` as above, then a cut (`POS`) before the bar may close,
and the model's notes from there. Bars the plan leaves new, and bars after the plan, are the
model's (it may repeat there too, as it learned to).

`FormChords`, for a model with the chord control when no `--chords` is asked: the model writes
its own chords, and every bar whose letter came before (a repeated bar, or one a varied repeat
writes anew) gets the chord written in the bar it follows (`FormPlan.chord_sources`), or none if
that bar had none: a repeated bar's label matches the music it copies, and `A'` keeps A's chords
under a new melody.

Pickups. A tune that opens on an upbeat comes back to its first full bar, not to the upbeat's
bar: copied, that bar is beats of silence in the middle of the tune. folk-band did it in 5 of 48
free samples of 16 bars (`REPEAT(-8)` in bar 9 of a tune with a pickup), and under `--form AABA`
in 14 of 16 pieces, where the plan itself repeats the first bar (docs/benchmarks.md). So:
`PickupRepeats`, for a piece written from nothing without a plan: no `REPEAT` may copy its first
bar once that bar turns out a pickup (its first note after the downbeat, or none);
`DownbeatOpening`, with a plan (from nothing): the first bar opens with a note on its downbeat,
since the plan's sections are whole bars and its repeats of the first bar are forced.
"""

from __future__ import annotations

import torch

from melodygen.encodings.form import FormPlan
from melodygen.encodings.multitrack_grammar import BAR_NOTES_FIELD, POS_FIELD, GrammarPart, new_bar
from melodygen.errors import ConfigError


class FormRules(GrammarPart):
    """Forces the plan's repeats, bar by bar, counted from the first new bar."""

    def __init__(self, encoding, plan: FormPlan, rows: int, device="cpu"):
        reach = encoding.settings.repeats
        varied = plan.varied_sources() if encoding.settings.varied_repeats else [None] * plan.bars
        distances = [0 if source is None else bar - source for bar, source in enumerate(plan.sources())]
        cuts = [0 if source is None else bar - source for bar, source in enumerate(varied)]
        back = [k or c for k, c in zip(distances, cuts)]  # a bar is repeated, varied, or neither
        if max(back) > reach:
            raise ConfigError(f"form {plan.text!r} repeats a bar {max(back)} bars back; this model's "
                              f"repeats reach {reach} bars")
        first = encoding.vocab.offset("REPEAT")
        self.wanted = torch.tensor([first + k - 1 if k else -1 for k in back], device=device)
        self.varied = torch.tensor([c > 0 for c in cuts], device=device)
        self.repeated = torch.zeros(rows, dtype=torch.bool, device=device)
        self.cut = torch.zeros(rows, dtype=torch.bool, device=device)
        self.device = device

    def restrict_rules(self, allowed, grammar) -> None:
        """Nothing to restrict once for all; the id sets the masks use, from the grammar's blocks."""
        self.repeat_ids = grammar.ids_of("REPEAT").to(self.device)
        # what a planned bar may not hold: a body of its own, another distance, a shift, a new meter
        self.body_ids = grammar.ids_of("POS", "SHIFT", "REPEAT", "TIMESIG").to(self.device)
        self.pos_ids = grammar.ids_of("POS").to(self.device)
        self.closing_ids = grammar.ids_of("BAR").to(self.device)
        self.closing_ids[grammar.eos] = True
        self.vocab_ids = torch.arange(grammar.vocab_size, device=self.device)
        self.bar_id = grammar.block["BAR"][0]

    def mask(self, allowed, state):
        bar = new_bar(state)
        at = bar.clamp(0, len(self.wanted) - 1)
        planned, varied = self.wanted.index_select(0, at), self.varied.index_select(0, at)
        forced = ((bar >= 0) & (bar < len(self.wanted)) & (planned >= 0))[:, None]
        # a varied bar's cut and new part: positions once its REPEAT is in; closing once it is cut
        cutting = (varied & self.repeated)[:, None]
        body = self.body_ids & ~(cutting & self.pos_ids)
        closing = ~self.repeated[:, None] | (varied & ~self.cut)[:, None]
        banned = (body & (self.vocab_ids != planned[:, None])) | (self.closing_ids & closing)
        return allowed & ~(forced & banned)

    def follow(self, ids, state) -> None:
        """A REPEAT drawn in this bar lets it close (a varied bar: once a position is drawn after
        it); a bar line opens the next."""
        opened = ids == self.bar_id
        self.cut = (self.cut | (self.repeated & self.pos_ids[ids])) & ~opened
        self.repeated = (self.repeated | self.repeat_ids[ids]) & ~opened

    def select_rows(self, rows) -> None:
        self.repeated, self.cut = self.repeated.index_select(0, rows), self.cut.index_select(0, rows)


class FormChords(GrammarPart):
    """Each bar whose letter came before gets the chord of the bar it follows (module docstring),
    forced into its head before anything that comes after a chord; banned where that bar had none."""

    def __init__(self, encoding, plan: FormPlan, rows: int, device="cpu"):
        self.sources = torch.tensor([-1 if s is None else s for s in plan.chord_sources()], device=device)
        self.written = torch.full((rows, len(self.sources)), -1, dtype=torch.long, device=device)
        self.chorded = torch.zeros(rows, dtype=torch.bool, device=device)
        self.device = device

    def restrict_rules(self, allowed, grammar) -> None:
        """Nothing to restrict once for all; the id sets the masks use, from the grammar's blocks."""
        self.chord_ids = grammar.ids_of("CHORD").to(self.device)
        self.head_ids = grammar.ids_of("TIMESIG", "KEY").to(self.device)  # what may come before a chord
        self.vocab_ids = torch.arange(grammar.vocab_size, device=self.device)
        self.bar_id = grammar.block["BAR"][0]

    def mask(self, allowed, state):
        bar = new_bar(state)
        inside = (bar >= 0) & (bar < len(self.sources))
        source = self.sources.index_select(0, bar.clamp(0, len(self.sources) - 1))
        wanted = self.written.gather(1, source.clamp(min=0)[:, None])  # (B, 1)
        follows = (inside & (source >= 0) & ~self.chorded)[:, None]
        chordless = follows & (wanted < 0)
        forced = follows & (wanted >= 0)
        allowed = allowed & ~(chordless & self.chord_ids)
        return allowed & ~(forced & ~(self.head_ids | (self.vocab_ids == wanted)))

    def follow(self, ids, state) -> None:
        """Each row's chord per planned bar as it is written; a bar line opens the next."""
        bar = new_bar(state)
        chord = self.chord_ids[ids] & (bar >= 0) & (bar < len(self.sources))
        column = bar.clamp(0, len(self.sources) - 1)[:, None]
        self.written.scatter_(1, column, torch.where(chord, ids, self.written.gather(1, column)[:, 0])[:, None])
        self.chorded = (self.chorded | self.chord_ids[ids]) & (ids != self.bar_id)

    def select_rows(self, rows) -> None:
        self.written, self.chorded = self.written.index_select(0, rows), self.chorded.index_select(0, rows)


class PickupRepeats(GrammarPart):
    """No REPEAT of the first new bar once it turned out a pickup (module docstring)."""

    def __init__(self, rows: int, device="cpu"):
        self.pickup = torch.zeros(rows, dtype=torch.bool, device=device)   # the first bar is a pickup
        self.decided = torch.zeros(rows, dtype=torch.bool, device=device)  # ... known by now
        self.device = device

    def restrict_rules(self, allowed, grammar) -> None:
        """Nothing to restrict once for all; the ids the mask and `follow` read."""
        self.note_ids = grammar.ids_of("PITCH", "DRUM").to(self.device)
        # k of each REPEAT(k) (its place is k - 1, as the grammar's own bound reads it); -2, never a bar, elsewhere
        self.distance = torch.where(grammar.ids_of("REPEAT"), grammar.place_of + 1, -2).to(self.device)

    def mask(self, allowed, state):
        reaches_first = self.distance[None, :] == new_bar(state)[:, None]  # REPEAT(k) in new bar k copies bar 0
        return allowed & ~(self.pickup[:, None] & reaches_first)

    def follow(self, ids, state) -> None:
        """The first note of the first bar says whether it came after the downbeat; a second bar
        reached with no note in the first makes the first a (silent) pickup too."""
        bar = new_bar(state)
        first_note = ~self.decided & (bar == 0) & self.note_ids[ids]
        self.pickup |= (first_note & (state[:, POS_FIELD] > 0)) | (~self.decided & (bar >= 1))
        self.decided |= first_note | (bar >= 1)

    def select_rows(self, rows) -> None:
        self.pickup, self.decided = self.pickup.index_select(0, rows), self.decided.index_select(0, rows)


class DownbeatOpening(GrammarPart):
    """The first new bar's first note on its downbeat (module docstring): until it has a note,
    no later position and no bar line or end."""

    def __init__(self, device="cpu"):
        self.device = device

    def restrict_rules(self, allowed, grammar) -> None:
        """Nothing to restrict once for all; the ids the mask bans in the opening."""
        later = grammar.ids_of("POS") & (grammar.place_of > 0)
        closing = grammar.ids_of("BAR")
        closing[grammar.eos] = True
        self.banned = (later | closing).to(self.device)

    def mask(self, allowed, state):
        opening = (new_bar(state) == 0) & (state[:, BAR_NOTES_FIELD] == 0)
        return allowed & ~(opening[:, None] & self.banned)
