"""Plain-text tables of `describe_set` / `compare_sets` results (and its classifier test) for the terminal."""

from __future__ import annotations

from melodygen.stats.two_sample import describe_lines

_NAME_WIDTH = 24  # fits "pitch_class (histogram)"
_SET_WIDTHS = (18, 9, 9)
_COMPARISON_WIDTHS = (18, 18, 9, 9)


def format_set(described: dict, title: str) -> str:
    """One set: mean ± std, min and max per scalar metric, then its pooled histograms."""
    lines = [f"{title}: {described['count']} file(s)", _row(_SET_WIDTHS, "metric", "mean ± std", "min", "max")]
    for name, s in described["scalars"].items():
        lines.append(_row(_SET_WIDTHS, name, _mean_std(s), f"{s['min']:.3f}", f"{s['max']:.3f}"))
    lines += ["", *_histogram_lines([(title, described)])]
    return "\n".join(lines)


def format_comparison(described: dict, reference: dict, comparison: dict) -> str:
    """Both sets side by side with overlapping area and KL per metric, then the histograms."""
    lines = [
        f"set: {described['count']} file(s), reference: {reference['count']} file(s)",
        _row(_COMPARISON_WIDTHS, "metric", "set mean ± std", "reference", "overlap", "KL"),
    ]
    for name, c in comparison["scalars"].items():
        cells = (_mean_std(c["generated"]), _mean_std(c["reference"]), _num(c["overlap"]), _num(c["kl"]))
        lines.append(_row(_COMPARISON_WIDTHS, name, *cells))
    for name, c in comparison["histograms"].items():
        lines.append(_row(_COMPARISON_WIDTHS, f"{name} (histogram)", "", "", _num(c["overlap"]), _num(c["kl"])))
    lines += ["", *_histogram_lines([("set", described), ("reference", reference)])]
    lines.append("overlap: area shared by the two distributions (1 = same); KL(set || reference) in nats")
    if "two_sample" in comparison:
        lines += ["", format_two_sample(comparison["two_sample"])]
    return "\n".join(lines)


def format_two_sample(data: dict, name: str = "set") -> str:
    """The classifier test (`two_sample.TwoSampleResult.to_json()`): its line, then the features
    that alone give the set away, or that none does (`two_sample.describe_lines`)."""
    first, *rest = describe_lines(data, name)
    return "\n".join([first, *(f"  {line}" for line in rest[:1]), *(f"    {line}" for line in rest[1:])])


def format_skipped(described: dict, title: str) -> str:
    """'title: skipped N file(s)' and one indented line per file; '' when none was skipped."""
    skipped = described["skipped"]
    if not skipped:
        return ""
    return "\n".join([f"{title}: skipped {len(skipped)} file(s):", *(f"  {s['path']}: {s['reason']}" for s in skipped)])


def _histogram_lines(sets: list[tuple[str, dict]]) -> list[str]:
    """Per histogram metric: a header of bin labels, then one row of shares per set."""
    lines = []
    for name, hist in sets[0][1]["histograms"].items():
        lines.append(f"{name + ' (share)':<{_NAME_WIDTH}}" + "".join(f"{label:>7}" for label in hist["labels"]))
        for title, described in sets:
            probs = described["histograms"][name]["probs"]
            lines.append(f"  {title:<{_NAME_WIDTH - 2}}" + "".join(f"{p:>7.3f}" for p in probs))
    return lines


def _row(widths: tuple[int, ...], name: str, *cells: str) -> str:
    return f"{name:<{_NAME_WIDTH}}" + "".join(f"{cell:>{width}}" for cell, width in zip(cells, widths))


def _mean_std(summary: dict) -> str:
    return f"{summary['mean']:.3f} ± {summary['std']:.3f}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
