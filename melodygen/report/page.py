"""The report's HTML: fills `template.html` from a run, its curves and the sample gallery.

Pictures are embedded as base64 `data:` URIs; audio and MIDI files are linked by paths relative
to the page (they live in the assets folder beside it), so the page needs no network.
"""

from __future__ import annotations

import base64
import os
from html import escape
from importlib import resources
from pathlib import Path
from string import Template
from urllib.parse import quote

from melodygen import __version__
from melodygen.render.files import display_name
from melodygen.render.pianoroll import pitch_name
from melodygen.report.gallery import Gallery, SampleEntry
from melodygen.report.run import RunInfo, evaluation_figures


def render_page(run: RunInfo, curves: bytes | None, gallery: Gallery | None, page_dir: Path,
                generated_at: str, preface: str = "", title: str | None = None) -> str:
    """The whole HTML page; links are made relative to `page_dir`, the page's folder. `preface`
    (HTML) comes before the evaluation."""
    template = Template(resources.files("melodygen.report").joinpath("template.html").read_text("utf-8"))
    config_note = f"config from {run.config_source}" if run.config_source else "no config file found"
    return template.substitute(
        version=escape(__version__),
        title=escape(title or f"melodygen report: {run.path.resolve().name}"),
        meta=escape(f"run folder {run.path} · {config_note} · generated {generated_at}"),
        preface=preface,
        figures=_figures(evaluation_figures(run.metrics)),
        curves=(_img(curves, "training and validation curves") if curves
                else '<p class="note">No loss values in metrics.csv yet.</p>'),
        samples=_samples(gallery, page_dir),
        settings=_settings(run.config),
    )


def _figures(figures: list[tuple[str, str]]) -> str:
    if not figures:
        return '<p class="note">No metrics.csv in the run folder.</p>'
    items = "".join(f"<div><dt>{escape(label)}</dt><dd>{escape(value)}</dd></div>" for label, value in figures)
    return f'<dl class="figures">{items}</dl>'


def _settings(config: dict | None) -> str:
    if not config:
        return '<p class="note">No resolved config found in the run folder.</p>'
    loose = {k: v for k, v in config.items() if not isinstance(v, dict)}
    sections = {**({"run": loose} if loose else {}), **{k: v for k, v in config.items() if isinstance(v, dict)}}
    tables = "".join(
        f"<div><h3>[{escape(name)}]</h3>"
        f"{html_table(('setting', 'value'), [(k, _value(v)) for k, v in values.items()])}</div>"
        for name, values in sections.items()
    )
    return f'<div class="settings">{tables}</div>'


def _samples(gallery: Gallery | None, page_dir: Path) -> str:
    if gallery is None:
        return ('<p class="note">No samples: pass <code>--samples DIR</code> (the folder '
                '<code>melodygen sample</code> wrote) to hear and see them here.</p>')
    parts = [f"<p>{len(gallery.entries)} sample(s).</p>", _copies_summary(gallery), _set_table(gallery)]
    if gallery.controls_skipped:
        parts.insert(1, '<p class="note">Controls files skipped (not readable): '
                        f'{escape("; ".join(gallery.controls_skipped))}</p>')
    if gallery.skipped:
        parts.insert(1, '<p class="note">Skipped (not readable as MIDI): '
                        f'{escape("; ".join(gallery.skipped))}</p>')
    parts += [_card(entry, gallery, page_dir) for entry in gallery.entries]
    parts.append(_reference_structure(gallery))
    return "\n".join(parts)


def _reference_structure(gallery: Gallery) -> str:
    """The reference pieces' bar self-similarity, to hold the samples' against."""
    if not gallery.reference_structure:
        return ""
    pictures = "".join(f"<figure>{_img(png.read_bytes(), f'bar self-similarity of {name}')}"
                       f"<figcaption>{escape(name)}</figcaption></figure>"
                       for name, png in gallery.reference_structure)
    return ('<h3>Structure of reference pieces</h3><p class="note">Bar self-similarity of the first '
            'reference pieces, measured as the reference set is: repeats show as lines off the diagonal.'
            f'</p><div class="structures">{pictures}</div>')


