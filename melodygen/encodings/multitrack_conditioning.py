"""A generation request as the multitrack encoding carries it out: tracks chosen by
instrument, controls forced bar by bar, given music written around, and a finished piece whose
tracks, tempo and meter come from the ids (`conditioning` says what each step is for).
"""

from __future__ import annotations

from collections.abc import Collection

from melodygen.encodings.conditioning import Conditioning
from melodygen.errors import ConfigError
from melodygen.notes import Score

_MAX_WRITTEN_PER_BAR = 256  # ids a model may write per bar around given music (chords: ~20-60)


class MultitrackConditioning(Conditioning):
    """Instruments, controls and given music for the multitrack encoding."""

    def check(self, instruments_seen: Collection[int] | None) -> None:
        request = self.request
        if request.program is not None:
            raise ConfigError(f"the {self.encoding.name!r} model writes each track's own instrument; "
                              "choose them with --instruments, not --program")
        unheard = [i for i in request.instruments or () if instruments_seen is not None and i not in instruments_seen]
        if unheard:
            from melodygen.instruments import instrument_name

            known = ", ".join(instrument_name(i) for i in sorted(instruments_seen))
            raise ConfigError(f"this model never heard {instrument_name(unheard[0])} in training; "
                              f"its instruments: {known}")
        if request.controls is not None:
            request.controls.check_model(self.encoding.settings.controls)
        if request.form is not None and not self.encoding.settings.repeats:
            raise ConfigError("--form needs a model trained with repeats (encoding.repeats > 0, as folk-band); "
                              "this one was trained without them")
        if request.meter is not None:
            self.meter_id()  # refused here, before anything is written

    def meter_id(self) -> int | None:
        """The TIMESIG id of the requested meter (None: none asked); `ConfigError` for one the
        encoding has no token for or the model never trained on (its meters, commonest first)."""
        meter = self.request.meter
        if meter is None:
            return None
        numerator, denominator = (int(x) for x in meter.strip().split("/"))
        index = self.encoding.meter_index.get((numerator, denominator))
        v = self.encoding.vocab
        first, labels = v.offset("TIMESIG"), v.range("TIMESIG").labels
        counts = self.seen("counts")
        if index is not None and (counts is None or counts[first + index] > 0):
            return first + index
        if counts is None:
            raise ConfigError(f"--meter {meter}: the model's encoding has no token for it")
        trained = sorted((i for i in range(len(labels)) if counts[first + i] > 0), key=lambda i: -counts[first + i])
        raise ConfigError(f"--meter {meter}: this model never trained on it; its meters, commonest first: "
                          f"{', '.join(labels[i] for i in trained)}")

    def written_controls(self) -> tuple[str, ...]:
        """Those asked for, and chords where they follow a form plan (`form_keeps_chords`) or a
        key's cadence (`_steered`)."""
        from melodygen.encodings.multitrack_grammar import form_keeps_chords

        asked = super().written_controls()
        controls = self.request.controls
        if form_keeps_chords(self.encoding, self.request.form_plan, controls) or self._steered() is not controls:
            return (*asked, "chord")
        return asked

    def _steered(self):
        """The controls the grammar steers the new bars by: the request's, with a key's cadence
        (`ControlRequest.with_cadence`) where the model has the chord control. Under a form plan
        the closing tonic goes where the last bar's chord comes from (`FormPlan.chord_sources`)."""
        controls, request, plan = self.request.controls, self.request, self.request.form_plan
        if controls is None or "chord" not in self.encoding.settings.controls:
            return controls
        return controls.with_cadence(None if request.bars is None else int(request.bars),  # a form's length too
                                     opening=request.primer is None,
                                     sources=None if plan is None else plan.chord_sources())

    def processors(self, primer: list[int], rows: int, device) -> list:
        """The grammar, steering its tracks with the requested instruments (for a piece begun
        from nothing without them: the model's usual ones, so a chorale has its four voices and a
        folk band its chord track) and its bars with the requested controls (a key with its
        cadence, `_steered`) and form; with a key, new notes leaning toward it (`key_lean`)."""
        instruments = self.request.instruments
        usual = self.seen("header")
        if not instruments and not primer:
            instruments = usual  # the tracks most training pieces have, or None
        programs = tuple(instruments or ()) if not primer else self._programs(primer)
        ranges = self._ranges(programs) if usual is not None and programs == tuple(usual) else None
        chosen = {"instruments": instruments} if instruments else {}
        grammar = self.encoding.grammar(primer, rows, device, controls=self._steered(),
                                        form=self.request.form_plan, ranges=ranges, meter=self.meter_id(), **chosen)
        return [grammar, *self._key_lean(device)]

    def _key_lean(self, device) -> list:
        """`[KeyLean]` when a key is asked with a strength, else `[]`."""
        controls = self.request.controls
        if controls is None or controls.key is None or not controls.key_strength:
            return []
        from melodygen.encodings.key_lean import KeyLean

        return [KeyLean(self.encoding.vocab, controls.key, controls.key_strength, device)]

    def _given_key_lean(self, plan, device) -> list:
        """Accompaniment with no key asked: `[KeyLean]` toward the given tracks' key, measured
        (Krumhansl-Kessler, `harmony.detect_key`), at the request's strength; `[]` when infilling
        or at strength 0. A model without the key control has no other way to hear the key, and
        wrote chords outside it (the first accompanist: Bb and Eb chords under an A major tune)."""
        if plan.region is not None or not self.request.key_strength:
            return []
        from dataclasses import replace

        from melodygen import harmony
        from melodygen.encodings.key_lean import KeyLean
        from melodygen.stats.controls import pitch_class_time

        key = harmony.detect_key(pitch_class_time(replace(plan.original, tracks=plan.tracks[:plan.given_tracks])))
        return [KeyLean(self.encoding.vocab, key, self.request.key_strength, device)]

    def _programs(self, ids) -> tuple[int, ...]:
        """The instruments of a piece's header."""
        return tuple(v for n, v in self.encoding.vocab.events(ids) if n == "PROGRAM")

    def _ranges(self, programs: tuple[int, ...], given_tracks: int = 0):
        """Per track of a piece whose instruments are `programs`, the pitches its new notes may
        have: where a track is the usual header's track of that place and instrument, its range
        in training, widened by `range_margin`; elsewhere, and on the `given_tracks` first
        (given music), free. None when no ranges are known or none applies."""
        ranges, usual, margin = self.seen("ranges"), self.seen("header"), self.request.range_margin
        if ranges is None or usual is None:
            return None
        kept = [i >= given_tracks and i < len(usual) and program == usual[i] for i, program in enumerate(programs)]
        if not any(kept):
            return None
        return [(max(0, ranges[i][0] - margin), min(127, ranges[i][1] + margin)) if keep else (0, 127)
                for i, keep in enumerate(kept)]

    def given(self, score: Score, rows: int, device):
        """Accompaniment (`accompany`: the tracks `given_tracks` of `score` given, one new track
        per requested instrument, over the requested key and chords if any) or infilling (`infill`
        bars of `score`), forced through the grammar, and the most ids a row may hold: the given
        ids and, per bar, room for the tracks written."""
        from melodygen.encodings.multitrack_given import accompaniment_plan, infill_plan

        request = self.request
        if request.accompany is not None:
            given = None if request.given_tracks is None else [t - 1 for t in request.given_tracks]
            plan = accompaniment_plan(self.encoding, score, given, request.instruments or (0,), request.controls)
        else:
            plan = infill_plan(self.encoding, score, *request.infill)
        bars = int((plan.ids == self.encoding.vocab.id_of("BAR")).sum())
        cap = len(plan.ids) + _MAX_WRITTEN_PER_BAR * bars
        ranges = (self._ranges(self._programs(plan.ids), plan.given_tracks) if plan.region is None
                  else None)  # infilling: every track given
        leans = self._key_lean(device) or self._given_key_lean(plan, device)
        return plan, [self.encoding.grammar([], rows, device, given=plan, ranges=ranges), *leans], cap

    def finish(self, row: list[int], primer: list[int], qpm: float, given=None) -> Score:
        """Given music comes back as the file has it (`GivenPlan.assemble`). Otherwise the ids
        name their own tracks and tempo changes; a requested tempo (`--tempo`) scales them so
        that the piece starts at it; a continuation alone starts at the first bar line it wrote
        (its ids need the primer's header to decode)."""
        if given is not None:
            return given.assemble(self.encoding.decode_score(row))
        request = self.request
        score = self.encoding.decode_score(primer + row, qpm=qpm)
        if request.continuation_only:
            moves = self.encoding.time_per_id().amounts
            first = next((i for i, x in enumerate(row) if moves[x] > 0), None)
            start = (score.end_time if first is None
                     else self.encoding.decode_score(primer + row[:first + 1], qpm).end_time)
            score = score.after(start)
        if request.tempo is not None:
            score = score.with_tempo_scaled(request.tempo / score.tempo_map.qpm[0])
        return score

    def measure(self, pieces: list, primer: list[int]) -> None:
        """Each piece's `steering` (where its steered bars are), `adherence` (how it obeys its
        controls) and `form` (how it follows its form plan), counted from the first new bar."""
        request = self.request
        steered = request.controls is not None and bool(request.controls.kinds)
        if not steered and request.form_plan is None:
            return
        from melodygen.encodings.controls import ControlRequest, Steering
        from melodygen.encodings.form import form_adherence
        from melodygen.stats.controls import piece_adherence

        bar = self.encoding.vocab.id_of("BAR")
        first_bar = 0 if request.continuation_only else sum(1 for i in primer if i == bar)
        plan = request.form_plan
        steering = Steering(request.controls or ControlRequest(), first_bar,
                            int(request.bars) if request.bars is not None else None,
                            None if plan is None else plan.describe())
        for piece in pieces:
            piece.steering = steering
            if plan is not None:
                chords = (self.encoding.controls_of(piece.score).chords if piece.score.note_count()
                          and "chord" in self.written_controls() and request.chords is None else None)
                piece.form = form_adherence(plan, piece.score, first_bar, self.encoding.settings.steps_per_quarter,
                                            chords)
            if steered and piece.score.note_count():
                piece.adherence = piece_adherence(self.encoding, piece.score, request.controls, first_bar,
                                                  steering.bars)
