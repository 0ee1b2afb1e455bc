"""The report's sample gallery: render each sample (WAV + piano roll) and compute its statistics.

Outputs go to the report's assets folder: `name.wav`, `name.png` and a copy of `name.mid`, so
the page and its folder can be moved or archived together. Statistics come from
`melodygen.stats` (per file, per set, and against a reference set when one is given).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

from melodygen.dataset.copies import CopyCheck
from melodygen.errors import NoUsableMusicError
from melodygen.render.files import Rendered, display_name, render_files
from melodygen.render.structure import draw_structure
from melodygen.report.reference import Reference, SampleCopies
from melodygen.report.steering import SamplesSteering, SampleSteering


@dataclass(frozen=True)
class SampleEntry:
    """One sample: what was rendered (`midi` is the copy beside the page), its scalar metrics
    and per-track statistics (None / () when the stats module skipped the file; `skip_reason`
    says why)."""

    rendered: Rendered
    scalars: dict[str, float] | None
    skip_reason: str | None
    tracks: tuple[dict, ...] = ()
    copy: CopyCheck | None = None  # its longest copies of training pieces (None: not checked)
    steering: SampleSteering | None = None  # the controls it was sampled with (None: no controls file)


@dataclass(frozen=True)
class Gallery:
    """The report's samples section: one entry per sample and the set's statistics beside the
    reference set's."""

    entries: list[SampleEntry]
    described: dict | None  # stats.describe_set of the samples (None: no usable sample)
    reference: Reference | None  # the reference set's statistics and how they were measured
    comparison: dict | None  # stats.compare_sets(described, reference.described)
    skipped: list[str]  # sample files unreadable as MIDI, each error naming its file
    reference_structure: list[tuple[str, Path]]  # (name, self-similarity PNG) of reference examples
    copies: SampleCopies | None = None  # the copy check against the run's training data
    controls_skipped: list[str] = field(default_factory=list)  # damaged controls files, each error naming it


def build_gallery(paths: list[Path], assets_dir: Path, *, reference: Reference | None = None,
                  soundfont: str | Path | None = None, audio: bool = True,
                  copies: SampleCopies | None = None, steering: SamplesSteering | None = None) -> Gallery:
    """Render (piano rolls, and WAVs with `audio`) and describe the MIDI files `paths` into
    `assets_dir`, and compare them with `reference` when given; `copies`: their copy check;
    `steering`: the controls the steered ones were sampled with, and how they did."""
    from melodygen.stats import compare_sets, describe_set

    skipped: list[str] = []
    rendered = render_files(paths, assets_dir, wav=audio, soundfont=soundfont, skipped=skipped, structure=True)
    try:
        described = describe_set(paths)
    except NoUsableMusicError:
        described = None
    comparison = compare_sets(described, reference.described) if described and reference else None
    checks = copies.checks if copies else {}
    steered = steering or SamplesSteering()
    entries = [replace(_entry(_copy_midi(r, assets_dir), r.midi, described), copy=checks.get(str(r.midi)),
                       steering=steered.by_path.get(str(r.midi)))
               for r in rendered]
    examples = reference.examples if reference else ()
    names = [display_name(Path(path)) for path, _ in examples]
    if examples:
        (assets_dir / "reference").mkdir(exist_ok=True)
    # in a folder of their own: no sample's name can collide with them
    pictures = [(name, draw_structure(score, assets_dir / "reference" / f"{i}.structure.png", name=name))
                for i, (name, (_, score)) in enumerate(zip(names, examples))]
    return Gallery(entries, described, reference, comparison, skipped,
                   [(name, png) for name, png in pictures if png is not None], copies, list(steered.skipped))


def _copy_midi(rendered: Rendered, assets_dir: Path) -> Rendered:
    copy = assets_dir / rendered.midi.name
    shutil.copyfile(rendered.midi, copy)
    return replace(rendered, midi=copy)


def _entry(copy: Rendered, original: Path, described: dict | None) -> SampleEntry:
    if described is not None:
        for row in described["per_file"]:
            if Path(row["path"]) == original:
                return SampleEntry(copy, row["scalars"], None, tuple(row["tracks"]))
        for row in described["skipped"]:
            if Path(row["path"]) == original:
                return SampleEntry(copy, None, row["reason"])
    return SampleEntry(copy, None, "no notes")
