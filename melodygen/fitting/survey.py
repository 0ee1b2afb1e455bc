"""What is in the user's folder: every MIDI file read once (in worker processes), each usable
one summed up as `PieceFacts`, the rest kept with the reason they were skipped.

The facts are what `fit.plan` chooses from: tracks and instruments (several tracks: the
multitrack encoding), drums, meters, chords within a track (more than a melody line), and
whether the music is written on a grid or played freely (a performance encoding then).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from melodygen.errors import DatasetError

MIN_PIECES = 5  # one or more is held out, the rest must be enough to learn anything from
GRID_STEPS = 12  # per quarter note: the bar encodings' grid (triplets and sixteenths)
ON_GRID = 0.85  # share of onsets on the grid above which music counts as written, not played


@dataclass(frozen=True)
class PieceFacts:
    """One usable file: its content hash, tracks with notes (drums included), their
    instruments (GM programs; 128 the drum kit), meters as "n/d", notes, seconds, the share of
    notes sounding with another note of their own track (chords), the share of onsets on the
    12-per-quarter grid, and the lowest and highest pitch (drums left out)."""

    path: str
    sha1: str
    tracks: int
    instruments: tuple[int, ...]
    drums: bool
    meters: tuple[str, ...]
    notes: int
    seconds: float
    chordal: float
    on_grid: float
    pitches: tuple[int, int]


@dataclass(frozen=True)
class FolderSurvey:
    """The folder's pieces (`PieceFacts`, exact duplicates dropped) and the files skipped as
    (path, reason)."""

    folder: str
    pieces: list[PieceFacts]
    skipped: list[tuple[str, str]]
    duplicates: int = 0

    @property
    def median_tracks(self) -> float:
        return float(np.median([p.tracks for p in self.pieces]))

    @property
    def with_drums(self) -> int:
        return sum(p.drums for p in self.pieces)

    @property
    def chordal(self) -> float:
        """The share of notes, over the folder, that sound with another note of their track."""
        return float(np.average([p.chordal for p in self.pieces], weights=[p.notes for p in self.pieces]))

    @property
    def on_grid(self) -> float:
        return float(np.average([p.on_grid for p in self.pieces], weights=[p.notes for p in self.pieces]))

    def instruments(self) -> Counter:
        """Pieces per instrument."""
        return Counter(i for p in self.pieces for i in p.instruments)

    def meters(self) -> Counter:
        """Pieces per meter."""
        return Counter(m for p in self.pieces for m in p.meters)

    def describe(self) -> list[str]:
        """The survey as lines for the terminal (and the report)."""
        from melodygen.instruments import instrument_name

        notes, minutes = sum(p.notes for p in self.pieces), sum(p.seconds for p in self.pieces) / 60
        tracks = [p.tracks for p in self.pieces]
        lines = [f"{len(self.pieces)} pieces, {notes:,} notes, {minutes:.1f} minutes of music"
                 + (f"; {self.duplicates} exact duplicate(s) dropped" if self.duplicates else "")
                 + (f"; {len(self.skipped)} file(s) skipped" if self.skipped else ""),
                 f"tracks per piece: median {self.median_tracks:g} (from {min(tracks)} to {max(tracks)})",
                 "instruments: " + ", ".join(f"{instrument_name(i)} ({n})"
                                             for i, n in self.instruments().most_common(6))
                 + (", ..." if len(self.instruments()) > 6 else ""),
                 "meters: " + (", ".join(f"{m} ({n})" for m, n in self.meters().most_common(5))
                               or "none written (4/4 assumed)"),
                 f"drums in {self.with_drums} piece(s); {self.chordal:.0%} of notes sound with another note of their "
                 f"track; {self.on_grid:.0%} of onsets on a 1/{GRID_STEPS}-quarter grid"]
        lines += [f"skipped {path}: {why}" for path, why in self.skipped]
        return lines


def survey_folder(folder: str | Path, *, workers: int | None = None, progress: bool = True) -> FolderSurvey:
    """Read every MIDI file under `folder`. One-line `DatasetError` for what cannot become a
    model: no folder, no MIDI file, a single file, fewer than `MIN_PIECES` usable pieces."""
    from melodygen.dataset.files import map_files
    from melodygen.dataset.sources import find_midi_files

    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder (give the folder that holds your MIDI files)")
    files = find_midi_files([folder])  # DatasetError when it holds none
    if len(files) == 1:
        raise DatasetError(f"{folder}: only one MIDI file ({files[0].name}); a model needs at least "
                           f"{MIN_PIECES} pieces: some to learn from, one or more to hold out")
    results = map_files(piece_facts, files, workers=workers, progress=progress, desc="reading your MIDI")
    pieces, skipped, seen, duplicates = [], [], set(), 0
    for path, result in zip(files, results):
        if isinstance(result, str):
            skipped.append((str(path), result))
        elif result.sha1 in seen:
            duplicates += 1
        else:
            seen.add(result.sha1)
            pieces.append(result)
    survey = FolderSurvey(str(folder), pieces, skipped, duplicates)
    if not pieces:
        first = f" ({skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise DatasetError(f"{folder}: no usable music in its {len(files)} MIDI file(s){first}")
    if len(pieces) < MIN_PIECES:
        raise DatasetError(f"{folder}: {len(pieces)} usable piece(s); a model needs at least {MIN_PIECES}: "
                           "some to learn from, one or more to hold out and measure it on")
    return survey


def piece_facts(path: str) -> PieceFacts | str:
    """The facts of one file, or why it is skipped (a worker's function: it must pickle)."""
    from melodygen.dataset.files import read_file
    from melodygen.dataset.sources import content_hash

    read = read_file(path, keep_score=True, drums=True)
    if read.skipped:
        return read.why()
    score = read.score
    tracks = [t for t in score.tracks if t.notes]
    if not tracks:
        return "no notes"
    notes = [n for t in tracks for n in t.notes]
    meters = tuple(sorted({f"{n}/{d}" for _, n, d in score.time_signatures}))
    beats = score.tempo_map.beats_of(np.array([n.start for n in notes])) * GRID_STEPS
    on_grid = float(np.mean(np.abs(beats - np.round(beats)) < 0.1))
    return PieceFacts(path=path, sha1=content_hash(Path(path)), tracks=len(tracks),
                      instruments=tuple(sorted({128 if t.is_drum else t.program for t in tracks})),
                      drums=any(t.is_drum for t in tracks), meters=meters, notes=len(notes),
                      seconds=float(score.end_time), chordal=_chordal(tracks), on_grid=on_grid,
                      pitches=_pitch_range(tracks))


def _pitch_range(tracks) -> tuple[int, int]:
    pitches = [n.pitch for t in tracks if not t.is_drum for n in t.notes] or [60]
    return min(pitches), max(pitches)


def _chordal(tracks) -> float:
    """The share of pitched notes whose onset falls while another note of their track sounds
    (or starts with it): 0 for melody lines, near 1 for block chords."""
    together = total = 0
    for track in tracks:
        if track.is_drum:
            continue
        starts = np.array(sorted(n.start for n in track.notes))
        ends = np.array([n.end for n in sorted(track.notes, key=lambda n: n.start)])
        running_end = np.maximum.accumulate(ends)
        overlapping = np.zeros(len(starts), dtype=bool)
        overlapping[1:] = starts[1:] < running_end[:-1] - 0.02  # 20 ms of legato is still a line
        same_onset = np.zeros(len(starts), dtype=bool)
        same_onset[1:] = np.abs(np.diff(starts)) < 0.01
        same_onset[:-1] |= same_onset[1:]
        together += int((overlapping | same_onset).sum())
        total += len(starts)
    return together / total if total else 0.0
