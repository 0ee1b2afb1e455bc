"""Form plans: `sample --form AABA` or `--form "A8 A8 B8 A8"`, the sections a piece is built of.

Letters name sections; a section whose letter came before repeats it, bar for bar; a prime
(`A'`) asks for a varied repeat: its first half repeats the section, its second half is new
(the same start, another ending, as an answering phrase does); where the encoding has varied
repeats, each bar of that second half opens as the section's bar and then changes. An optional count gives a
section's bars. Sections without one take the first count their letter has anywhere in the plan,
else share the bars that `--bars` leaves equally, else get `DEFAULT_SECTION_BARS` each.

The plan is encoding-neutral (bars and which earlier bar each one repeats); an encoding that can
say "this bar is bar i-k again" in one id (the multitrack encoding with `repeats`) forces it where
the plan puts a repeat (`multitrack_form.FormRules`). A bad plan is a one-line `ConfigError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from melodygen.errors import ConfigError

DEFAULT_SECTION_BARS = 8  # a phrase of a folk tune or a song's verse
_SECTION = re.compile(r"([A-Za-z])('?)(\d*)")


@dataclass(frozen=True)
class Section:
    """One section of a plan: its letter, its bars, whether it varies its letter's first
    section (a prime), and the first bar it starts at (0-based, among the plan's bars)."""

    letter: str
    bars: int
    varied: bool
    start: int


@dataclass(frozen=True)
class FormPlan:
    """The sections of a piece, in order (module docstring)."""

    text: str
    sections: tuple[Section, ...]

    @classmethod
    def parse(cls, text: str, bars: float | None = None) -> FormPlan:
        """From `--form` text and the piece's `--bars` (None: not given)."""
        compact = text.replace(" ", "").replace(",", "")
        found = [(m.group(1).upper(), bool(m.group(2)), int(m.group(3)) if m.group(3) else None)
                 for m in _SECTION.finditer(compact)]
        if not found or "".join(m.group(0) for m in _SECTION.finditer(compact)) != compact:
            raise ConfigError(f"form {text!r}: write sections as letters with optional bar counts, "
                              "e.g. AABA, \"A8 A8 B8 A8\" or \"A4 A'4 B8\" (' marks a varied repeat)")
        lengths: dict[str, int] = {}
        for letter, _, count in found:
            if count is not None:
                if count < 1:
                    raise ConfigError(f"form {text!r}: a section has at least 1 bar")
                lengths.setdefault(letter, count)
        counted = sum(count or lengths.get(letter, 0) for letter, _, count in found)
        open_sections = sum(1 for letter, _, count in found if count is None and letter not in lengths)
        each = DEFAULT_SECTION_BARS
        if open_sections and bars is not None:
            left = int(bars) - counted
            if left < open_sections or left % open_sections:
                raise ConfigError(f"form {text!r}: {int(bars)} bars do not split into its sections; give each "
                                  "section's bars, e.g. \"A8 B8\"")
            each = left // open_sections
        sections, start, seen = [], 0, {}
        for letter, varied, count in found:
            length = count or lengths.get(letter) or each
            if letter not in seen and varied:
                raise ConfigError(f"form {text!r}: {letter}' varies a section {letter} that comes before it, "
                                  "and none does")
            if letter in seen and length > seen[letter].bars:
                raise ConfigError(f"form {text!r}: the repeat of {letter} has {length} bars, more than the "
                                  f"{seen[letter].bars} of the {letter} it repeats")
            section = Section(letter, length, varied, start)
            seen.setdefault(letter, section)
            sections.append(section)
            start += length
        if bars is not None and start > bars:
            raise ConfigError(f"form {text!r} has {start} bars, more than the {bars:g} asked for (--bars)")
        return cls(text, tuple(sections))

    @property
    def bars(self) -> int:
        return sum(s.bars for s in self.sections)

    def sources(self) -> list[int | None]:
        """Per bar of the plan, the earlier bar it repeats (0-based), or None for new music."""
        return [source if repeats else None for source, repeats in self._bar_sources()]

    def varied_sources(self) -> list[int | None]:
        """Per bar of the plan, the earlier bar it varies (the second half of a varied repeat), or
        None."""
        return [None if repeats else source for source, repeats in self._bar_sources()]

    def chord_sources(self) -> list[int | None]:
        """Per bar of the plan, the earlier bar whose chord it keeps: every bar of a section whose
        letter came before (repeated, or written anew by a varied repeat), else None."""
        return [source for source, _ in self._bar_sources()]

    def _bar_sources(self) -> list[tuple[int | None, bool]]:
        """Per bar: (the same bar of its letter's music as last heard, or None for a letter's
        first section; whether the plan repeats it: every bar of a plain repeat, the first half
        of a varied one). The latest copy of each of a letter's bars is the nearest, so a repeat
        reaches back as little as it can; a varied section's bars are not its letter's music."""
        latest: dict[str, list[int]] = {}
        out: list[tuple[int | None, bool]] = []
        for section in self.sections:
            heard = latest.setdefault(section.letter, [])
            for i in range(section.bars):
                source = heard[i] if i < len(heard) else None
                out.append((source, source is not None and (not section.varied or i < (section.bars + 1) // 2)))
            if not section.varied:
                heard[:section.bars] = range(section.start, section.start + section.bars)
        return out

    def describe(self) -> str:
        """The plan as one line: `A8 A8 B8 A'8`."""
        return " ".join(f"{s.letter}{chr(39) if s.varied else ''}{s.bars}" for s in self.sections)


@dataclass(frozen=True)
class FormAdherence:
    """How a piece follows its plan: per section, the bars the plan repeats and how many of them
    sound as the bar they repeat (every note: track, pitch and onset in the bar); and
    how many bars of its new sections repeat an earlier bar anyway."""

    plan: FormPlan
    repeated: tuple[tuple[int, int], ...]  # per section: (bars planned as repeats, of them heard so)
    own_repeats: int
    new_bars: int
    chords: tuple[tuple[int, int], ...] | None = None  # per section: (bars keeping a chord, of them kept)

    @property
    def chords_kept(self) -> tuple[tuple[int, int], ...]:
        """`chords`, with (0, 0) per section where chords were not measured."""
        return self.chords or ((0, 0),) * len(self.repeated)

    def describe(self) -> str:
        """One line, e.g. `form A4 A4 B4 A4: A4 new · A4 4/4 bars repeat A · B4 new · A4 4/4 ...`."""
        parts = []
        for section, (planned, heard), (kept_of, kept) in zip(self.plan.sections, self.repeated, self.chords_kept):
            name = f"{section.letter}{chr(39) if section.varied else ''}{section.bars}"
            part = f"{name} new" if not planned else f"{name} {heard}/{planned} bars repeat {section.letter}"
            parts.append(part + (f", {kept}/{kept_of} keep its chords" if kept_of else ""))
        own = f"; {self.own_repeats} of {self.new_bars} new bars repeat an earlier bar" if self.new_bars else ""
        return f"form {self.plan.describe()}: " + " · ".join(parts) + own

    def to_dict(self) -> dict:
        return {"form": self.plan.describe(), "own_repeats": self.own_repeats, "new_bars": self.new_bars,
                "sections": [{"section": s.letter + ("'" if s.varied else ""), "bars": s.bars,
                              "planned_repeats": planned, "repeated": heard, "planned_chords": kept_of,
                              "chords_kept": kept}
                             for s, (planned, heard), (kept_of, kept) in zip(self.plan.sections, self.repeated,
                                                                             self.chords_kept)]}


def form_adherence(plan: FormPlan, score, first_bar: int = 0, steps_per_quarter: int = 12,
                   chords=None) -> FormAdherence:
    """`FormAdherence` of a `Score` whose planned bars start at bar `first_bar` (0-based: after a
    primer's bars), its bars laid out by `melodygen.meter` from its own meters. `chords`: the
    chord of each bar of the piece (-1: none), where varied repeats keep their section's chords."""
    contents = bar_contents(score, steps_per_quarter)
    # bars after the last onset are silent (the list ends with the last bar that has a note)
    at = lambda bar: contents[first_bar + bar] if first_bar + bar < len(contents) else frozenset()  # noqa: E731
    repeats = [(source is not None and bool(at(source)), source is not None and at(bar) == at(source))
               for bar, source in enumerate(plan.sources())]  # a silent bar repeated is no evidence
    new = [bar for bar, (counted, _) in enumerate(repeats) if not counted and at(bar)]
    own = sum(any(at(bar) == at(b) for b in range(bar)) for bar in new)
    kept = None
    if chords is not None:
        chord = lambda bar: int(chords[first_bar + bar]) if first_bar + bar < len(chords) else -1  # noqa: E731
        kept = _by_section(plan, [(source is not None and chord(source) >= 0,
                                   source is not None and chord(bar) == chord(source))
                                  for bar, source in enumerate(plan.chord_sources())])
    return FormAdherence(plan, _by_section(plan, repeats), own, len(new), kept)


def _by_section(plan: FormPlan, bars: list[tuple[bool, bool]]) -> tuple[tuple[int, int], ...]:
    """Per section, (its bars that count, of them the ones that hit), from one (counts, hits)
    per bar of the plan."""
    out = []
    for section in plan.sections:
        chosen = [hit for counts, hit in bars[section.start:section.start + section.bars] if counts]
        out.append((len(chosen), sum(chosen)))
    return tuple(out)


def bar_contents(score, steps_per_quarter: int = 12) -> list[frozenset]:
    """Per bar of `score` (its own meters), the notes starting in it as (track, pitch, onset in
    the bar) on a grid of `steps_per_quarter` per quarter note. Not their lengths: a note is cut
    where its pitch strikes again or the piece ends, so the same bar may sound shorter last."""
    from melodygen import meter

    onsets = [n.start for t in score.tracks for n in t.notes]
    if not onsets:
        return []
    bars = meter.score_bars(score, steps_per_quarter)
    notes = [(track_index, note) for track_index, track in enumerate(score.tracks) for note in track.notes]
    starts = [round(score.tempo_map.to_beats(note.start) * steps_per_quarter) for _, note in notes]
    found: list[set] = [set() for _ in bars]
    for (track_index, note), start, index in zip(notes, starts, meter.bar_index(bars, starts).tolist()):
        if 0 <= index < len(bars):
            found[index].add((track_index, note.pitch, start - bars[index].start))
    return [frozenset(f) for f in found]
