"""The report's sample gallery: render each sample (WAV + piano roll) and compute its statistics.

Outputs go to the report's assets folder: `name.wav`, `name.png` and a copy of `name.mid`, so
the page and its folder can be moved or archived together. Statistics come from
`melodygen.stats` (per file, per set, and against a reference set when one is given).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from melodygen.errors import NoUsableMusicError
from melodygen.render.files import Rendered, display_name, render_files
from melodygen.report.reference import Reference


@dataclass(frozen=True)
class SampleEntry:
    """One sample: what was rendered (`midi` is the copy beside the page) and its scalar metrics
    (None when the stats module skipped the file; `skip_reason` says why)."""

    rendered: Rendered
    scalars: dict[str, float] | None
    skip_reason: str | None
    structure_png: Path | None = None  # its bar self-similarity picture (None without notes)


@dataclass(frozen=True)
class Gallery:
    entries: list[SampleEntry]
    described: dict | None  # stats.describe_set of the samples (None: no usable sample)
    reference: Reference | None  # the reference set's statistics and how they were measured
    comparison: dict | None  # stats.compare_sets(described, reference.described)
    skipped: list[str]  # sample files unreadable as MIDI, each error naming its file
    reference_structure: list[tuple[str, Path]]  # (name, self-similarity PNG) of reference examples


def build_gallery(paths: list[Path], assets_dir: Path, *, reference: Reference | None = None,
                  soundfont: str | Path | None = None, audio: bool = True) -> Gallery:
    """Render (piano rolls, and WAVs with `audio`) and describe the MIDI files `paths` into
    `assets_dir`, and compare them with `reference` when given."""
    from melodygen.stats import compare_sets, describe_set

    skipped: list[str] = []
    rendered = render_files(paths, assets_dir, wav=audio, soundfont=soundfont, skipped=skipped)
    try:
        described = describe_set(paths)
    except NoUsableMusicError:
        described = None
    comparison = compare_sets(described, reference.described) if described and reference else None
    entries = [_entry(_copy_midi(r, assets_dir), r.midi, described) for r in rendered]
    entries = [replace(e, structure_png=_structure_png(e.rendered.midi, assets_dir)) for e in entries]
    examples = reference.examples if reference else ()
    names = [display_name(Path(path)) for path, _ in examples]
    if examples:
        (assets_dir / "reference").mkdir(exist_ok=True)
    # in a folder of their own: no sample's name can collide with them
    pictures = [(name, _draw_structure(score, assets_dir / "reference" / f"{i}.structure.png", name))
                for i, (name, (_, score)) in enumerate(zip(names, examples))]
    return Gallery(entries, described, reference, comparison, skipped,
                   [(name, png) for name, png in pictures if png is not None])


def _structure_png(midi: Path, assets_dir: Path) -> Path | None:
    from melodygen.stats.sets import measured_score

    score, _ = measured_score(str(midi))
    return None if score is None else _draw_structure(score, assets_dir / f"{midi.stem}.structure.png",
                                                      display_name(midi))


def _draw_structure(score, png_path: Path, name: str) -> Path | None:
    """`png_path` with the score's bar self-similarity drawn, or None when it has no notes."""
    from melodygen.render.structure import draw_self_similarity
    from melodygen.stats.metrics import bar_self_similarity

    try:
        return draw_self_similarity(bar_self_similarity(score), png_path, name=name)
    except NoUsableMusicError:
        return None


def _copy_midi(rendered: Rendered, assets_dir: Path) -> Rendered:
    copy = assets_dir / rendered.midi.name
    shutil.copyfile(rendered.midi, copy)
    return Rendered(midi=copy, facts=rendered.facts, wav=rendered.wav, png=rendered.png)


def _entry(copy: Rendered, original: Path, described: dict | None) -> SampleEntry:
    if described is not None:
        for row in described["per_file"]:
            if Path(row["path"]) == original:
                return SampleEntry(copy, row["scalars"], None)
        for row in described["skipped"]:
            if Path(row["path"]) == original:
                return SampleEntry(copy, None, row["reason"])
    return SampleEntry(copy, None, "no notes")
