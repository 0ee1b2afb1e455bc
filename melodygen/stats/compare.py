"""How close two sets of music are, metric by metric (after Yang & Lerch 2020).

For a scalar metric, each set's per-file values become a Gaussian kernel density estimate
(Scott's bandwidth) on a grid spanning both sets; we report the overlapping area
OA = integral of min(p, q) (1: same distribution, 0: disjoint) and the Kullback-Leibler
divergence KL(generated || reference) in nats (0: same; large where the generated set puts
mass where the reference has almost none). For a histogram metric we compare the two pooled
histograms as discrete distributions: OA = sum of min(p, q), and the same KL.

Unlike Yang & Lerch, who compare intra-set and inter-set *distance* distributions, we compare
the metric distributions themselves: simpler to read, and what the task asks.

Beside the metrics one by one, `two_sample` asks of all of them together whether a classifier
can tell the two sets apart (cross-validated accuracy, 50% = indistinguishable).
"""

from __future__ import annotations

import numpy as np

from melodygen.stats.two_sample import classifier_test

GRID_SIZE = 2048
# Densities are floored at this before the KL, so one empty region gives a large but finite KL.
_DENSITY_FLOOR = 1e-10
# A set whose values are all equal has no spread; its kernel then gets this share of the
# common range as bandwidth (or of the value itself when both sets are one point).
_MIN_BANDWIDTH_SHARE = 0.01


def compare_sets(generated: dict, reference: dict) -> dict:
    """Per-metric closeness of two `sets.describe_set` results, as a JSON-ready dict:

    {"scalars": {metric: {"generated": {"mean", "std"}, "reference": {"mean", "std"},
                          "overlap", "kl"}},
     "histograms": {metric: {"overlap", "kl"}},   # None where a pooled histogram is empty
     "two_sample": two_sample.TwoSampleResult.to_json()}   # the classifier test
    """
    scalars = {}
    for name, gen_summary in generated["scalars"].items():
        overlap, kl = overlap_and_kl(_values(generated, name), _values(reference, name))
        scalars[name] = {
            "generated": {k: gen_summary[k] for k in ("mean", "std")},
            "reference": {k: reference["scalars"][name][k] for k in ("mean", "std")},
            "overlap": overlap,
            "kl": kl,
        }
    histograms = {}
    for name, gen_hist in generated["histograms"].items():
        gen_counts, ref_counts = gen_hist["counts"], reference["histograms"][name]["counts"]
        if sum(gen_counts) > 0 and sum(ref_counts) > 0:
            overlap, kl = histogram_overlap_and_kl(gen_counts, ref_counts)
        else:
            overlap, kl = None, None
        histograms[name] = {"overlap": overlap, "kl": kl}
    return {"scalars": scalars, "histograms": histograms,
            "two_sample": classifier_test(generated, reference).to_json()}


def mean_overlap(comparison: dict) -> float:
    """The mean of a `compare_sets` result's overlaps, scalars and histograms alike (one
    number for how close two sets are; empty histograms left out)."""
    values = [m["overlap"] for part in ("scalars", "histograms") for m in comparison[part].values()
              if m["overlap"] is not None]
    return sum(values) / len(values)


def _values(described: dict, metric: str) -> np.ndarray:
    return np.array([f["scalars"][metric] for f in described["per_file"]], dtype=np.float64)


def overlap_and_kl(generated: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(overlapping area, KL(generated || reference) in nats) of two samples of one metric."""
    generated = np.asarray(generated, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if len(generated) == 0 or len(reference) == 0:
        raise ValueError("overlap_and_kl needs at least one value in each set")
    both = np.concatenate([generated, reference])
    span = float(both.max() - both.min())
    if span == 0.0:
        return 1.0, 0.0  # every value in both sets is the same number
    floor = _MIN_BANDWIDTH_SHARE * span
    bandwidths = [max(_scott_bandwidth(values), floor) for values in (generated, reference)]
    margin = 4.0 * max(bandwidths)
    grid = np.linspace(both.min() - margin, both.max() + margin, GRID_SIZE)
    p = _kde(generated, bandwidths[0], grid)
    q = _kde(reference, bandwidths[1], grid)
    return _overlap(p, q), _kl(p, q)


def histogram_overlap_and_kl(generated: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(overlap = sum min(p, q), KL(p || q) in nats) of two histograms, normalized here."""
    p = _normalized(np.asarray(generated, dtype=np.float64))
    q = _normalized(np.asarray(reference, dtype=np.float64))
    return _overlap(p, q), _kl(p, q)


def _scott_bandwidth(values: np.ndarray) -> float:
    return float(1.06 * values.std() * len(values) ** (-1 / 5))


def _kde(values: np.ndarray, bandwidth: float, grid: np.ndarray) -> np.ndarray:
    """Gaussian KDE on `grid`, normalized to sum 1 over the grid points (a discrete density)."""
    z = (grid[:, None] - values[None, :]) / bandwidth  # (G, N)
    return _normalized(np.exp(-0.5 * z * z).sum(axis=1))


def _normalized(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    if total <= 0:
        raise ValueError("cannot normalize an empty histogram")
    return counts / total


def _overlap(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.minimum(p, q).sum())


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    p = _normalized(np.maximum(p, _DENSITY_FLOOR))
    q = _normalized(np.maximum(q, _DENSITY_FLOOR))
    return float(max(0.0, (p * np.log(p / q)).sum()))
