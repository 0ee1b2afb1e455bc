"""One HTML page for a training run and its samples (`melodygen report`).

`run` reads the run folder (config, metrics.csv), `curves` draws the training curves,
`gallery` renders and describes the samples, `page` writes the HTML from `template.html`.
The page embeds its pictures; the samples' WAV and MIDI files go into `<page name>_files/`
beside it, linked relatively, so the page works offline and moves with that folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from melodygen.atomic import atomic_write
from melodygen.errors import ReportError


@dataclass(frozen=True)
class Report:
    """Where the page went, where its sample files went (None without samples), how many samples,
    the sample files skipped as unreadable and then the damaged controls files beside samples
    (each error naming its file), and how the reference files were measured (None without a
    reference)."""

    page: Path
    assets: Path | None
    samples: int
    skipped: list[str]
    reference_mode: str | None = None
    comparison: dict | None = None  # the samples against the reference (`stats.compare_sets`)


def build_report(
    run_dir: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    samples: str | os.PathLike | None = None,
    reference: str | os.PathLike | None = None,
    raw_reference: bool = False,
    soundfont: str | os.PathLike | None = None,
    audio: bool = True,
    preface: str = "",
    title: str | None = None,
) -> Report:
    """Write the report of `run_dir` to `out` (default `RUN_DIR/report.html`).

    `samples`: a folder of MIDI files to render, play, describe and look up in the copy index
    of the run's training data (where that dataset is still there), with the controls each was
    sampled with against what it achieved where a `.controls.json` lies beside it (measured with
    the run's encoding, `report.steering`); `reference`: a folder of MIDI
    files (e.g. the training corpus) the samples' statistics are compared against, passed through
    the run's encoding (`report.reference`) unless `raw_reference`. `audio=False` leaves out the
    WAV files and players (where FluidSynth is not installed). `preface`: HTML put before the
    evaluation (`melodygen fit`'s own section); `title`: the page's, instead of the run folder's.
    """
    from melodygen.dataset.sources import find_midi_files
    from melodygen.report.curves import curves_png
    from melodygen.report.gallery import build_gallery
    from melodygen.report.page import render_page
    from melodygen.report.reference import describe_reference, sample_copies
    from melodygen.report.run import read_run
    from melodygen.report.steering import sample_steering

    run_dir = Path(run_dir)
    page = Path(out) if out is not None else run_dir / "report.html"
    if reference is not None and samples is None:
        raise ReportError(f"--reference {reference} needs --samples: it is what the samples are compared to")
    if raw_reference and reference is None:
        raise ReportError("--raw-reference needs --reference: it says how the reference files are measured")
    run = read_run(run_dir)
    page.parent.mkdir(parents=True, exist_ok=True)
    assets = page.parent / f"{page.stem}_files"
    gallery = None
    if samples is not None:
        paths = find_midi_files([samples])
        described_reference = (None if reference is None else
                               describe_reference(Path(reference), run, paths, raw=raw_reference))
        gallery = build_gallery(paths, assets, soundfont=soundfont, audio=audio, reference=described_reference,
                                copies=sample_copies(run, paths), steering=sample_steering(run, paths))
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    html = render_page(run, curves_png(run.metrics), gallery, page.parent, generated_at=stamp, preface=preface,
                       title=title)
    # errors="replace": a file name that is not UTF-8, quoted in the text, shows as "?"
    with atomic_write(page, "w", encoding="utf-8", errors="replace") as file:
        file.write(html)
    return Report(page=page, assets=assets if gallery else None, samples=len(gallery.entries) if gallery else 0,
                  skipped=gallery.skipped + gallery.controls_skipped if gallery else [],
                  reference_mode=gallery.reference.mode if gallery and gallery.reference else None,
                  comparison=gallery.comparison if gallery else None)