def _set_table(gallery: Gallery) -> str:
    from melodygen.stats import SCALAR_METRICS

    if gallery.described is None:
        return '<p class="note">No sample has notes: no statistics.</p>'
    if gallery.comparison is None:
        rows = [(name, _mean_std(summary)) for name, summary in gallery.described["scalars"].items()]
        return "<h3>Statistics of the samples</h3>" + html_table(("metric", "mean ± std"), rows, SCALAR_METRICS)
    rows = [(name, _mean_std(c["generated"]), _mean_std(c["reference"]), _num(c["overlap"]), _num(c["kl"]))
            for name, c in gallery.comparison["scalars"].items()]
    rows += [(f"{name} histogram", "", "", _num(c["overlap"]), _num(c["kl"]))
             for name, c in gallery.comparison["histograms"].items()]
    mode = gallery.reference.mode
    heading = (f"<h3>Samples against the reference set ({escape(str(gallery.reference.folder))}, "
               f"{gallery.reference.described['count']} files)</h3>"
               f'<p class="note">{escape(mode[:1].upper() + mode[1:])}.</p>')
    note = ('<p class="note">overlap: shared area of the two distributions (1 = same); '
            "KL: divergence of the samples from the reference in nats (0 = same).</p>")
    headers = ("metric", "samples mean ± std", "reference mean ± std", "overlap", "KL")
    return heading + _two_sample(gallery.comparison) + html_table(headers, rows, SCALAR_METRICS) + note


def _two_sample(comparison: dict) -> str:
    """The real-vs-generated classifier test in a line, with what gives the samples away."""
    from melodygen.stats.two_sample import describe_lines

    if "two_sample" not in comparison:
        return ""
    first, *rest = describe_lines(comparison["two_sample"], "samples", limit=3)
    if len(rest) > 1:  # a heading, then the giveaways: one sentence
        rest = [f"{rest[0]} {'; '.join(rest[1:])}"]
    return f'<p class="two-sample">{escape(". ".join(s[:1].upper() + s[1:] for s in [first, *rest]))}.</p>'


def _card(entry: SampleEntry, gallery: Gallery, page_dir: Path) -> str:
    rendered = entry.rendered
    name = display_name(rendered.midi)
    midi = _href(rendered.midi, page_dir)
    player = f'<a href="{midi}" download>MIDI file</a>'
    if rendered.wav is not None:
        wav = _href(rendered.wav, page_dir)
        player = (f'<audio controls preload="metadata"><source src="{wav}" type="audio/wav"></audio>'
                  f'{player} <a href="{wav}">WAV file</a>')
    picture = _img(rendered.png.read_bytes(), f"piano roll of {name}")
    if rendered.structure is not None:
        structure = _img(rendered.structure.read_bytes(), f"bar self-similarity of {name}")
        picture = (f'<div class="pictures"><div class="roll">{picture}</div>'
                   f'<div class="structure">{structure}</div></div>')
    return (f'<article class="sample"><h3>{escape(name)}</h3>'
            f'<p class="facts">{escape(rendered.facts.summary())}</p>{picture}'
            f'<div class="player">{player}</div>{_copy_line(entry)}{_steering(entry)}'
            f'{_sample_stats(entry, gallery)}</article>')


def _copies_summary(gallery: Gallery) -> str:
    """The set's copy check against the training data, or why there is none."""
    copies = gallery.copies
    if copies is None or copies.summary is None:
        return f'<p class="note">{escape(copies.note)}.</p>' if copies and copies.note else ""
    s = copies.summary
    return (f'<p class="copies">Copy check against the training pieces: the longest stretch a sample shares '
            f'with one is {_num(s["longest_bars"]["mean"])} bars on average (max {_num(s["longest_bars"]["max"])}); '
            f'{s["copying"]} of {s["files"]} sample(s) copy more than {s["max_bars"]:g} bars.</p>')


def _copy_line(entry: SampleEntry) -> str:
    from melodygen.stats.copies import describe

    if entry.copy is None:
        return ""
    return f'<p class="copies">Longest copy of a training piece: {escape(describe(entry.copy))}.</p>'


def _steering(entry: SampleEntry) -> str:
    """The controls a steered sample was asked for against what it achieved (nothing unsteered)."""
    from melodygen.stats.controls import describe_adherence

    found = entry.steering
    if found is None:
        return ""
    asked = f'<p>Sampled with: {escape(_asked(found.steering))}.</p>'
    form = "" if found.form is None else f'<p class="form">Form: {escape(found.form.describe())}.</p>'
    if found.adherence is None:
        note = f'<p class="note">{escape(found.note)}.</p>' if found.note else ""
        return f'<div class="steering">{asked}{form}{note}</div>'
    achieved = f'<p>Achieved: {escape(describe_adherence(found.adherence))}.</p>'
    return (f'<div class="steering">{asked}{form}{_key_line(found.adherence.key)}{achieved}'
            f'{_steering_table(found.adherence.bars)}</div>')


