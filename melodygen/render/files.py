"""Render MIDI files to WAV audio and piano-roll PNG pictures, side by side.

`render_files` is the library entry point behind `melodygen render`, `melodygen sample --render`
and the report page: for each `song.mid` it writes `song.wav` and/or `song.png` into `out_dir`
(or beside the MIDI file when `out_dir` is None). Audio: `render.audio`; pictures:
`render.pianoroll`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from melodygen.errors import MidiReadError, RenderError
from melodygen.render.audio import find_fluidsynth, find_soundfont, render_wav
from melodygen.render.pianoroll import ScoreFacts, draw_pianoroll, score_facts
from melodygen.render.structure import draw_structure


@dataclass(frozen=True)
class Rendered:
    """What was written for one MIDI file (`wav` / `png` / `structure` are None when not asked
    for; `structure` also when the file has no notes)."""

    midi: Path
    facts: ScoreFacts
    wav: Path | None
    png: Path | None
    structure: Path | None = None  # the bar self-similarity picture (`render.structure`)


def render_files(
    paths: Iterable[str | os.PathLike],
    out_dir: str | os.PathLike | None = None,
    *,
    wav: bool = True,
    png: bool = True,
    soundfont: str | os.PathLike | None = None,
    skipped: list[str] | None = None,
    structure: bool = False,
) -> list[Rendered]:
    """Render each MIDI file; outputs are named after the file (`song.mid` -> `song.wav`, `song.png`,
    and with `structure` `song.structure.png`).

    Checks FluidSynth and the SoundFont before rendering anything, and refuses two inputs that
    would write the same output name. Raises `MidiReadError` / `RenderError` naming the file;
    given a `skipped` list, files unreadable as MIDI are left out and their errors appended to it.
    """
    paths = [Path(p) for p in paths]
    font = check_audio(soundfont) if wav else None
    stems = _output_stems(paths, None if out_dir is None else Path(out_dir))
    rendered = []
    for path, stem in zip(paths, stems):
        try:
            rendered.append(render_file(path, stem, wav=wav, png=png, soundfont=font, structure=structure))
        except MidiReadError as exc:  # its message names the file
            if skipped is None:
                raise
            skipped.append(str(exc))
    return rendered


def check_audio(soundfont: str | os.PathLike | None = None) -> Path:
    """The SoundFont audio will use, once FluidSynth is known to be installed; `RenderError`
    saying how to install what is missing (callers check before any long work)."""
    font = find_soundfont(soundfont)
    find_fluidsynth()
    return font


def render_file(midi: Path, stem: Path, *, wav: bool, png: bool, soundfont: Path | None,
                structure: bool = False) -> Rendered:
    """Render one file to `<stem>.wav` / `<stem>.png` / `<stem>.structure.png`."""
    from melodygen.dataset.files import read_file

    score = read_file(midi, keep_score=True).raise_if_skipped("").score
    facts = score_facts(score, display_name(midi))
    wav_path = png_path = None
    if wav:
        wav_path = render_wav(midi, Path(f"{stem}.wav"), duration=facts.duration,
                              soundfont=soundfont, expect_sound=facts.notes > 0)
    if png:
        png_path = draw_pianoroll(score, Path(f"{stem}.png"), name=facts.name)
    structure_path = draw_structure(score, Path(f"{stem}.structure.png"), name=facts.name) if structure else None
    return Rendered(midi=midi, facts=facts, wav=wav_path, png=png_path, structure=structure_path)


def display_name(path: Path) -> str:
    """The file's name as printable text: bytes that are not UTF-8 (which Python keeps as lone
    surrogates, unprintable by matplotlib or in a UTF-8 page) become U+FFFD."""
    return path.name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _output_stems(paths: list[Path], out_dir: Path | None) -> list[Path]:
    stems = [(out_dir if out_dir is not None else p.parent) / p.stem for p in paths]
    seen: dict[Path, Path] = {}
    for path, stem in zip(paths, stems):
        if stem in seen:
            raise RenderError(f"{seen[stem]} and {path} would both be rendered to {stem}.*; "
                              "render them into different --out folders")
        seen[stem] = path
    if out_dir is not None:
        if out_dir.exists() and not out_dir.is_dir():
            raise RenderError(f"{out_dir}: exists and is not a folder")
        out_dir.mkdir(parents=True, exist_ok=True)
    return stems
