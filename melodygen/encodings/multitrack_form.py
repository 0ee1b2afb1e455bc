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

    def follow(self, ids) -> None:
        """A REPEAT drawn in this bar lets it close; a bar line opens the next."""
        self.repeated = (self.repeated | self.repeat_ids[ids]) & (ids != self.bar_id)

    def select_rows(self, rows) -> None:
        self.repeated = self.repeated.index_select(0, rows)


def _block(vocab, name: str, size: int, device) -> torch.Tensor:
    """(V,) bool: the ids of one kind."""
    ids = torch.zeros(size, dtype=torch.bool, device=device)
    ids[vocab.offset(name):vocab.offset(name) + vocab.range(name).size] = True
    return ids