def _asked(steering) -> str:
    asked = steering.request.describe()
    parts = [f"form {steering.form}"] if steering.form else []
    if asked["key"]:
        parts.append(f"key {asked['key']}")
    if asked["chords"]:
        parts.append(f"chords {' '.join(asked['chords'])}")
    if asked["density"]:
        strict = " (strict)" if asked.get("strict_density") else ""
        parts.append(f"notes per bar {', '.join(map(str, asked['density']))}{strict}")
    first = steering.first_bar + 1
    parts.append(f"bars {first}-{first + steering.bars - 1}" if steering.bars else f"from bar {first}")
    return " · ".join(parts)


def _key_line(key: dict | None) -> str:
    if key is None:
        return ""
    off = ' class="off"' if key["achieved_key"] != key["key"] else ""
    share = key["scale_share"]
    on_scale = f"; {share:.0%} of the notes' duration on its scale" if share is not None else ""
    return (f'<p>Key: asked {escape(key["key"])}, measured <span{off}>{escape(key["achieved_key"])}</span>'
            f'{escape(on_scale)}.</p>')


def _steering_table(bars: list[dict]) -> str:
    """One row per steered bar: the chord and note count asked for against those achieved, the
    columns of what was asked only; a bar off the request is marked (class "off")."""
    from melodygen.stats.controls import DENSITY_TOLERANCE, density_within

    chords, counts = (any(row[k] is not None for row in bars) for k in ("chord", "density"))
    if not (chords or counts):
        return ""
    headers = (["bar"] + (["chord asked", "chord achieved", "melody on chord tones"] if chords else [])
               + (["notes asked", "notes achieved"] if counts else []))
    body = []
    for row in bars:
        chord_off = row["chord"] is not None and row["achieved_chord"] != row["chord"]
        count_off = row["density"] is not None and not density_within(row["achieved_density"], row["density"])
        cells = [f'<td>{row["bar"]}</td>']
        if chords:
            rate = row["chord_tone_rate"]
            cells += [_cell(row["chord"]), _cell(row["achieved_chord"], chord_off),
                      _cell("-" if rate is None else f"{rate:.0%}")]
        if counts:
            cells += [_cell(row["density"]), _cell(row["achieved_density"], count_off)]
        marked = ' class="off"' if chord_off or count_off else ""
        body.append(f'<tr{marked}>{"".join(cells)}</tr>')
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    note = (f'<p class="note">Marked: a bar whose chord is not the one asked for, or whose note count is more '
            f"than {DENSITY_TOLERANCE:.0%} from it.</p>")
    return f'<table class="steering"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>{note}'


def _cell(value, off: bool = False) -> str:
    return f'<td class="num{" off" if off else ""}">{escape("-" if value is None else str(value))}</td>'


def _sample_stats(entry: SampleEntry, gallery: Gallery) -> str:
    from melodygen.stats import SCALAR_METRICS

    if entry.scalars is None:
        return f'<p class="note">No statistics: {escape(entry.skip_reason or "")}</p>'
    headers = ["metric", "this sample", "all samples"]
    reference = gallery.reference.described["scalars"] if gallery.reference else None
    if reference:
        headers.append("reference")
    rows = []
    for name, value in entry.scalars.items():
        row = [name, _num(value), _mean_std(gallery.described["scalars"][name])]
        rows.append(row + ([_mean_std(reference[name])] if reference else []))
    return html_table(headers, rows, SCALAR_METRICS) + _track_table(entry.tracks)


def _track_table(tracks) -> str:
    """Per-track statistics of an arrangement (nothing for a single track)."""
    if len(tracks) < 2:
        return ""
    rows = [[f"{i + 1}: {t['name'] or 'track'}", str(t["program"]), str(t["notes"]),
             f"{pitch_name(t['lowest'])}-{pitch_name(t['highest'])}", str(t["pitch_range"]), _num(t["polyphony"])]
            for i, t in enumerate(tracks)]
    headers = ("track", "program", "notes", "pitches", "range", "polyphony")
    return '<p class="note">Per track (non-drum):</p>' + html_table(headers, rows)


def html_table(headers, rows, tooltips: dict[str, str] | None = None) -> str:
    """A table: the first column as text (with its tooltip, where one is given), the rest as numbers."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for first, *rest in rows:
        tip = f' title="{escape(tooltips[first])}"' if tooltips and first in tooltips else ""
        cells = "".join(f'<td class="num">{escape(str(c))}</td>' for c in rest)
        body.append(f"<tr><td{tip}>{escape(str(first))}</td>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{escape(alt)}">'


def _href(path: Path, page_dir: Path) -> str:
    # As bytes: a file name that is not UTF-8 is %-encoded as it is on disk.
    return escape(quote(os.fsencode(Path(os.path.relpath(path, page_dir)).as_posix())))


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _mean_std(summary: dict) -> str:
    return f"{_num(summary['mean'])} ± {_num(summary['std'])}"


def _value(value) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)
