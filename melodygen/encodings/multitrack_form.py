"""The grammar part of a form plan (`encodings.form`) for the multitrack encoding with repeats.

In each new bar that the plan repeats, the bar's head is written as usual (its controls; the
meter going on: no TIMESIG, so the bar has the length of the music it repeats in a one-meter
piece), then the only body allowed is `REPEAT(k)` pointing at the planned bar, untransposed: no
position, no other distance, no SHIFT, and no bar line or end before it. Bars the plan leaves new, and bars
after the plan, are the model's (it may repeat there too, as it learned to).
"""

from __future__ import annotations

import torch

from melodygen.encodings.form import FormPlan
from melodygen.encodings.multitrack_grammar import NEW_BARS_FIELD, GrammarPart
from melodygen.errors import ConfigError


class FormRules(GrammarPart):
    """Forces the plan's repeats, bar by bar, counted from the first new bar."""

    def __init__(self, encoding, plan: FormPlan, rows: int, device="cpu"):
        reach = encoding.settings.repeats
        distances = [0 if source is None else bar - source for bar, source in enumerate(plan.sources())]
        if max(distances) > reach:
            raise ConfigError(f"form {plan.text!r} repeats a bar {max(distances)} bars back; this model's "
                              f"repeats reach {reach} bars")
        v = encoding.vocab
        first = v.offset("REPEAT")
        self.wanted = torch.tensor([first + k - 1 if k else -1 for k in distances], device=device)
        size = v.size
        self.repeat_ids = _block(v, "REPEAT", size, device)
        # what a planned bar may not hold: a body of its own, another distance, a shift, a new meter
        self.body_ids = (_block(v, "POS", size, device) | _block(v, "SHIFT", size, device) | self.repeat_ids
                         | _block(v, "TIMESIG", size, device))
        self.closing_ids = _block(v, "BAR", size, device)
        from melodygen.encodings.vocab import EOS_ID

        self.closing_ids[EOS_ID] = True
        self.vocab_ids = torch.arange(size, device=device)
        self.bar_id = v.id_of("BAR")
        self.repeated = torch.zeros(rows, dtype=torch.bool, device=device)

    def mask(self, allowed, state):
        bar = state[:, NEW_BARS_FIELD] - 1
        planned = self.wanted.index_select(0, bar.clamp(0, len(self.wanted) - 1))
        forced = ((bar >= 0) & (bar < len(self.wanted)) & (planned >= 0))[:, None]
        banned = (self.body_ids & (self.vocab_ids != planned[:, None])) | (self.closing_ids & ~self.repeated[:, None])
        return allowed & ~(forced & banned)

    def follow(self, ids, state) -> None:
        """A REPEAT drawn in this bar lets it close; a bar line opens the next."""
        self.repeated = (self.repeated | self.repeat_ids[ids]) & (ids != self.bar_id)

    def select_rows(self, rows) -> None:
        self.repeated = self.repeated.index_select(0, rows)


class VariedChords(GrammarPart):
    """With a model that has the chord control and no `--chords` asked: each bar a varied repeat
    writes anew gets the chord the model wrote in the bar it varies (`FormPlan.chord_sources`),
    forced into its head before anything after the chord; a bar it varies without a chord leaves
    it free."""

    def __init__(self, encoding, plan: FormPlan, rows: int, device="cpu"):
        v = encoding.vocab
        self.sources = torch.tensor([-1 if s is None else s for s in plan.chord_sources()], device=device)
        self.chord_ids = _block(v, "CHORD", v.size, device)
        self.head_ids = _block(v, "TIMESIG", v.size, device)  # what may come before the chord in a head
        if "KEY" in {r.name for r in v.ranges}:
            self.head_ids |= _block(v, "KEY", v.size, device)
        self.vocab_ids = torch.arange(v.size, device=device)
        self.bar_id = v.id_of("BAR")
        self.written = torch.full((rows, len(self.sources)), -1, dtype=torch.long, device=device)
        self.chorded = torch.zeros(rows, dtype=torch.bool, device=device)

    def mask(self, allowed, state):
        bar = state[:, NEW_BARS_FIELD] - 1
        inside = (bar >= 0) & (bar < len(self.sources))
        source = self.sources.index_select(0, bar.clamp(0, len(self.sources) - 1))
        wanted = self.written.gather(1, source.clamp(min=0)[:, None])  # (B, 1)
        forced = (inside & (source >= 0) & (wanted[:, 0] >= 0) & ~self.chorded)[:, None]
        return allowed & ~(forced & ~(self.head_ids | (self.vocab_ids == wanted)))

    def follow(self, ids, state) -> None:
        """Each row's chord per planned bar as it is written; a bar line opens the next."""
        bar = state[:, NEW_BARS_FIELD] - 1
        chord = self.chord_ids[ids] & (bar >= 0) & (bar < len(self.sources))
        column = bar.clamp(0, len(self.sources) - 1)[:, None]
        self.written.scatter_(1, column, torch.where(chord, ids, self.written.gather(1, column)[:, 0])[:, None])
        self.chorded = (self.chorded | self.chord_ids[ids]) & (ids != self.bar_id)

    def select_rows(self, rows) -> None:
        self.written, self.chorded = self.written.index_select(0, rows), self.chorded.index_select(0, rows)


def _block(vocab, name: str, size: int, device) -> torch.Tensor:
    """(V,) bool: the ids of one kind."""
    ids = torch.zeros(size, dtype=torch.bool, device=device)
    ids[vocab.offset(name):vocab.offset(name) + vocab.range(name).size] = True
    return ids
