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
their tokens go and bans the controls not requested. State updates are
whole-tensor ops (no host sync per draw).
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


class MultitrackGrammar:
    def __init__(self, encoding, primer_ids: Sequence[int], rows: int, device="cpu",
                 instruments: Sequence[int] | None = None, given=None, controls=None):
        from melodygen.encodings.vocab import EOS_ID
        from melodygen.meter import bar_steps

        vocab, s = encoding.vocab, encoding.settings
        self.max_tracks = s.max_tracks
        self.eos = EOS_ID
        present = {r.name for r in vocab.ranges}
        self.block = {name: (vocab.offset(name), vocab.offset(name) + vocab.range(name).size)
                      for name in _KINDS if name in present}
        kinds, values = vocab.split(range(vocab.size))
        names = [vocab.ranges[k].name for k in kinds.tolist()]
        self.kind_of = torch.tensor([_KINDS.get(n, _START) for n in names], device=device)
        self.value_of = torch.as_tensor(values, device=device)
        bar_length = torch.zeros(vocab.size, dtype=torch.long)
        lo, hi = self.block["TIMESIG"]
        bar_length[lo:hi] = torch.tensor([bar_steps(m, s.steps_per_quarter) for m in encoding.meters])
        self.bar_length_of = bar_length.to(device)
        self.positions = torch.arange(self.block["POS"][1] - self.block["POS"][0], device=device)
        self.tracks = torch.arange(self.max_tracks, device=device)
        self.pitches = torch.arange(128, device=device)
        self.after = torch.tensor([[phase in phases for phases in _FOLLOWERS.values()]
                                   for phase in range(len(_KINDS) + 1)], device=device)
        self.given = None
        self._init_state(1, 4 * s.steps_per_quarter, device)
        for i in primer_ids:
            self._update(torch.tensor([int(i)], device=device))
        self.select_rows(torch.zeros(rows, dtype=torch.long, device=device))
        self.new_bars.zero_()  # counts the BARs drawn after the primer: the new bars' controls
        self.primer_programs = [v for n, v in vocab.events(primer_ids) if n == "PROGRAM"]
        self.header, self.playing = None, None
        if instruments is not None:
            self._choose(list(instruments), device)
        if given is not None:
            if len(primer_ids):
                raise ConfigError("given music (accompaniment, infilling) starts from nothing: no primer ids")
            self.given = torch.as_tensor(given.ids, dtype=torch.long, device=device)
            self.given_free = torch.as_tensor(given.free_from, dtype=torch.long, device=device)
            self.given_at = torch.zeros(rows, dtype=torch.long, device=device)
        self._set_controls(encoding, controls, device)

    def _set_controls(self, encoding, request, device) -> None:
        """Requested controls are forced where their tokens go (`KEY`, and `CHORD` and `DENSITY`
        from the request's lists, in each new bar); the others are banned, so the model writes as
        it learned to with that control dropped. (`sampling.files.plan_generation` has checked
        that the model has the controls asked for.)"""
        from melodygen.encodings.multitrack_controls import DENSITY_TOLERANCE, ControlRequest, density_bins

        request = request or ControlRequest()
        self.key = None if request.key is None else torch.tensor([request.key], device=device)
        self.chords = None if request.chords is None else torch.tensor(request.chords, device=device)
        self.density = (None if request.density is None
                        else torch.as_tensor(density_bins(request.density), device=device))
        # strict density: each new bar's note count held within DENSITY_TOLERANCE of the request
        counts = torch.tensor(request.density or (0,), dtype=torch.float64)
        self.fewest = torch.ceil(counts * (1 - DENSITY_TOLERANCE) - 1e-9).long().to(device)
        self.most = torch.floor(counts * (1 + DENSITY_TOLERANCE) + 1e-9).long().to(device)
        self.strict = request.strict_density and request.density is not None
        self.steered = [(name, wanted) for name, wanted in (("KEY", self.key), ("CHORD", self.chords),
                                                             ("DENSITY", self.density)) if name in self.block]
        required = [_HEAD.index(name) for name, wanted in self.steered if wanted is not None]
        next_required = [min([r for r in required if r > place], default=_AFTER_HEAD) for place in range(_AFTER_HEAD)]
        self.next_required = torch.tensor(next_required, device=device)
        head_place = torch.full((len(_KINDS) + 1,), -1, dtype=torch.long)
        for phase, place in _HEAD_PLACE.items():
            head_place[phase] = place
        self.head_place = head_place.to(device)
        id_place = torch.full((encoding.vocab.size,), _AFTER_HEAD, dtype=torch.long, device=device)
        for place, name in enumerate(_HEAD):
            if name in self.block and name != "BAR":  # a bar line closes the head: it comes after it
                id_place[self.block[name][0]:self.block[name][1]] = place
        self.id_place = id_place

    def _init_state(self, rows: int, bar_length: int, device) -> None:
        def full(value):
            return torch.full((rows,), value, dtype=torch.long, device=device)

        self.phase, self.n_tracks, self.bar_length = full(_START), full(0), full(bar_length)
        self.pos, self.track, self.last_pitch = full(-1), full(-1), full(-1)
        self.pos_notes = torch.zeros(rows, dtype=torch.bool, device=device)
        self.is_drum = torch.zeros(rows, self.max_tracks, dtype=torch.bool, device=device)
        self.new_bars, self.bar_notes = full(0), full(0)

    def _choose(self, instruments: list[int], device) -> None:
        """A forced header for a piece begun from nothing; else the primer tracks that may play."""
        primer_tracks = int(self.n_tracks[0])
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

    def __call__(self, logits, last_ids):
        if last_ids is not None:
            self._update(last_ids)
            if self.given is not None:
                self._follow_given(last_ids)
        allowed = torch.zeros(logits.shape, dtype=torch.bool, device=logits.device)
        phase = self.phase
        may = self.after[phase].unbind(1)  # (B,) per rule: what the last id lets come next

        def put(name, rows, values=None):
            lo, hi = self.block[name]
            allowed[:, lo:hi] = rows[:, None] if values is None else rows[:, None] & values

        after_content = may[_EOS_RULE]
        programs = may[_PROGRAM_RULE] & (self.n_tracks < self.max_tracks)
        bar = may[_BAR_RULE]
        if self.header is not None:
            k = self.n_tracks.clamp(max=len(self.header) - 1)
            wanted = torch.nn.functional.one_hot(self.header[k], DRUMS + 1).bool()
            put("PROGRAM", programs & (self.n_tracks < len(self.header)), wanted)
            bar = bar & ((self.n_tracks >= len(self.header)) | (phase != _PROGRAM))
        else:
            put("PROGRAM", programs)
        allowed[:, self.block["BAR"][0]] = bar
        put("TIMESIG", may[_TIMESIG_RULE])
        put("POS", may[_POS_RULE],
            (self.positions[None] > self.pos[:, None]) & (self.positions[None] < self.bar_length[:, None]))
        put("TEMPO", may[_TEMPO_RULE])
        track_ok = (self.tracks[None] < self.n_tracks[:, None]) & (
            (self.tracks[None] > self.track[:, None]) | ~self.pos_notes[:, None])
        if self.playing is not None:
            track_ok = track_ok & self.playing[None]
        put("TRACK", may[_TRACK_RULE], track_ok)
        current = self.track.clamp(min=0)
        on_track = (self.track >= 0) & may[_NOTE_RULE]
        if self.playing is not None:
            on_track = on_track & self.playing[current]
        drum = self.is_drum.gather(1, current[:, None])[:, 0]
        higher = self.pitches[None] > self.last_pitch[:, None]
        put("PITCH", on_track & ~drum, higher)
        put("DRUM", on_track & drum, higher)
        put("VEL", may[_VEL_RULE])
        put("DUR", may[_DUR_RULE])
        allowed[:, self.eos] = after_content
        if self.steered:  # an encoding with controls
            self._steer_controls(allowed, may)
        if self.given is not None:
            allowed &= self._given_mask(allowed)
        return logits.masked_fill(~allowed, float("-inf"))

    def _steer_controls(self, allowed, may) -> None:
        """Force requested controls into their slots and ban the others (`_set_controls`)."""
        bar = (self.new_bars - 1).clamp(min=0)
        rules = {"KEY": _KEY_RULE, "CHORD": _CHORD_RULE, "DENSITY": _DENSITY_RULE}
        for name, wanted in self.steered:
            lo, hi = self.block[name]
            allowed[:, lo:hi] = False
            if wanted is not None:
                forced = wanted[bar % len(wanted)]
                allowed[torch.arange(len(bar), device=bar.device), lo + forced] = may[rules[name]]
        place = self.head_place[self.phase]
        need = self.next_required[place.clamp(min=0)]
        allowed &= (place < 0)[:, None] | (self.id_place[None] <= need[:, None])
        if self.strict:
            self._hold_density(allowed, bar)

    def _hold_density(self, allowed, bar) -> None:
        """Strict density: no new note once a new bar has the most notes the request allows, no
        bar line or end before it has the fewest (unless nothing else is left to draw)."""
        steered = self.new_bars >= 1
        full = steered & (self.bar_notes >= self.most[bar % len(self.most)])
        short = steered & (self.bar_notes < self.fewest[bar % len(self.fewest)])
        for name in ("POS", "TRACK", "PITCH", "DRUM"):
            lo, hi = self.block[name]
            allowed[full, lo:hi] = False
        closing = allowed[:, self.block["BAR"][0]].clone()
        allowed[short, self.block["BAR"][0]] = False
        allowed[short, self.eos] = False
        stuck = ~allowed.any(dim=1)
        allowed[stuck, self.block["BAR"][0]] = closing[stuck]

    def _given_mask(self, allowed):
        """Where the next given id is a note, tempo, meter or header id: that id alone. Where it is
        a position or bar line: it, or notes of the tracks the model may write (`free_from`) at
        the current position or at a free position before the given one. Past the end: EOS."""
        last = len(self.given) - 1
        done = self.given_at > last
        at = self.given_at.clamp(max=last)
        nxt, free_from = self.given[at], self.given_free[at]
        kind = self.kind_of[nxt]
        mask = torch.zeros_like(allowed)
        mask.scatter_(1, nxt[:, None], (~done)[:, None])
        zone = ~done & ((kind == _POS) | (kind == _BAR)) & (free_from < self.max_tracks)
        before = torch.where(kind == _POS, self.value_of[nxt], len(self.positions))
        free_track = zone & (self.track >= free_from)

        def allow(name, rows, values=None):
            lo, hi = self.block[name]
            mask[:, lo:hi] |= rows[:, None] if values is None else rows[:, None] & values

        allow("POS", zone, self.positions[None] < before[:, None])
        allow("TRACK", zone, self.tracks[None] >= free_from[:, None])
        allow("PITCH", free_track)
        allow("DRUM", free_track)
        allow("VEL", zone)
        allow("DUR", zone)
        mask[:, self.eos] = done
        return mask

    def _follow_given(self, ids) -> None:
        """A row that drew its next given id moves past it."""
        last = len(self.given) - 1
        hit = (self.given_at <= last) & (ids == self.given[self.given_at.clamp(max=last)])
        self.given_at = self.given_at + hit.long()

    def given_done(self, rows=None):
        """(B,) bool: which rows have written all the given music (None without given music)."""
        return None if self.given is None else self.given_at >= len(self.given)

    def _update(self, ids) -> None:
        """Takes each row's last id (B,) into its state."""
        kind, value = self.kind_of[ids], self.value_of[ids]
        is_program = kind == _PROGRAM
        slot = torch.nn.functional.one_hot(self.n_tracks.clamp(max=self.max_tracks - 1), self.max_tracks).bool()
        self.is_drum = self.is_drum | (slot & (is_program & (value == DRUMS))[:, None])
        self.n_tracks = self.n_tracks + is_program.long()
        is_bar, is_pos, is_track = kind == _BAR, kind == _POS, kind == _TRACK
        self.bar_length = torch.where(kind == _TIMESIG, self.bar_length_of[ids], self.bar_length)
        self.pos = torch.where(is_bar, -1, torch.where(is_pos, value, self.pos))
        self.track = torch.where(is_bar, -1, torch.where(is_track, value, self.track))
        self.pos_notes = (self.pos_notes & ~(is_bar | is_pos)) | (kind == _DUR)
        pitched = (kind == _PITCH) | (kind == _DRUM)
        self.last_pitch = torch.where(is_bar | is_pos | is_track, -1,
                                      torch.where(pitched, value, self.last_pitch))
        self.phase = torch.where(kind != _START, kind, self.phase)
        self.new_bars = self.new_bars + is_bar.long()
        self.bar_notes = torch.where(is_bar, 0, self.bar_notes + pitched.long())

    def select_rows(self, rows) -> None:
        for name in ("phase", "n_tracks", "bar_length", "pos", "track", "last_pitch", "pos_notes", "is_drum",
                     "new_bars", "bar_notes"):
            setattr(self, name, getattr(self, name).index_select(0, rows))
        if self.given is not None:
            self.given_at = self.given_at.index_select(0, rows)
