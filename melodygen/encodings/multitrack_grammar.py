"""The multitrack encoding's grammar as a logit processor, composed of parts.

Per row, a small state (what the last id was, the bar's length, the position, the current track,
the last pitch at this position, how many header tracks and which are drums) decides which ids
may come next, so a sampled piece always decodes whole. This module owns that syntax:

    header   PROGRAM...        (at least one, at most max_tracks) then BAR
    bar      BAR [TIMESIG] [KEY] [CHORD] [DENSITY] (POS [TEMPO] ([TRACK] PITCH|DRUM VEL DUR)*)*
             or BAR [TIMESIG] [KEY] [CHORD] [DENSITY] REPEAT(k) [SHIFT]   (k: at most the bars before it)
             and with varied repeats, REPEAT(k) [SHIFT] then (POS [TEMPO] ([TRACK] PITCH|DRUM VEL DUR)*)*:
             the cut's POS at 1 or later, and no track current after it, as at a bar line
    POS      strictly after the previous position, inside the bar's length
    TRACK    a header track; within a position, tracks ascend
    PITCH    on a pitched track, DRUM on a drum track; ascending within (position, track)
    EOS      only where a bar, meter, tempo or note is complete

What a request adds is a `GrammarPart`, each owned by the module of its job and composed here:
`multitrack_tracks.TrackChoice` (which instruments a piece gets, which tracks may play),
`multitrack_control_rules.ControlRules` (requested KEY, CHORD and DENSITY forced where their
tokens go, the others banned, strict density), `multitrack_given.GivenRules` (given music
forced in, the model writing only in its gaps) and `multitrack_form.FormRules`/`FormChords` (a
form plan's repeats, and chords that follow it). A part narrows the grammar in up to three ways,
each folded into the syntax's own work so that composing costs no extra pass per draw:

- `restrict_rules(allowed, grammar)`: edits the precomputed (phase, track count, V) table of what
  may follow each kind of last id, once, when the grammar is built;
- `bounds(grammar)` + `thresholds(state)`: per-id comparisons against per-row thresholds of its
  own, evaluated in the same comparison as the syntax's;
- `mask(allowed, state)` (+ `follow(ids)`, `select_rows(rows)`): a per-draw mask with a state of
  its own, for what no table can say (given music, a bar's note count).

The grammar runs once per drawn id, and at one row each small tensor op costs more in dispatch
than in work, so a draw is a handful of table lookups rather than a rule at a time (no host sync
per draw, any batch size, any device):

- the state is one (B, fields) tensor, and one lookup by (track count, id) gives every field's
  new value as `old * mul + add` (`_update`);
- what the rules allow given the last id's kind and the track count is one precomputed (B, V)
  row per (phase, track count) (`_allowed_at`);
- what depends on the rest of the state (positions after the current one, pitches above the
  last, tracks after the current one, the parts' bounds) is one comparison per id against a
  per-row threshold that a per-id column index picks (`_bound_columns`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from melodygen.errors import ConfigError
from melodygen.instruments import DRUMS

# What the last id was (0: nothing yet, or a special id).
(_START, _PROGRAM, _BAR, _TIMESIG, _POS, _TEMPO, _TRACK, _PITCH, _DRUM, _VEL, _DUR, _KEY, _CHORD, _DENSITY,
 _REPEAT, _SHIFT) = range(16)
# What may follow each kind of last id (before the state's own limits), as one table indexed by
# the rows' phases: one lookup per draw instead of a comparison per phase.
_HEAD_END = (_BAR, _TIMESIG, _KEY, _CHORD, _DENSITY)  # where a bar's head may end
_BAR_END = (*_HEAD_END, _TEMPO, _DUR)  # where a bar of notes may close (or be empty)
_FOLLOWERS = {
    "EOS": (*_BAR_END, _REPEAT, _SHIFT), "PROGRAM": (_START, _PROGRAM), "BAR": (_PROGRAM, *_BAR_END, _REPEAT, _SHIFT),
    "TIMESIG": (_BAR,), "POS": _BAR_END, "TEMPO": (_POS,), "TRACK": (_POS, _TEMPO, _DUR),
    "NOTE": (_POS, _TEMPO, _DUR, _TRACK), "VEL": (_PITCH, _DRUM), "DUR": (_VEL,),
    "KEY": (_BAR, _TIMESIG), "CHORD": (_BAR, _TIMESIG, _KEY), "DENSITY": (_BAR, _TIMESIG, _KEY, _CHORD),
    "REPEAT": _HEAD_END, "SHIFT": (_REPEAT,)}
(_EOS_RULE, _PROGRAM_RULE, _BAR_RULE, _TIMESIG_RULE, _POS_RULE, _TEMPO_RULE, _TRACK_RULE, _NOTE_RULE,
 _VEL_RULE, _DUR_RULE, _KEY_RULE, _CHORD_RULE, _DENSITY_RULE, _REPEAT_RULE, _SHIFT_RULE) = range(len(_FOLLOWERS))
KINDS = {"PROGRAM": _PROGRAM, "BAR": _BAR, "TIMESIG": _TIMESIG, "POS": _POS, "TEMPO": _TEMPO,
          "TRACK": _TRACK, "PITCH": _PITCH, "DRUM": _DRUM, "VEL": _VEL, "DUR": _DUR,
          "KEY": _KEY, "CHORD": _CHORD, "DENSITY": _DENSITY, "REPEAT": _REPEAT, "SHIFT": _SHIFT}
# A bar opens BAR [TIMESIG] [KEY] [CHORD] [DENSITY]: each phase's place in that head, and each
# id's (everything that is not one of them comes after the head).
HEAD = ("BAR", "TIMESIG", "KEY", "CHORD", "DENSITY")
HEAD_PLACE = {KINDS[name]: place for place, name in enumerate(HEAD)}
AFTER_HEAD = len(HEAD)


# The state's fields: columns of one (B, fields) long tensor, so that one lookup updates them all.
# Parts read TRACK1, NEW_BARS and BAR_NOTES.
(_F_KEY,          # phase * (max_tracks + 1) + track count: the row of `_allowed_at`
 _F_ROW,          # track count * V: where this row's ids start in `_steps`
 POS_FIELD,       # the current position's value (-1: none yet in this bar)
 _F_NEG_LENGTH,   # minus the bar's length in steps (a position must be below it)
 TRACK_FIELD,        # the current track + 1 (0: none yet in this bar)
 _F_CUR_PITCHED,  # the current track's column in `status` for pitches (0: no track)
 _F_CUR_DRUMS,    # ... and for drum hits (max_tracks + 1: no track)
 _F_LAST_PITCH,   # the last pitch or drum at this (position, track) (-1: none)
 _F_POS_NOTES,    # 1 where this position has a note already (tracks must then ascend)
 NEW_BARS_FIELD,      # BARs drawn after the primer
 BAR_NOTES_FIELD,     # notes in the current bar
 _F_NEG_BIG,      # constant -BIG: the threshold of a bound that always holds
 _F_NEG_BEFORE,   # minus the bars before the current one (a REPEAT reaches back at most that far)
 ) = range(13)
_FIELDS = 13
BIG = 1 << 20  # a threshold no id's place reaches


class GrammarPart:
    """What a request adds to the syntax (module docstring); every hook is optional and the
    defaults add nothing. A part with a `mask` and a state of its own also keeps its rows in
    step with the grammar's through `follow` and `select_rows`."""

    playing = None  # (max_tracks,) bool: the tracks that may take new notes (None: all)

    def restrict_rules(self, allowed: torch.Tensor, grammar: MultitrackGrammar) -> None:
        """Narrow `allowed` ((phases, track counts, V) bool) in place."""

    def bounds(self, grammar: MultitrackGrammar) -> list[tuple[int, str, int, torch.Tensor]]:
        """(which of the 2 bounds, token kind, column of `thresholds`, (V,) numbers): the ids of
        that kind are allowed where `thresholds(state)[:, column] < number`."""
        return []

    def thresholds(self, state: torch.Tensor) -> torch.Tensor | None:
        """(B, columns) long: the per-row thresholds `bounds` compares with."""
        return None

    def mask(self, allowed: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """(B, V) bool: `allowed` narrowed for this draw."""
        return allowed

    def follow(self, ids: torch.Tensor, state: torch.Tensor) -> None:
        """Take each row's last id (B,) into the part's own state (`state`: the syntax's, with
        that id taken in)."""

    def select_rows(self, rows: torch.Tensor) -> None:
        """Reorder or copy the part's rows as the grammar's (beam search)."""


class MultitrackGrammar:
    """The multitrack encoding's grammar as one logit processor: per row, the ids that keep the
    stream decodable, narrowed by the request's `parts`; the module docstring explains the
    tables it looks them up in."""

    def __init__(self, encoding, primer_ids: Sequence[int], rows: int, device="cpu",
                 parts: Sequence[GrammarPart] = ()):
        from melodygen.encodings.vocab import EOS_ID
        from melodygen.meter import bar_steps

        vocab, s = encoding.vocab, encoding.settings
        self.max_tracks = s.max_tracks
        self.varied = s.varied_repeats
        self.eos = EOS_ID
        self.vocab_size = vocab.size
        present = {r.name for r in vocab.ranges}
        self.block = {name: (vocab.offset(name), vocab.offset(name) + vocab.range(name).size)
                      for name in KINDS if name in present}
        kinds, values = vocab.split(range(vocab.size))
        names = [vocab.ranges[k].name for k in kinds.tolist()]
        self.kind_of = torch.tensor([KINDS.get(n, _START) for n in names], device=device)
        self.value_of = torch.as_tensor(values, device=device)
        # each id's place in its block (what positions, tracks, pitches and controls compare)
        self.place_of = torch.arange(vocab.size) - torch.as_tensor([vocab.offset(n) for n in names])
        bar_length = torch.zeros(vocab.size, dtype=torch.long)
        lo, hi = self.block["TIMESIG"]
        bar_length[lo:hi] = torch.tensor([bar_steps(m, s.steps_per_quarter) for m in encoding.meters])
        self.parts = list(parts)
        playing = next((p.playing for p in self.parts if p.playing is not None), None)
        self.may_play = torch.ones(s.max_tracks, dtype=torch.bool) if playing is None else playing.cpu()
        self._masks = [p for p in self.parts if type(p).mask is not GrammarPart.mask]
        self._followers = [p for p in self.parts if type(p).follow is not GrammarPart.follow]
        self._allowed_at = self._rules().to(device)
        self._steps = self._step_table(bar_length).to(device)
        self._bounds = self._bound_columns(device)
        self._init_state(1, 4 * s.steps_per_quarter, device)
        for i in primer_ids:
            self._update(torch.tensor([int(i)], device=device))
        self.state = self.state.index_select(0, torch.zeros(rows, dtype=torch.long, device=device))
        self.status = self.status.index_select(0, torch.zeros(rows, dtype=torch.long, device=device))
        self.state[:, NEW_BARS_FIELD] = 0  # counts the BARs drawn after the primer: the new bars' controls

    def ids_of(self, *names) -> torch.Tensor:
        """(V,) bool on the CPU: the ids of these kinds."""
        ids = torch.zeros(self.vocab_size, dtype=torch.bool)
        for name in names:
            if name in self.block:
                ids[self.block[name][0]:self.block[name][1]] = True
        return ids

    def _rules(self):
        """(phases * (max_tracks + 1), V) bool: what may follow each kind of last id at each track
        count, with everything that depends on nothing else (the syntax: at most max_tracks
        header tracks, tracks that exist and may play), then what the parts add. The rest of the
        state only narrows a row within one block (`_bound_columns`)."""
        T, V, kinds, place = self.max_tracks, self.vocab_size, self.kind_of.cpu(), self.place_of
        phases, counts = len(KINDS) + 1, torch.arange(T + 1)
        after = torch.tensor([[phase in phases for phases in _FOLLOWERS.values()] for phase in range(phases)])
        if self.varied:  # a varied repeat's cut: a position right after REPEAT [SHIFT]
            after[[_REPEAT, _SHIFT], _POS_RULE] = True
        rule_of_kind = torch.full((len(KINDS) + 1,), -1, dtype=torch.long)
        for name, rule in (("PROGRAM", _PROGRAM_RULE), ("BAR", _BAR_RULE), ("TIMESIG", _TIMESIG_RULE),
                           ("POS", _POS_RULE), ("TEMPO", _TEMPO_RULE), ("TRACK", _TRACK_RULE),
                           ("PITCH", _NOTE_RULE), ("DRUM", _NOTE_RULE), ("VEL", _VEL_RULE), ("DUR", _DUR_RULE),
                           ("KEY", _KEY_RULE), ("CHORD", _CHORD_RULE), ("DENSITY", _DENSITY_RULE),
                           ("REPEAT", _REPEAT_RULE), ("SHIFT", _SHIFT_RULE)):
            rule_of_kind[KINDS[name]] = rule
        rule = rule_of_kind[kinds]
        rule[self.eos] = _EOS_RULE
        by_phase = after[:, rule.clamp(min=0)] & (rule >= 0)                        # (phases, V)
        by_count = torch.ones(T + 1, V, dtype=torch.bool)                           # (counts, V)
        by_count[:, kinds == _PROGRAM] = (counts < T)[:, None]
        track = kinds == _TRACK
        by_count[:, track] = (place[None, track] < counts[:, None]) & self.may_play[place[track]]
        allowed = by_phase[:, None, :] & by_count[None, :, :]                      # (phases, counts, V)
        for part in self.parts:
            part.restrict_rules(allowed, self)
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

        is_ = {k: kind == k for k in range(len(KINDS) + 1)}
        bar, pitched = is_[_BAR], is_[_PITCH] | is_[_DRUM]
        counts = torch.arange(T + 1)[:, None]
        new_counts = torch.where(is_[_PROGRAM][None], (counts + 1).clamp(max=T), counts)  # (counts, V)
        real = kind != _START
        mul[:, real, _F_KEY] = 0
        add[:, :, _F_KEY] = torch.where(real[None], kind[None] * (T + 1) + new_counts, 0)
        mul[:, :, _F_ROW] = 0
        add[:, :, _F_ROW] = new_counts * V
        put(POS_FIELD, bar, -1)
        put(POS_FIELD, is_[_POS], value[is_[_POS]])
        if self.varied:
            put(POS_FIELD, is_[_REPEAT], 0)  # a cut copies something: its position is 1 or later
        put(_F_NEG_LENGTH, is_[_TIMESIG], -bar_length[is_[_TIMESIG]])
        put(TRACK_FIELD, bar, 0)
        put(TRACK_FIELD, is_[_TRACK], value[is_[_TRACK]] + 1)
        put(_F_CUR_PITCHED, bar, 0)
        put(_F_CUR_PITCHED, is_[_TRACK], value[is_[_TRACK]] + 1)
        put(_F_CUR_DRUMS, bar, T + 1)
        put(_F_CUR_DRUMS, is_[_TRACK], value[is_[_TRACK]] + T + 2)
        put(_F_LAST_PITCH, bar | is_[_POS] | is_[_TRACK], -1)
        put(_F_LAST_PITCH, pitched, value[pitched])
        put(_F_POS_NOTES, bar | is_[_POS], 0)
        put(_F_POS_NOTES, is_[_DUR], 1)
        put(NEW_BARS_FIELD, bar, 1, keep=1)
        put(BAR_NOTES_FIELD, bar, 0)
        put(BAR_NOTES_FIELD, pitched, 1, keep=1)
        mul[:, bar, _F_NEG_BEFORE], add[:, bar, _F_NEG_BEFORE] = 1, -1  # counts down from 1 at the first BAR
        marks = torch.tensor([0, T + 1, BIG, BIG]).repeat(T + 1, V, 1)
        slot = torch.arange(T + 1).clamp(max=T - 1)
        drum_program = is_[_PROGRAM] & (value == DRUMS)
        marks[:, drum_program] = torch.stack(
            [slot + 1, slot + T + 2, torch.full_like(slot, BIG), torch.where(self.may_play[slot], 0, BIG)], 1)[:, None]
        return torch.cat([mul, add, marks], 2).reshape((T + 1) * V, 2 * _FIELDS + 4)

    def _bound_columns(self, device):
        """Per id two bounds `threshold < id's number`, each threshold a column of the row's
        `[state, pitch floor, drum floor, track floor, the parts' thresholds]` (`_thresholds`);
        ids with nothing to check compare against -BIG. (2V,) columns and (2V,) numbers."""
        V, place = self.vocab_size, self.place_of
        pitch_floor, drum_floor, track_floor = _FIELDS, _FIELDS + 1, _FIELDS + 2
        column = torch.full((2, V), _F_NEG_BIG, dtype=torch.long)
        number = torch.zeros(2, V, dtype=torch.long)

        def bound(which, name, col, num):
            lo, hi = self.block[name]
            column[which, lo:hi], number[which, lo:hi] = col, num[lo:hi]

        bound(0, "POS", POS_FIELD, place)             # after the current position
        bound(1, "POS", _F_NEG_LENGTH, -place)        # inside the bar
        bound(0, "TRACK", track_floor, place + 1)   # after the current track, once it has a note here
        bound(0, "PITCH", pitch_floor, place)       # above the last pitch, on a pitched track that plays
        if "DRUM" in self.block:
            bound(0, "DRUM", drum_floor, place)
        if "REPEAT" in self.block:
            bound(1, "REPEAT", _F_NEG_BEFORE, -place)  # k - 1 < the bars before this one
        first = track_floor + 1
        for part in self.parts:
            found = part.bounds(self)
            for which, name, col, num in found:
                bound(which, name, first + col, num)
            first += 1 + max((col for _, _, col, _ in found), default=-1)
        return column.reshape(-1).to(device), number.reshape(-1).to(device)

    def _init_state(self, rows: int, bar_length: int, device) -> None:
        T = self.max_tracks
        state = torch.tensor([0, 0, -1, -bar_length, 0, 0, T + 1, -1, 0, 0, 0, -BIG, 1], dtype=torch.long)
        self.state = state.repeat(rows, 1).to(device)
        # per track, 0 where it may take pitches (resp. drum hits) now, else BIG; column 0 (resp.
        # max_tracks + 1) stands for no track
        pitched = torch.where(self.may_play, 0, BIG)
        status = torch.cat([torch.tensor([BIG]), pitched, torch.tensor([BIG]), torch.full((T,), BIG)])
        self.status = status.repeat(rows, 1).to(device)

    def __call__(self, logits, last_ids):
        if last_ids is not None:
            self._update(last_ids)
            for part in self._followers:
                part.follow(last_ids, self.state)
        state = self.state
        allowed = self._allowed_at.index_select(0, state[:, _F_KEY])
        column, number = self._bounds
        within = self._thresholds(state).index_select(1, column) < number
        allowed = allowed & within.view(len(state), 2, -1).all(1)
        for part in self._masks:
            allowed = part.mask(allowed, state)
        return logits.masked_fill(~allowed, float("-inf"))

    def _thresholds(self, state):
        """(B, fields + 3 + the parts' columns): the state, then the floors that mix fields: the
        last pitch, or BIG where the current track does not take pitches (resp. drum hits) now;
        the current track where this position has a note, else -1 (as track + 1); then each
        part's thresholds."""
        floors = self.status.gather(1, state[:, _F_CUR_PITCHED:_F_CUR_DRUMS + 1]) + state[:, _F_LAST_PITCH, None]
        track_floor = state[:, _F_POS_NOTES, None] * state[:, TRACK_FIELD, None]
        parts = [state, floors, track_floor]
        for part in self.parts:
            found = part.thresholds(state)
            if found is not None:
                parts.append(found)
        return torch.cat(parts, 1)

    def _update(self, ids) -> None:
        """Takes each row's last id (B,) into its state: one row of `_steps` per (track count, id)."""
        step = self._steps.index_select(0, ids + self.state[:, _F_ROW])
        mul, add, mark_at, mark = step.split([_FIELDS, _FIELDS, 2, 2], 1)
        self.state = torch.addcmul(add, self.state, mul)
        self.status.scatter_(1, mark_at, mark)

    def given_done(self):
        """(B,) bool: which rows have written all the given music (None without given music)."""
        return next((p.done() for p in self.parts if hasattr(p, "done")), None)

    def select_rows(self, rows) -> None:
        self.state, self.status = self.state.index_select(0, rows), self.status.index_select(0, rows)
        for part in self.parts:
            part.select_rows(rows)


def new_bar(state: torch.Tensor) -> torch.Tensor:
    """(B,) the new bar each row is in, 0-based from the first bar line after the primer (-1
    before it)."""
    return state[:, NEW_BARS_FIELD] - 1


def parts_for(encoding, primer_ids: Sequence[int], rows: int, device="cpu", instruments=None, given=None,
              controls=None, form=None, ranges=None, meter=None) -> list[GrammarPart]:
    """The parts a request adds: instruments (`multitrack_tracks`), controls and a meter (its
    TIMESIG id; `multitrack_control_rules`), pitch ranges per track (`multitrack_tracks`), given music
    (`multitrack_given`), a form plan and its chords
    (`multitrack_form`; the chords follow the form when the model has the chord control and
    none are asked: `form_keeps_chords`), and, from nothing, no pickup bar repeated (without a
    plan: `multitrack_form.PickupRepeats`; with one, the first bar opens on its downbeat:
    `DownbeatOpening`)."""
    from melodygen.encodings.multitrack_control_rules import ControlRules, MeterChoice
    from melodygen.encodings.multitrack_form import DownbeatOpening, FormChords, FormRules, PickupRepeats
    from melodygen.encodings.multitrack_given import GivenRules
    from melodygen.encodings.multitrack_tracks import PitchRanges, TrackChoice

    parts: list[GrammarPart] = []
    if instruments is not None:
        parts.append(TrackChoice(encoding, primer_ids, list(instruments), device))
    if ranges is not None:
        parts.append(PitchRanges(ranges, device))
    if meter is not None:
        parts.append(MeterChoice(meter, device))
    keep_chords = form_keeps_chords(encoding, form, controls)
    if encoding.settings.controls:  # chords that follow the form, controls of given music: not banned
        free = {"CHORD"} if keep_chords else set()
        if given is not None:
            free |= {name for name, ids in _control_tokens(encoding).items() if np.isin(given.ids, ids).any()}
        parts.append(ControlRules(encoding, controls, device, free=tuple(sorted(free))))
    if given is not None:
        if len(primer_ids):
            raise ConfigError("given music (accompaniment, infilling) starts from nothing: no primer ids")
        parts.append(GivenRules(encoding, given, rows, device))
    from_nothing = given is None and not len(primer_ids)
    if form is not None:
        parts.append(FormRules(encoding, form, rows, device))
        if from_nothing:
            parts.append(DownbeatOpening(device))
    if keep_chords:
        parts.append(FormChords(encoding, form, rows, device))
    if encoding.settings.repeats and form is None and from_nothing:
        parts.append(PickupRepeats(rows, device))
    return parts


def _control_tokens(encoding) -> dict[str, np.ndarray]:
    """The ids of each kind of control token, by token name (KEY, CHORD, DENSITY)."""
    from melodygen.encodings.multitrack_controls import TOKEN_OF

    return {TOKEN_OF[kind]: ids for kind, ids in encoding.control_ids().items()}


def form_keeps_chords(encoding, form, controls) -> bool:
    """Whether a form plan's chords follow its sections: a model with the chord control, a plan,
    and no chords asked (asked chords are forced as they are; a key's cadence, whose plan leaves
    the bars between to the model, None, is not asked chords)."""
    return (form is not None and "chord" in encoding.settings.controls
            and (controls is None or controls.chords is None or None in controls.chords))
