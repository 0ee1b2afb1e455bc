"""What a generation request means for one encoding: its checks, primer, logit processors,
given music and finish step (ids -> `Score`).

`sampling` runs the same job for every encoding (length, decoding loop, files) and asks the
encoding, through `Encoding.conditioning(request)`, for everything that depends on what its ids
say. This module holds the single-stream case (melody, performance: one stream of notes whose
instrument and tempo the request chooses); an encoding whose ids carry more (the multitrack
encoding's tracks, controls and given music, `multitrack_conditioning`) subclasses it.

The request is duck-typed (`sampling.request.GenerationRequest`), so encodings do not import
sampling.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from functools import cached_property

from melodygen.errors import ConfigError
from melodygen.notes import Score


class Conditioning:
    """A request as a single-stream encoding carries it out."""

    def __init__(self, encoding, request, profile=None):
        self.encoding = encoding
        self.request = request
        self.profile = profile  # () -> what the model saw (`dataset.profile.DataProfile`) or None

    @cached_property
    def _seen(self):
        """What the model saw, asked for once (the function may read a checkpoint's profile)."""
        return None if self.profile is None else self.profile()

    def seen(self, field: str):
        """One field of what the model saw in training (its usual `header`, their `ranges`), or
        None where unknown."""
        return getattr(self._seen, field, None)

    def check(self, instruments_seen: Collection[int] | None) -> None:
        """`ConfigError` for what this encoding cannot do for the request (before anything is
        read, generated or written). `instruments_seen`: the programs the model trained on,
        where the checkpoint knows them."""
        request, name = self.request, self.encoding.name
        if request.instruments:
            raise ConfigError(f"the {name!r} encoding writes one stream of notes: give its "
                              "instrument with --program (--instruments needs a multitrack model)")
        if request.accompany is not None or request.infill is not None:
            raise ConfigError(f"--accompany and --infill need a multitrack model; this one writes the "
                              f"{name!r} encoding's one stream of notes")
        if request.controls is not None:
            request.controls.check_model(list(self.encoding.control_ids()))
        if request.form is not None:
            raise ConfigError(f"--form needs a multitrack model trained with repeats; this one writes the "
                              f"{name!r} encoding's one stream of notes")
        if request.meter is not None:
            raise ConfigError(f"--meter needs a multitrack model (its bars have meters); this one writes the "
                              f"{name!r} encoding's one stream of notes in 4/4")

    def primer_ids(self, ids: Sequence[int]) -> list[int]:
        """A primer's ids as the request has them: control tokens of kinds not asked for taken
        out (the model goes on as it learned to without them). The primer's bars keep their own
        labels of the kinds asked for; the request steers the new bars."""
        kept = self.written_controls()
        out = {int(i) for kind, found in self.encoding.control_ids().items() if kind not in kept for i in found}
        return [int(i) for i in ids if int(i) not in out]

    def written_controls(self) -> tuple[str, ...]:
        """The kinds of control token the new music will carry: those asked for."""
        controls = self.request.controls
        return controls.kinds if controls is not None else ()

    def processors(self, primer: list[int], rows: int, device) -> list:
        """The logit processors every row goes through: the encoding's grammar, its state
        started from the primer (a `--continuation-only` file, cut from the primer, may begin by
        ending a note the primer held)."""
        grammar = self.encoding.grammar(primer, rows, device)
        return [grammar] if grammar is not None else []

    def given(self, score: Score, rows: int, device):
        """(the given music, its processors, the most ids a row may hold) of an accompaniment or
        infilling of `score`; `check` refuses both for an encoding without tracks."""
        raise ConfigError(f"the {self.encoding.name!r} encoding cannot be given music to write around")

    def blank_bars(self, primer: list[int], bars: int):
        """Bars of blanks for a masked model to fill; only an encoding of cells has blanks."""
        raise ConfigError(f"a masked model fills blanks, which the {self.encoding.name!r} encoding has none of "
                          "(it needs the voices encoding)")

    def finish(self, row: list[int], primer: list[int], qpm: float, given=None) -> Score:
        """The score written for one generated row, with its primer unless `continuation_only`:
        one track with the requested program, named after how it was made."""
        request = self.request
        score = self.encoding.decode_score(row if request.continuation_only else primer + row, qpm=qpm)
        (track,) = score.tracks
        track.program = request.program or 0
        track.name = f"melodygen {self.encoding.name} t={request.temperature:g}"
        return score

    def measure(self, pieces: list, primer: list[int]) -> None:
        """Set each piece's `steering` and `adherence` where the request steered controls (an
        encoding without controls has none to measure)."""
