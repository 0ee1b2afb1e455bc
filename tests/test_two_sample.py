"""The real-vs-generated classifier test (melodygen.stats.two_sample), in `stats` and `report`.

Feature matrices built directly for the statistics (clear difference, same distribution,
unequal sizes, too few pieces, determinism), tiny MIDI sets made in code for `stats` and
`report`: tunes that repeat their first half against tunes that never repeat a bar.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import midi_factory as mf
import numpy as np
import pytest
from click.testing import CliRunner

from melodygen.cli import main
from melodygen.report import build_report
from melodygen.stats import SCALAR_METRICS, compare_sets, describe_set
from melodygen.stats.two_sample import (
    CHANCE,
    FEATURES,
    MIN_PIECES,
    classifier_test,
    fit_logistic,
    stratified_folds,
    two_sample_test,
)

NAMES = FEATURES
REPEATS = FEATURES.index("bar_repeat_exact")


def gaussian_sets(n: int, m: int, *, seed: int = 0, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """`n` samples and `m` reference rows of independent standard normal features; the samples'
    bar_repeat_exact moved by `shift` standard deviations."""
    rng = np.random.default_rng(seed)
    samples, reference = rng.normal(size=(n, len(NAMES))), rng.normal(size=(m, len(NAMES)))
    samples[:, REPEATS] += shift
    return samples, reference


def test_features_are_named_scalar_metrics_without_velocity():
    assert set(FEATURES) <= set(SCALAR_METRICS) and len(set(FEATURES)) == len(FEATURES)
    assert "mean_velocity" not in FEATURES


def test_clearly_different_sets_are_told_apart_and_the_feature_named():
    result = two_sample_test(*gaussian_sets(60, 80, shift=-4.0))
    assert result.accuracy > 0.9 and result.telling
    assert result.giveaways[0].feature == "bar_repeat_exact"
    assert result.giveaways[0].samples_mean < result.giveaways[0].reference_mean
    assert result.giveaways[0].coefficient < 0  # fewer repeats says "sample"
    low, high = result.interval()
    assert low < result.accuracy <= high <= 1.0


def test_halves_of_one_distribution_read_chance():
    rows = np.random.default_rng(3).normal(size=(200, len(NAMES)))
    result = two_sample_test(rows[:100], rows[100:])
    assert abs(result.accuracy - CHANCE) < 0.12
    assert result.interval()[0] < CHANCE and not result.telling


def test_unequal_sizes_do_not_read_as_the_larger_share():
    # 32 against 400 of one distribution: always saying "reference" would be 93% plain accuracy
    result = two_sample_test(*gaussian_sets(32, 400, seed=5))
    assert result.chance == 0.5 and abs(result.accuracy - 0.5) < 0.12
    assert not result.telling


def test_too_few_pieces_give_a_note_not_a_number():
    result = two_sample_test(*gaussian_sets(MIN_PIECES - 1, 50, shift=-4.0))
    assert result.accuracy is None and result.stderr is None and result.giveaways == ()
    assert "too few pieces" in result.note and f"{MIN_PIECES - 1} against 50" in result.note
    data = result.to_json()
    assert data["interval"] is None and not data["telling"]


def test_same_input_same_result_and_json_ready():
    sets = gaussian_sets(40, 70, shift=-1.0)
    first, second = two_sample_test(*sets), two_sample_test(*sets)
    assert first == second
    json.dumps(first.to_json())
    other_folds = two_sample_test(*sets, seed=1)  # other folds, about the same figure
    assert other_folds.giveaways[0].feature == first.giveaways[0].feature == "bar_repeat_exact"
    assert abs(other_folds.accuracy - first.accuracy) < 2 * first.stderr


def test_folds_are_stratified():
    y = np.array([1] * 12 + [0] * 48)
    fold = stratified_folds(y, 4, seed=0)
    for k in range(4):
        assert (y[fold == k] == 1).sum() == 3 and (y[fold == k] == 0).sum() == 12
    assert np.array_equal(fold, stratified_folds(y, 4, seed=0))


def test_logistic_fit_reaches_the_penalised_optimum_on_separable_data():
    x = np.array([[-2.0], [-1.0], [-0.5], [0.5], [1.0], [2.0]])
    y = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    beta = fit_logistic(x, y, np.ones(6), l2=1.0)
    p = 1.0 / (1.0 + np.exp(-(beta[0] + x[:, 0] * beta[1])))
    gradient_slope = float(((p - y) * x[:, 0]).sum() + beta[1])
    assert np.isfinite(beta).all() and beta[1] > 0 and abs(gradient_slope) < 1e-6


# --- on MIDI made in code -------------------------------------------------------------------

BAR = 4 * mf.TPB  # 4/4 at 480 ticks per quarter


def tune(path: Path, rng: random.Random, *, repeat: bool) -> Path:
    """16 bars of eighth notes on a C major scale: 8 random bars played twice (`repeat`), or 16
    random bars."""
    bars = [[rng.choice((60, 62, 64, 65, 67, 69, 71, 72)) for _ in range(8)] for _ in range(8 if repeat else 16)]
    bars = bars * 2 if repeat else bars
    step = mf.TPB // 2
    notes = [(pitch, b * BAR + i * step, b * BAR + (i + 1) * step) for b, bar in enumerate(bars)
             for i, pitch in enumerate(bar)]
    return mf.midi_file(path, [mf.note_events(notes)])


def tune_set(folder: Path, count: int, *, repeat: bool, seed: int) -> Path:
    folder.mkdir()
    rng = random.Random(seed)
    for i in range(count):
        tune(folder / f"tune_{i:02d}.mid", rng, repeat=repeat)
    return folder


@pytest.fixture
def sets(tmp_path) -> tuple[Path, Path]:
    """(samples that never repeat a bar, reference tunes that repeat their first half), 12 each."""
    return (tune_set(tmp_path / "samples", 12, repeat=False, seed=1),
            tune_set(tmp_path / "reference", 12, repeat=True, seed=2))


def test_classifier_test_on_described_sets(sets):
    samples, reference = (describe_set(sorted(folder.glob("*.mid"))) for folder in sets)
    result = classifier_test(samples, reference)
    assert result.samples == result.reference == 12 and result.accuracy > 0.9
    assert result.giveaways[0].feature in {"bar_repeat_exact", "bar_repeat_transposed", "longest_repeat_bars",
                                           "repetition", "repetition_8", "repetition_16"}
    assert compare_sets(samples, reference)["two_sample"] == result.to_json()


def test_stats_cli_prints_and_writes_the_test(sets):
    samples, reference = sets
    result = CliRunner().invoke(main, ["stats", str(samples), "--reference", str(reference)])
    assert result.exit_code == 0, result.output
    assert "real vs generated: a classifier tells the set from the reference 100.0% of the time" in result.stdout
    assert "chance 50%" in result.stdout and "what gives the set away" in result.stdout
    assert "lower in the set" in result.stdout
    data = json.loads(CliRunner().invoke(main, ["stats", str(samples), "--reference", str(reference),
                                                "--json"]).stdout)
    test = data["comparison"]["two_sample"]
    assert test["accuracy"] == 1.0 and test["samples"] == test["reference"] == 12 and test["telling"]


def test_stats_cli_says_when_there_are_too_few(sets, tmp_path):
    few = tune_set(tmp_path / "few", 3, repeat=False, seed=4)
    result = CliRunner().invoke(main, ["stats", str(few), "--reference", str(sets[1])])
    assert result.exit_code == 0, result.output
    assert "real vs generated: too few pieces to tell: 3 against 12 in the reference" in result.stdout


def test_report_shows_the_test(sets, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text("step,train_loss,val_nll\n0,4.0,3.9\n")
    samples, reference = sets
    report = build_report(run, samples=samples, reference=reference, raw_reference=True, audio=False)
    html = report.page.read_text("utf-8")
    assert '<p class="two-sample">Real vs generated: a classifier tells the samples from the reference' in html
    assert "What gives the samples away" in html
