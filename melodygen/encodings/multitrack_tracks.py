"""Which instruments a multitrack piece gets, and where they play: grammar parts.

`TrackChoice` (`sample --instruments`, or the model's usual tracks): a piece begun from nothing
gets exactly these instruments as its header, in that order (and no bar before the header is
whole); a primer's tracks whose instrument is not asked for get no new notes (`playing`, which
the syntax folds into its own tables).

`PitchRanges`: each track's new notes stay inside the pitches that track had in the model's
training pieces (`dataset.profile.DataProfile.ranges`, widened by `--range-margin`), so an
accompanying piano does not climb into the melody's octave or past the keyboard's top.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from melodygen.encodings.multitrack_grammar import KINDS, TRACK_FIELD, GrammarPart
from melodygen.errors import ConfigError
from melodygen.instruments import instrument_name


class TrackChoice(GrammarPart):
    """The header forced for a piece begun from nothing, or the primer's tracks that may play."""

    def __init__(self, encoding, primer_ids: Sequence[int], instruments: list[int], device="cpu"):
        vocab, max_tracks = encoding.vocab, encoding.settings.max_tracks
        programs = [v for n, v in vocab.events(primer_ids) if n == "PROGRAM"]
        self.header = None
        if not programs:
            if len(instruments) > max_tracks:
                raise ConfigError(f"{len(instruments)} instruments, more than the model's "
                                  f"max_tracks = {max_tracks}")
            self.header = torch.tensor(instruments)
            self.playing = torch.ones(max_tracks, dtype=torch.bool, device=device)
            return
        self.playing = torch.zeros(max_tracks, dtype=torch.bool, device=device)
        chosen = [i for i, p in enumerate(programs) if p in instruments]
        if not chosen:
            have = ", ".join(instrument_name(p) for p in programs)
            raise ConfigError(f"none of the instruments asked for is a track of the primer ({have})")
        self.playing[chosen] = True

    def restrict_rules(self, allowed, grammar) -> None:
        """The header: at track count c only the c-th instrument asked for, and no bar line
        before the last."""
        if self.header is None:
            return
        counts = torch.arange(grammar.max_tracks + 1)
        program = grammar.kind_of.cpu() == KINDS["PROGRAM"]
        wanted = grammar.place_of[None, program] == self.header[counts.clamp(max=len(self.header) - 1)][:, None]
        allowed[:, :, program] &= ((counts < len(self.header))[:, None] & wanted)[None]
        allowed[KINDS["PROGRAM"], :, grammar.block["BAR"][0]] &= counts >= len(self.header)


class PitchRanges(GrammarPart):
    """PITCH ids only inside the current track's range (`ranges[track]`: lowest, highest; a
    track past the list is free)."""

    def __init__(self, ranges, device="cpu"):
        bounds = torch.tensor([(0, 127), *ranges], dtype=torch.long, device=device)  # row 0: no track yet
        self.lowest, self.highest = bounds[:, 0], bounds[:, 1]
        self.device = device

    def restrict_rules(self, allowed, grammar) -> None:
        """Nothing to restrict once for all; the pitch ids and their pitches, from the grammar."""
        self.pitch_ids = grammar.ids_of("PITCH").to(self.device)
        self.pitch_of = grammar.place_of.to(self.device)

    def mask(self, allowed, state):
        track = state[:, TRACK_FIELD].clamp(max=len(self.lowest) - 1)  # track + 1; past the list: free
        inside = len(self.lowest) > state[:, TRACK_FIELD]
        low = torch.where(inside, self.lowest.index_select(0, track), 0)[:, None]
        high = torch.where(inside, self.highest.index_select(0, track), 127)[:, None]
        outside = self.pitch_ids & ((self.pitch_of < low) | (self.pitch_of > high))
        return allowed & ~outside
