"""Which instruments a multitrack piece gets: the grammar part of `sample --instruments`.

A piece begun from nothing gets exactly the instruments asked for as its header, in that order
(and no bar before the header is whole); a primer's tracks whose instrument is not asked for
get no new notes (`playing`, which the syntax folds into its own tables).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from melodygen.encodings.multitrack_grammar import KINDS, GrammarPart
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
