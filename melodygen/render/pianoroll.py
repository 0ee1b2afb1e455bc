"""Piano-roll pictures of a `Score` with matplotlib (Agg, no display needed).

Time in seconds on x, MIDI pitch on y (C of each octave labelled), one rectangle per note, bar
lines where the file has time signatures (laid out by `melodygen.meter`, placed through its tempo
map), and a title with the file name and key facts: note count, duration, pitch range. A file of
one track is coloured by velocity on a fixed 1..127 scale (so colours compare across files); an
arrangement of several tracks gets one colour per track, named in a legend.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from melodygen.atomic import atomic_write
from melodygen.meter import score_bars
from melodygen.notes import Note, Score

_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_MAX_BAR_LINES = 2000  # beyond this the lines would merge into a grey wash
_BAR_GRID = 48  # steps per quarter note for laying out bar lines (exact for n/64 meters)
_MAX_LEGEND = 12  # tracks named in the legend; more share "other tracks"


@dataclass(frozen=True)
class ScoreFacts:
    """What the title (and a report) says about one file."""

    name: str
    notes: int
    duration: float
    lowest: int | None
    highest: int | None

    @property
    def pitch_range(self) -> str:
        if self.lowest is None:
            return "-"
        return f"{pitch_name(self.lowest)}-{pitch_name(self.highest)}"

    def summary(self) -> str:
        return f"{self.notes} notes, {self.duration:.1f} s, pitch {self.pitch_range}"


def pitch_name(pitch: int) -> str:
    """Scientific pitch name, MIDI 60 -> "C4"."""
    return f"{_NAMES[pitch % 12]}{pitch // 12 - 1}"


def all_notes(score: Score) -> list[Note]:
    """Every note of every track, drums included."""
    return [note for track in score.tracks for note in track.notes]


def score_duration(score: Score) -> float:
    """Seconds from 0 to the file's end (its last event, or last note end if that is later)."""
    return max([score.end_time] + [note.end for note in all_notes(score)])


def score_facts(score: Score, name: str) -> ScoreFacts:
    """What a page says of one piece (`name`): notes, seconds, pitch range, tracks."""
    pitches = [note.pitch for note in all_notes(score)]
    return ScoreFacts(
        name=name,
        notes=len(pitches),
        duration=score_duration(score),
        lowest=min(pitches, default=None),
        highest=max(pitches, default=None),
    )


def bar_times(score: Score, end: float) -> list[float]:
    """Seconds at which bars start before `end`, from the time signatures and tempo map; []
    without a meter or with more than 2,000 bars."""
    if not score.time_signatures:
        return []
    tempo = score.tempo_map
    end_step = round(tempo.to_beats(end) * _BAR_GRID)
    if end_step > _MAX_BAR_LINES * 32 * _BAR_GRID:  # over 2,000 bars even if each lasted 32 quarters
        return []
    times = [tempo.to_seconds(bar.start / _BAR_GRID) for bar in score_bars(score, _BAR_GRID, end_step)
             if bar.start < end_step]
    return times if len(times) <= _MAX_BAR_LINES else []


def draw_pianoroll(score: Score, png_path: Path, *, name: str) -> Path:
    """Write the piano roll of `score` to `png_path` (about 1200 x 420 pixels)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure

    facts = score_facts(score, name)
    figure = Figure(figsize=(12, 4.2), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    tracks = [(i, t) for i, t in enumerate(score.tracks) if t.notes]  # numbered as the file has them
    if len(tracks) <= 1:
        notes = all_notes(score)
        rects = PolyCollection(_note_rectangles(notes), cmap="viridis", edgecolors="none")
        rects.set_array(np.array([note.velocity for note in notes], dtype=float))
        rects.set_clim(1, 127)
        ax.add_collection(rects)
        figure.colorbar(rects, ax=ax, label="velocity", pad=0.01)
    else:
        _draw_tracks(ax, tracks)
    ax.vlines(bar_times(score, facts.duration), 0, 128, colors="0.75", linewidths=0.6, zorder=0)
    _set_axes(ax, facts)
    ax.set_title(f"{name}: {facts.summary()}", fontsize=11)
    with atomic_write(png_path) as file:
        figure.savefig(file, format="png")
    return png_path


def _draw_tracks(ax, tracks) -> None:
    """One colour per track (tab10, then tab20), velocity as opacity, a legend of track names
    numbered as the file numbers its tracks; `tracks`: (number from 0, track) with notes."""
    from matplotlib import colormaps
    from matplotlib.collections import PolyCollection

    palette = list(colormaps["tab10"].colors) + list(colormaps["tab20"].colors[1::2])
    for shown, (i, track) in enumerate(tracks):
        colour = palette[min(shown, _MAX_LEGEND) % len(palette)]
        alpha = 0.35 + 0.65 * np.array([n.velocity for n in track.notes]) / 127
        rects = PolyCollection(_note_rectangles(track.notes), edgecolors="none",
                               facecolors=[(*colour[:3], a) for a in alpha])
        ax.add_collection(rects)
        label = f"{i + 1}: {track.name or 'track'}" + (" (drums)" if track.is_drum else "")
        ax.plot([], [], "s", color=colour, label=label if shown < _MAX_LEGEND else
                ("other tracks" if shown == _MAX_LEGEND else None))
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False, title="tracks")


def _note_rectangles(notes: list[Note]) -> np.ndarray:
    """(N, 4, 2) corner coordinates, each note a bar 0.8 semitones tall centred on its pitch."""
    if not notes:
        return np.zeros((0, 4, 2))
    start = np.array([n.start for n in notes])
    end = np.array([n.end for n in notes])
    low = np.array([n.pitch for n in notes]) - 0.4
    high = low + 0.8
    return np.stack([np.stack(c, axis=1) for c in
                     ((start, low), (end, low), (end, high), (start, high))], axis=1)


def _set_axes(ax, facts: ScoreFacts) -> None:
    lowest = facts.lowest if facts.lowest is not None else 60
    highest = facts.highest if facts.highest is not None else 72
    # Label every C in view plus the lowest and highest notes; set ticks before limits, as
    # set_yticks widens the view to include its ticks.
    ticks = sorted({p for p in range(lowest - 2, highest + 3) if p % 12 == 0} | {lowest, highest})
    ax.set_yticks(ticks, [pitch_name(p) for p in ticks])
    ax.set_axisbelow(True)
    ax.yaxis.grid(True, color="0.92", linewidth=0.6)
    ax.set_xlim(0, max(facts.duration, 1e-3))
    ax.set_ylim(lowest - 2, highest + 2)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("pitch")
    if facts.notes == 0:
        ax.text(0.5, 0.5, "no notes", transform=ax.transAxes, ha="center", va="center")
