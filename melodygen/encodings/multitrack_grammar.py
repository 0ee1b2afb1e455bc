"""The multitrack encoding's grammar as a logit processor, and its instrument choice.

Per row, a small state (what the last id was, the bar's length, the position, the current track,
the last pitch at this position, how many header tracks and which are drums) decides which ids
may come next, so a sampled piece always decodes whole:

    header   PROGRAM...        (at least one, at most max_tracks) then BAR
    bar      BAR [TIMESIG] [KEY] [CHORD] [DENSITY] (POS [TEMPO] ([TRACK] PITCH|DRUM VEL DUR)*)*
    POS      strictly after the previous position, inside the bar's length
    TRACK    a header track; within a position, tracks ascend
    PITCH    on a pitched track, DRUM on a drum track; ascending within (position, track)
    EOS      only where a bar, meter, tempo or note is complete

`instruments` (a list of instruments, `melodygen.instruments`) steers which tracks play: a piece
begun from nothing gets exactly that header, in that order; a primer's tracks whose instrument
is not listed get no new notes. `given` (a `multitrack_given.GivenPlan`) forces given music in
and lets the model write only in its gaps (accompaniment, infilling). `controls` (a
`multitrack_controls.ControlRequest`) forces the requested KEY, CHORD and DENSITY values where
their tokens go and bans the controls not requested.

The grammar runs once per drawn id, and at one row each small tensor op costs more in dispatch
than in work, so a draw is a handful of table lookups rather than a rule at a time (no host sync
per draw, any batch size, any device):

- the state is one (B, fields) tensor, and one lookup by (track count, id) gives every field's
  new value as `old * mul + add` (`_update`);
- what the rules allow given the last id's kind and the track count is one precomputed (B, V)
  row per (phase, track count) (`_allowed_at`);
- what depends on the rest of the state (positions after the current one, pitches above the
  last, tracks after the current one, the forced control values) is one comparison per id
  against a per-row threshold that a per-id column index picks (`_bounds`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from melodygen.errors import ConfigError
from melodygen.instruments import DRUMS, instrument_name

# What the last id was (0: nothing yet, or a special id).
_START, _PROGRAM, _BAR, _TIMESIG, _POS, _TEMPO, _TRACK, _PITCH, _DRUM, _VEL, _DUR, _KEY, _CHORD, _DENSITY = range(14)
# What may follow each kind of last id (before the state's own limits), as one table indexed by
# the rows' phases: one lookup per draw instead of a comparison per phase.
_BAR_END = (_BAR, _TIMESIG, _KEY, _CHORD, _DENSITY, _TEMPO, _DUR)  # where a bar may close (or be empty)
_FOLLOWERS = {
    "EOS": _BAR_END, "PROGRAM": (_START, _PROGRAM), "BAR": (_PROGRAM, *_BAR_END),
    "TIMESIG": (_BAR,), "POS": _BAR_END, "TEMPO": (_POS,), "TRACK": (_POS, _TEMPO, _DUR),
    "NOTE": (_POS, _TEMPO, _DUR, _TRACK), "VEL": (_PITCH, _DRUM), "DUR": (_VEL,),
    "KEY": (_BAR, _TIMESIG), "CHORD": (_BAR, _TIMESIG, _KEY), "DENSITY": (_BAR, _TIMESIG, _KEY, _CHORD)}
(_EOS_RULE, _PROGRAM_RULE, _BAR_RULE, _TIMESIG_RULE, _POS_RULE, _TEMPO_RULE, _TRACK_RULE, _NOTE_RULE,
 _VEL_RULE, _DUR_RULE, _KEY_RULE, _CHORD_RULE, _DENSITY_RULE) = range(len(_FOLLOWERS))
_KINDS = {"PROGRAM": _PROGRAM, "BAR": _BAR, "TIMESIG": _TIMESIG, "POS": _POS, "TEMPO": _TEMPO,
          "TRACK": _TRACK, "PITCH": _PITCH, "DRUM": _DRUM, "VEL": _VEL, "DUR": _DUR,
          "KEY": _KEY, "CHORD": _CHORD, "DENSITY": _DENSITY}
# A bar opens BAR [TIMESIG] [KEY] [CHORD] [DENSITY]: each phase's place in that head, and each
# id's (everything that is not one of them comes after the head).
_HEAD = ("BAR", "TIMESIG", "KEY", "CHORD", "DENSITY")
_HEAD_PLACE = {_KINDS[name]: place for place, name in enumerate(_HEAD)}
_AFTER_HEAD = len(_HEAD)


# The state's fields: columns of one (B, fields) long tensor, so that one lookup updates them all.
(_F_KEY,          # phase * (max_tracks + 1) + track count: the row of `_allowed_at`
 _F_ROW,          # track count * V: where this row's ids start in `_steps`
 _F_POS,          # the current position's value (-1: none yet in this bar)
 _F_NEG_LENGTH,   # minus the bar's length in steps (a position must be below it)
 _F_TRACK1,       # the current track + 1 (0: none yet in this bar)
 _F_CUR_PITCHED,  # the current track's column in `status` for pitches (0: no track)
 _F_CUR_DRUMS,    # ... and for drum hits (max_tracks + 1: no track)
 _F_LAST_PITCH,   # the last pitch or drum at this (position, track) (-1: none)
 _F_POS_NOTES,    # 1 where this position has a note already (tracks must then ascend)
 _F_NEW_BARS,     # BARs drawn after the primer
 _F_BAR_NOTES,    # notes in the current bar
 _F_NEG_BIG,      # constant -_BIG: the threshold of a bound that always holds
 ) = range(12)
_FIELDS = 12
_BIG = 1 << 20  # a threshold no id's place reaches


class MultitrackGrammar:
    """The multitrack encoding's grammar as one logit processor: per row, the ids that keep the
    stream decodable (syntax, the tracks' instruments, controls, strict density, given music);
    the module docstring explains the tables it looks them up in."""

    def __init__(self, encoding, primer_ids: Sequence[int], rows: int, device="cpu",
                 instruments: Sequence[int] | None = None, given=None, controls=None):
        from melodygen.encodings.vocab import EOS_ID
        from melodygen.meter import bar_steps

        vocab, s = encoding.vocab, encoding.settings
        self.max_tracks = s.max_tracks
        self.eos = EOS_ID
        self.vocab_size = vocab.size
        present = {r.name for r in vocab.ranges}
        self.block = {name: (vocab.offset(name), vocab.offset(name) + vocab.range(name).size)
                      for name in _KINDS if name in present}
        kinds, values = vocab.split(range(vocab.size))
        names = [vocab.ranges[k].name for k in kinds.tolist()]
        self.kind_of = torch.tensor([_KINDS.get(n, _START) for n in names], device=device)
        self.value_of = torch.as_tensor(values, device=device)
        # each id's place in its block (what positions, tracks, pitches and controls compare)
        self.place_of = torch.arange(vocab.size) - torch.as_tensor([vocab.offset(n) for n in names])
        bar_length = torch.zeros(vocab.size, dtype=torch.long)
        lo, hi = self.block["TIMESIG"]
        bar_length[lo:hi] = torch.tensor([bar_steps(m, s.steps_per_quarter) for m in encoding.meters])
        self.primer_programs = [v for n, v in vocab.events(primer_ids) if n == "PROGRAM"]
        self.header, self.playing = None, None
        if instruments is not None:
            self._choose(list(instruments), device)
        self._set_controls(encoding, controls, device)
        self._allowed_at = self._rules().to(device)
        self._steps = self._step_table(bar_length).to(device)
        self._bounds = self._bound_columns(device)
        self.given = None
        self._init_state(1, 4 * s.steps_per_quarter, device)
        for i in primer_ids:
            self._update(torch.tensor([int(i)], device=device))
        self.select_rows(torch.zeros(rows, dtype=torch.long, device=device))
        self.state[:, _F_NEW_BARS] = 0  # counts the BARs drawn after the primer: the new bars' controls
        if given is not None:
            if len(primer_ids):
                raise ConfigError("given music (accompaniment, infilling) starts from nothing: no primer ids")
            self._set_given(given, rows, device)

    def _set_controls(self, encoding, request, device) -> None:
        """Requested controls are forced where their tokens go (`KEY`, and `CHORD` and `DENSITY`
        from the request's lists, in each new bar); the others are banned, so the model writes as
        it learned to with that control dropped. (`sampling.files.plan_generation` has checked
        that the model has the controls asked for.)"""
        from melodygen.encodings.multitrack_controls import DENSITY_TOLERANCE, ControlRequest, density_bins

        request = request or ControlRequest()
        key = None if request.key is None else [request.key]
        chords = None if request.chords is None else list(request.chords)
        density = None if request.density is None else [int(d) for d in density_bins(request.density)]
        self.steered = [(name, wanted) for name, wanted in (("KEY", key), ("CHORD", chords),
                                                             ("DENSITY", density)) if name in self.block]
        # the requested values, bar after bar: per control its bounds (value - 1, -(value + 1))
        # in one flat table, and where its list starts in it and how long it is
        self.forced = [(name, wanted) for name, wanted in self.steered if wanted is not None]
        lengths = [len(wanted) for _, wanted in self.forced]
        starts = [sum(lengths[:i]) for i in range(len(lengths))]
        self.forced_bounds = torch.tensor([[v - 1, -(v + 1)] for _, wanted in self.forced for v in wanted],
                                          dtype=torch.long, device=device).reshape(-1, 2)
        self.forced_lengths = torch.tensor(lengths, dtype=torch.long, device=device)
        self.forced_starts = torch.tensor(starts, dtype=torch.long, device=device)
        # strict density: each new bar's note count held within DENSITY_TOLERANCE of the request
        counts = torch.tensor(request.density or (0,), dtype=torch.float64)
        self.fewest = torch.ceil(counts * (1 - DENSITY_TOLERANCE) - 1e-9).long().to(device)
        self.most = torch.floor(counts * (1 + DENSITY_TOLERANCE) + 1e-9).long().to(device)
        self.strict = bool(self.steered) and request.strict_density and request.density is not None
        if self.strict:
            self.note_ids = self._ids_of("POS", "TRACK", "PITCH", "DRUM").to(device)
            eos = torch.arange(self.vocab_size, device=device) == self.eos
            self.closing_ids = self._ids_of("BAR").to(device) | eos

    def _ids_of(self, *names):
        """(V,) bool: the ids of these kinds."""
        ids = torch.zeros(self.vocab_size, dtype=torch.bool)
        for name in names:
            if name in self.block:
                ids[self.block[name][0]:self.block[name][1]] = True
        return ids

    def _rules(self):
        """(phases * (max_tracks + 1), V) bool: what may follow each kind of last id at each track
        count, with everything that depends on nothing else: the header (forced instruments, at
        most max_tracks), tracks that exist and may play, controls not requested, a bar's head
        kept in order up to the next requested control. The rest of the state only narrows a
        row within one block (`_bound_columns`)."""
        T, V, kinds, place = self.max_tracks, self.vocab_size, self.kind_of.cpu(), self.place_of
        phases, counts = len(_KINDS) + 1, torch.arange(T + 1)
        after = torch.tensor([[phase in phases for phases in _FOLLOWERS.values()] for phase in range(phases)])
        rule_of_kind = torch.full((len(_KINDS) + 1,), -1, dtype=torch.long)
        for name, rule in (("PROGRAM", _PROGRAM_RULE), ("BAR", _BAR_RULE), ("TIMESIG", _TIMESIG_RULE),
                           ("POS", _POS_RULE), ("TEMPO", _TEMPO_RULE), ("TRACK", _TRACK_RULE),
                           ("PITCH", _NOTE_RULE), ("DRUM", _NOTE_RULE), ("VEL", _VEL_RULE), ("DUR", _DUR_RULE),
                           ("KEY", _KEY_RULE), ("CHORD", _CHORD_RULE), ("DENSITY", _DENSITY_RULE)):
            rule_of_kind[_KINDS[name]] = rule
        rule = rule_of_kind[kinds]
        rule[self.eos] = _EOS_RULE
        by_phase = after[:, rule.clamp(min=0)] & (rule >= 0)                        # (phases, V)
        by_count = torch.ones(T + 1, V, dtype=torch.bool)                           # (counts, V)
        program, track = kinds == _PROGRAM, kinds == _TRACK
        by_count[:, program] = (counts < T)[:, None]
        if self.header is not None:
            header = self.header.cpu()
            wanted = place[None, program] == header[counts.clamp(max=len(header) - 1)][:, None]
            by_count[:, program] &= (counts < len(header))[:, None] & wanted
        may_play = torch.ones(T, dtype=torch.bool) if self.playing is None else self.playing.cpu()
        by_count[:, track] = (place[None, track] < counts[:, None]) & may_play[place[track]]
        allowed = by_phase[:, None, :] & by_count[None, :, :]                      # (phases, counts, V)
        if self.header is not None:  # the header is whole before the first bar line
            bar = self.block["BAR"][0]
            allowed[_PROGRAM, :, bar] &= counts >= len(self.header)
        if self.steered:
            for name, wanted in self.steered:
                if wanted is None:
                    allowed[:, :, self.block[name][0]:self.block[name][1]] = False
            required = [_HEAD.index(name) for name, _ in self.forced]
            id_place = torch.full((V,), _AFTER_HEAD, dtype=torch.long)
            for head_place, name in enumerate(_HEAD):
                if name in self.block and name != "BAR":  # a bar line closes the head: it comes after it
                    id_place[self.block[name][0]:self.block[name][1]] = head_place
            for phase, head_place in _HEAD_PLACE.items():
                need = min([r for r in required if r > head_place], default=_AFTER_HEAD)
                allowed[phase] &= id_place <= need
        return allowed.reshape(phases * (T + 1), V)

    def _step_table(self, bar_length):
        """((max_tracks + 1) * V, 2 * fields + 4) long: per (track count, id), the new state is
        `state * mul + add` (`mul` 0 sets a field, 1 keeps or counts it); then two columns of
        `status` to set and their values (a drum program marks its track; other ids rewrite the
        no-track columns as they are)."""
        T, V = self.max_tracks, self.vocab_size
        kind, value = self.kind_of.cpu(), self.value_of.cpu()
        mul = torch.ones(T + 1, V, _FIELDS, dtype=torch.long)
        add = torch.zeros(T + 1, V, _FIELDS, dtype=torch.long)

        def put(field, ids, new, keep=0):
            mul[:, ids, field] = keep
            add[:, ids, field] = new

        is_ = {k: kind == k for k in range(len(_KINDS) + 1)}
        bar, pitched = is_[_BAR], is_[_PITCH] | is_[_DRUM]
        counts = torch.arange(T + 1)[:, None]
        new_counts = torch.where(is_[_PROGRAM][None], (counts + 1).clamp(max=T), counts)  # (counts, V)
        real = kind != _START
        mul[:, real, _F_KEY] = 0
        add[:, :, _F_KEY] = torch.where(real[None], kind[None] * (T + 1) + new_counts, 0)
        mul[:, :, _F_ROW] = 0
        add[:, :, _F_ROW] = new_counts * V
        put(_F_POS, bar, -1)
        put(_F_POS, is_[_POS], value[is_[_POS]])
        put(_F_NEG_LENGTH, is_[_TIMESIG], -bar_length[is_[_TIMESIG]])
        put(_F_TRACK1, bar, 0)
        put(_F_TRACK1, is_[_TRACK], value[is_[_TRACK]] + 1)
        put(_F_CUR_PITCHED, bar, 0)
        put(_F_CUR_PITCHED, is_[_TRACK], value[is_[_TRACK]] + 1)
        put(_F_CUR_DRUMS, bar, T + 1)
        put(_F_CUR_DRUMS, is_[_TRACK], value[is_[_TRACK]] + T + 2)
        put(_F_LAST_PITCH, bar | is_[_POS] | is_[_TRACK], -1)
        put(_F_LAST_PITCH, pitched, value[pitched])
        put(_F_POS_NOTES, bar | is_[_POS], 0)
        put(_F_POS_NOTES, is_[_DUR], 1)
        put(_F_NEW_BARS, bar, 1, keep=1)
        put(_F_BAR_NOTES, bar, 0)
        put(_F_BAR_NOTES, pitched, 1, keep=1)
        marks = torch.tensor([0, T + 1, _BIG, _BIG]).repeat(T + 1, V, 1)
        slot = torch.arange(T + 1).clamp(max=T - 1)
        may_play = torch.ones(T, dtype=torch.bool) if self.playing is None else self.playing.cpu()
        drum_program = is_[_PROGRAM] & (value == DRUMS)
        marks[:, drum_program] = torch.stack(
            [slot + 1, slot + T + 2, torch.full_like(slot, _BIG), torch.where(may_play[slot], 0, _BIG)], 1)[:, None]
        return torch.cat([mul, add, marks], 2).reshape((T + 1) * V, 2 * _FIELDS + 4)

    def _bound_columns(self, device):
        """Per id two bounds `threshold < id's number`, each threshold a column of the row's
        `[state, pitch floor, drum floor, track floor, forced controls]` (`_thresholds`); ids
        with nothing to check compare against -_BIG. (2V,) columns and (2V,) numbers."""
        V, place = self.vocab_size, self.place_of
        pitch_floor, drum_floor, track_floor = _FIELDS, _FIELDS + 1, _FIELDS + 2
        column = torch.full((2, V), _F_NEG_BIG, dtype=torch.long)
        number = torch.zeros(2, V, dtype=torch.long)

        def bound(which, name, col, num):
            lo, hi = self.block[name]
            column[which, lo:hi], number[which, lo:hi] = col, num[lo:hi]

        bound(0, "POS", _F_POS, place)                # after the current position
        bound(1, "POS", _F_NEG_LENGTH, -place)        # inside the bar
        bound(0, "TRACK", track_floor, place + 1)   # after the current track, once it has a note here
        bound(0, "PITCH", pitch_floor, place)       # above the last pitch, on a pitched track that plays
        if "DRUM" in self.block:
            bound(0, "DRUM", drum_floor, place)
        for i, (name, _) in enumerate(self.forced):  # the requested value alone
            bound(0, name, track_floor + 1 + 2 * i, place)
            bound(1, name, track_floor + 2 + 2 * i, -place)
        return column.reshape(-1).to(device), number.reshape(-1).to(device)

    def _init_state(self, rows: int, bar_length: int, device) -> None:
        T = self.max_tracks
        state = torch.tensor([0, 0, -1, -bar_length, 0, 0, T + 1, -1, 0, 0, 0, -_BIG], dtype=torch.long)
        self.state = state.repeat(rows, 1).to(device)
        # per track, 0 where it may take pitches (resp. drum hits) now, else _BIG; column 0 (resp.
        # max_tracks + 1) stands for no track
        may_play = torch.ones(T, dtype=torch.bool) if self.playing is None else self.playing.cpu()
        pitched = torch.where(may_play, 0, _BIG)
        status = torch.cat([torch.tensor([_BIG]), pitched, torch.tensor([_BIG]), torch.full((T,), _BIG)])
        self.status = status.repeat(rows, 1).to(device)

    def _choose(self, instruments: list[int], device) -> None:
        """A forced header for a piece begun from nothing; else the primer tracks that may play."""
        primer_tracks = len(self.primer_programs)
        if primer_tracks == 0:
            if len(instruments) > self.max_tracks:
                raise ConfigError(f"{len(instruments)} instruments, more than the model's "
                                  f"max_tracks = {self.max_tracks}")
            self.header = torch.tensor(instruments, device=device)
            self.playing = torch.ones(self.max_tracks, dtype=torch.bool, device=device)
            return
        programs = self.primer_programs
        self.playing = torch.zeros(self.max_tracks, dtype=torch.bool, device=device)
        chosen = [i for i, p in enumerate(programs) if p in instruments]
        if not chosen:
            have = ", ".join(instrument_name(p) for p in programs)
            raise ConfigError(f"none of the instruments asked for is a track of the primer ({have})")
        self.playing[chosen] = True

    def _set_given(self, given, rows: int, device) -> None:
        """Given music as a table per place j in it (j = len: all written): the next given id
        (-1: none to allow) and the thresholds of `_given_mask`'s bounds (`_BIG`: closed)."""
        ids = torch.as_tensor(given.ids, dtype=torch.long)
        free_from = torch.as_tensor(given.free_from, dtype=torch.long)
        n, kind = len(ids), self.kind_of.cpu()[ids]
        zone = ((kind == _POS) | (kind == _BAR)) & (free_from < self.max_tracks)
        before = torch.where(kind == _POS, self.value_of.cpu()[ids], self.block["POS"][1] - self.block["POS"][0])
        closed = torch.full((n + 1,), _BIG, dtype=torch.long)
        table = closed[:, None].repeat(1, 7)
        table[:n, 0] = torch.where(ids == self.eos, -1, ids)  # EOS comes only once all is written
        table[n, 0] = -1
        table[:n, 1] = torch.where(zone, -before, _BIG)       # POS: before the given one
        table[:n, 2] = torch.where(zone, free_from - 1, _BIG)  # TRACK: a free track
        table[:n, 3] = torch.where(zone, -1, _BIG)            # VEL, DUR
        table[n, 4] = -1                                      # EOS once all is written
        table[:n, 5] = torch.where(zone, free_from + 1, _BIG)  # PITCH, DRUM: minus TRACK1 (column 7)
        self.given = ids.to(device)
        self.given_next = torch.cat([ids, torch.tensor([-1])]).to(device)  # what a row that draws moves past
        self.given_table = table.to(device)
        self.given_at = torch.zeros(rows, dtype=torch.long, device=device)
        column = torch.full((self.vocab_size,), 6, dtype=torch.long)  # closed
        number = torch.zeros(self.vocab_size, dtype=torch.long)
        for name, col, num in (("POS", 1, -self.place_of), ("TRACK", 2, self.place_of), ("VEL", 3, number),
                               ("DUR", 3, number), ("PITCH", 7, number + 1), ("DRUM", 7, number + 1)):
            if name in self.block:
                lo, hi = self.block[name]
                column[lo:hi], number[lo:hi] = col, num[lo:hi]
        column[self.eos] = 4
        self.given_bounds = column.to(device), number.to(device)
        self.vocab_ids = torch.arange(self.vocab_size, device=device)

    def __call__(self, logits, last_ids):
        if last_ids is not None:
            self._update(last_ids)
            if self.given is not None:
                self._follow_given(last_ids)
        state = self.state
        allowed = self._allowed_at.index_select(0, state[:, _F_KEY])
        column, number = self._bounds
        thresholds = self._thresholds(state)
        within = thresholds.index_select(1, column) < number
        allowed = allowed & within.view(len(state), 2, -1).all(1)
        if self.strict:
            allowed = self._hold_density(allowed)
        if self.given is not None:
            allowed = allowed & self._given_mask(state)
        return logits.masked_fill(~allowed, float("-inf"))

    def _thresholds(self, state):
        """(B, fields + 3 + 2 * forced controls): the state, then the floors that mix fields:
        the last pitch, or _BIG where the current track does not take pitches (resp. drum hits)
        now; the current track where this position has a note, else -1 (as track + 1); the
        requested controls' bounds for this bar."""
        floors = self.status.gather(1, state[:, _F_CUR_PITCHED:_F_CUR_DRUMS + 1]) + state[:, _F_LAST_PITCH, None]
        track_floor = state[:, _F_POS_NOTES, None] * state[:, _F_TRACK1, None]
        parts = [state, floors, track_floor]
        if self.forced:
            at = self._bar(state)[:, None] % self.forced_lengths + self.forced_starts
            parts.append(self.forced_bounds.index_select(0, at.view(-1)).view(len(state), -1))
        return torch.cat(parts, 1)

    @staticmethod
    def _bar(state):
        """(B,) which new bar each row is in (0 before the first)."""
        return (state[:, _F_NEW_BARS] - 1).clamp(min=0)

    def _hold_density(self, allowed):
        """Strict density: no new note once a new bar has the most notes the request allows, no
        bar line or end before it has the fewest (unless nothing else is left to draw)."""
        bar, notes, steered = self._bar(self.state), self.state[:, _F_BAR_NOTES], self.state[:, _F_NEW_BARS] >= 1
        full = steered & (notes >= self.most[bar % len(self.most)])
        short = steered & (notes < self.fewest[bar % len(self.fewest)])
        allowed = allowed & ~(full[:, None] & self.note_ids)
        bar_id = self.block["BAR"][0]
        closing = allowed[:, bar_id]
        allowed = allowed & ~(short[:, None] & self.closing_ids)
        stuck = ~allowed.any(dim=1)
        allowed[:, bar_id] |= stuck & closing
        return allowed

    def _given_mask(self, state):
        """Where the next given id is a note, tempo, meter or header id: that id alone. Where it is
        a position or bar line: it, or notes of the tracks the model may write (`free_from`) at
        the current position or at a free position before the given one. Past the end: EOS."""
        at = self.given_table.index_select(0, self.given_at)
        free_track = at[:, 5, None] - state[:, _F_TRACK1, None]  # below 1 where the current track is free
        column, number = self.given_bounds
        zone = torch.cat([at, free_track], 1).index_select(1, column) < number
        return zone | (self.vocab_ids == at[:, :1])

    def _follow_given(self, ids) -> None:
        """A row that drew its next given id moves past it."""
        self.given_at = self.given_at + (ids == self.given_next[self.given_at])

    def given_done(self, rows=None):
        """(B,) bool: which rows have written all the given music (None without given music)."""
        return None if self.given is None else self.given_at >= len(self.given)

    def _update(self, ids) -> None:
        """Takes each row's last id (B,) into its state: one row of `_steps` per (track count, id)."""
        step = self._steps.index_select(0, ids + self.state[:, _F_ROW])
        mul, add, mark_at, mark = step.split([_FIELDS, _FIELDS, 2, 2], 1)
        self.state = torch.addcmul(add, self.state, mul)
        self.status.scatter_(1, mark_at, mark)

    @property
    def new_bars(self):
        """(B,) the BARs each row drew after the primer."""
        return self.state[:, _F_NEW_BARS]

    def select_rows(self, rows) -> None:
        self.state, self.status = self.state.index_select(0, rows), self.status.index_select(0, rows)
        if self.given is not None:
            self.given_at = self.given_at.index_select(0, rows)
