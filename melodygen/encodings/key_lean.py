"""`KeyLean`: new notes lean toward a requested key's pitch classes.

A model trained with the key control (`multitrack_controls`) reads its KEY token but keeps to it
weakly: folk-band asked for E minor wrote E minor in 1 of 16 pieces of 8 bars, G major in 3 of
16 (docs/benchmarks.md, "Keys asked for"). Teacher-forced, the right KEY lowers the pitches' NLL
by only ~0.25 nats against a key a semitone away, and a piece drawn from the model follows the
notes it has drawn more than the token. Minor keys fare worst: 11% of the tunes are minor.

`KeyLean` multiplies the model's distribution over pitches by the key's Krumhansl-Kessler
profile raised to a power (a product of experts; Krumhansl 1990's probe-tone ratings, tonic
first): each PITCH logit gets `power * log(profile[pc] / mean)`. It renormalises within the
pitches, so the chance of writing a note at all (against moving on to the next position or
bar) stays the model's: it changes which notes, not how many. Chromatic notes stay possible,
only less likely (the least likely pitch class of a minor key loses 0.37 nats per unit power).

The power is `strength` in the first `OPENING_BARS` new bars and `strength * LATER` after them.
Why: a model follows the notes it has drawn, so a key set up in the opening mostly carries on by
itself; held at full strength throughout, the lean piles the notes onto the tonic triad (folk-band
at strength 3: pitch-class entropy 1.88 bits against the tunes' 2.66, and a classifier told its
pieces from real tunes 96% of the time against 84% without the lean; docs/benchmarks.md).
"""

from __future__ import annotations

import numpy as np
import torch

from melodygen import harmony

OPENING_BARS = 2  # new bars leaned at full strength
LATER = 1 / 3  # the share of the strength after them


class KeyLean:
    """A logit processor (`sampling.processors`): PITCH logits plus a power of the log profile
    of `key` (module docstring), the pitches' total probability kept. Counts each row's new bar
    lines itself, so it keeps a row per piece (`select_rows`)."""

    def __init__(self, vocab, key: int, strength: float, device="cpu"):
        profile = harmony.key_profile(key)
        pitches = vocab.range("PITCH")
        self.lo, self.hi = vocab.offset("PITCH"), vocab.offset("PITCH") + pitches.size
        classes = (np.arange(pitches.lo, pitches.hi + 1)) % 12
        self.bias = torch.tensor(strength * np.log(profile / profile.mean())[classes], dtype=torch.float32,
                                 device=device)
        self.bar_id = vocab.id_of("BAR")
        self.bars: torch.Tensor | None = None  # (B,) new bar lines drawn so far

    def __call__(self, logits: torch.Tensor, last_ids: torch.Tensor | None) -> torch.Tensor:
        if self.bars is None:
            self.bars = torch.zeros(len(logits), dtype=torch.long, device=logits.device)
        if last_ids is not None:
            self.bars = self.bars + (last_ids == self.bar_id)
        pitch = logits[:, self.lo:self.hi]
        power = torch.where(self.bars <= OPENING_BARS, 1.0, LATER).to(pitch.dtype)
        leaned = pitch + power[:, None] * self.bias.to(pitch.dtype)
        kept = torch.logsumexp(pitch, -1, keepdim=True) - torch.logsumexp(leaned, -1, keepdim=True)
        out = logits.clone()
        out[:, self.lo:self.hi] = leaned + torch.nan_to_num(kept, nan=0.0)  # no pitch allowed: -inf stays
        return out

    def select_rows(self, rows: torch.Tensor) -> None:
        """Rows reordered or copied (beam search)."""
        if self.bars is not None:
            self.bars = self.bars.index_select(0, rows)
