"""Can a classifier tell the samples from real music? A classifier two-sample test.

Why: `compare` looks at one metric at a time, and a set of samples can match each metric's
distribution well enough while a combination of them gives every sample away. The classifier
two-sample test (Lopez-Paz & Oquab 2017) asks one question of all the metrics together: trained
on part of both sets, how often does a classifier say which set a held-out piece came from?
50% (chance): the two sets cannot be told apart by these statistics; 100%: every piece is.

How, and why so:
- Features: `FEATURES`, the per-piece scalars of `metrics.SCALAR_METRICS` by name (the pitch-class
  histogram enters as its entropy). `mean_velocity` is left out: it is how loud a piece is
  played, not what is played, and an encoding that keeps no velocity writes one constant, which
  would give every sample away for a reason no one wants to hear about.
- Classifier: L2-regularised logistic regression on features standardised on the training
  folds, fit by Newton's method (IRLS). Numpy only, convex, so it lands on the same answer
  every time; simple enough that its one-feature fits say which feature gives the samples away.
- Balance: each set weighs half in the fit, and the figure is the *balanced* accuracy (the mean
  of the share of each set classified right), so 64 samples against 500 reference pieces read
  50% for a classifier that always says "real", not 89%. Chance is 50% whatever the sizes.
- Folds: `FOLDS` folds stratified by set, assigned with a fixed seed: the same sets give the
  same figure.
- Confidence: the standard error of the balanced accuracy as two binomial shares,
  sqrt(a(1-a)/n_a + b(1-b)/n_b) / 2 (with Agresti-Coull's +2/+4 in each share), and a 95%
  interval of +-1.96 of it. Approximate (the cross-validated predictions are not independent),
  but it tells 62% +- 3% (the sets differ) from 62% +- 10% (too few pieces to say).
- Giveaways: each feature alone, scored the same way; the best ones with the direction of
  their difference in means ("lower in the samples").
- Too few: under `MIN_PIECES` pieces in a set there is no figure, only a note saying so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from melodygen.stats.metrics import SCALAR_METRICS

FEATURES = (
    "pitch_class_entropy", "pitch_range", "used_pitches", "note_density", "polyphony",
    "scale_consistency", "repetition", "empty_beat_rate", "empty_bar_rate", "groove_consistency",
    "tracks", "repetition_8", "repetition_16", "bar_repeat_exact", "bar_repeat_transposed",
    "longest_repeat_bars",
)
MIN_PIECES = 10  # per set: below this, a figure's interval spans most of 50..100%
FOLDS = 5
SEED = 0
L2 = 1.0  # on standardised features, with the weights summing to the training pieces
CHANCE = 0.5  # balanced accuracy of any classifier that ignores the features
Z95 = 1.96
SHOWN_GIVEAWAYS = 5
_NEWTON_STEPS = 50
_NEWTON_TOLERANCE = 1e-8


@dataclass(frozen=True)
class Giveaway:
    """One feature alone: its cross-validated balanced accuracy (and standard error), each
    set's mean, and its standardised coefficient in the model of all features fit on all the
    pieces (> 0: a higher value says "sample")."""

    feature: str
    accuracy: float
    stderr: float
    samples_mean: float
    reference_mean: float
    coefficient: float

    @property
    def telling(self) -> bool:
        """Whether this feature alone tells the sets apart better than chance (95% interval above)."""
        return self.accuracy - Z95 * self.stderr > CHANCE


@dataclass(frozen=True)
class TwoSampleResult:
    """The test of a sample set against a reference set. `accuracy` (balanced, cross-validated)
    and `stderr` are None, and `note` says why, when a set has under `MIN_PIECES` pieces.
    `giveaways`: every feature, the best-telling first."""

    samples: int
    reference: int
    folds: int
    accuracy: float | None
    stderr: float | None
    giveaways: tuple[Giveaway, ...] = ()
    note: str | None = None
    chance: float = CHANCE

    @property
    def telling(self) -> bool:
        """Whether the classifier tells the sets apart better than chance (95% interval above it)."""
        return self.accuracy is not None and self.accuracy - Z95 * self.stderr > self.chance

    def interval(self) -> tuple[float, float] | None:
        """The 95% interval of the accuracy, clipped to 0..1 (None without a figure)."""
        if self.accuracy is None:
            return None
        return max(0.0, self.accuracy - Z95 * self.stderr), min(1.0, self.accuracy + Z95 * self.stderr)

    def to_json(self) -> dict:
        """A JSON-ready dict: the fields, `telling`, `interval` as [low, high] (or None), the
        giveaways as dicts with their `telling`."""
        data = asdict(self)
        data["telling"] = self.telling
        data["interval"] = list(self.interval()) if self.accuracy is not None else None
        data["giveaways"] = [{**asdict(g), "telling": g.telling} for g in self.giveaways]
        return data


def classifier_test(generated: dict, reference: dict, *, folds: int = FOLDS, seed: int = SEED) -> TwoSampleResult:
    """The test of two `sets.describe_set` results: `generated` (the samples) against `reference`."""
    return two_sample_test(feature_matrix(generated), feature_matrix(reference), folds=folds, seed=seed)


def feature_matrix(described: dict, features: tuple[str, ...] = FEATURES) -> np.ndarray:
    """(pieces, features) of a `describe_set` result's per-file scalars, columns in `features` order."""
    rows = [[f["scalars"][name] for name in features] for f in described["per_file"]]
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(features))


def two_sample_test(samples: np.ndarray, reference: np.ndarray, *, features: tuple[str, ...] = FEATURES,
                    folds: int = FOLDS, seed: int = SEED) -> TwoSampleResult:
    """The test of feature matrices `samples` (N, F) and `reference` (M, F), columns named by `features`."""
    n, m = len(samples), len(reference)
    if min(n, m) < MIN_PIECES:
        return TwoSampleResult(n, m, folds, None, None, note=(
            f"too few pieces to tell: {n} against {m} in the reference; the test needs {MIN_PIECES} in each set"))
    x = np.concatenate([samples, reference]).astype(np.float64)
    y = np.concatenate([np.ones(n), np.zeros(m)])
    fold = stratified_folds(y, folds, seed)
    accuracy, stderr = balanced_accuracy(y, cross_validated(x, y, fold))
    coefficients = _fit(_standardised(x, x), y)[1:]
    giveaways = []
    for j, name in enumerate(features):
        alone, alone_se = balanced_accuracy(y, cross_validated(x[:, [j]], y, fold))
        giveaways.append(Giveaway(name, alone, alone_se, float(samples[:, j].mean()),
                                  float(reference[:, j].mean()), float(coefficients[j])))
    giveaways.sort(key=lambda g: (-g.accuracy, g.feature))
    return TwoSampleResult(n, m, folds, accuracy, stderr, tuple(giveaways))


def stratified_folds(y: np.ndarray, folds: int, seed: int = SEED) -> np.ndarray:
    """A fold index (0..folds-1) per row: each label's rows shuffled with `seed` and dealt in turn,
    so every fold holds each label in proportion."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=np.int64)
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        fold[rng.permutation(rows)] = np.arange(len(rows)) % folds
    return fold


def cross_validated(x: np.ndarray, y: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """Each row's predicted label (0/1) from the model fit on the other folds."""
    predicted = np.empty(len(y))
    for k in np.unique(fold):
        held, train = fold == k, fold != k
        beta = _fit(_standardised(x[train], x[train]), y[train])
        predicted[held] = _with_intercept(_standardised(x[held], x[train])) @ beta > 0
    return predicted


def balanced_accuracy(y: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    """(mean of the share of each label predicted right, its binomial standard error). Each
    share's variance takes Agresti-Coull's two right and two wrong added, so that 100% right
    on 12 pieces still has an error."""
    shares = [(float(np.mean(predicted[y == label] == label)), int(np.sum(y == label))) for label in (0, 1)]
    adjusted = [((a * count + 2.0) / (count + 4.0), count + 4.0) for a, count in shares]
    variance = sum(a * (1.0 - a) / count for a, count in adjusted) / 4.0
    return sum(a for a, _ in shares) / 2.0, float(np.sqrt(variance))


def fit_logistic(x: np.ndarray, y: np.ndarray, weights: np.ndarray, l2: float = L2) -> np.ndarray:
    """[intercept, coefficients...] minimising the weighted log loss of labels `y` (0/1) given
    `x` (N, F) plus l2/2 |coefficients|^2 (the intercept unpenalised), by Newton steps halved
    until the loss falls (it is convex, so this ends at its one minimum)."""
    design = _with_intercept(x)
    penalty = np.full(design.shape[1], float(l2))
    penalty[0] = 1e-9  # keeps the Hessian invertible when the labels are all but separated
    beta = np.zeros(design.shape[1])
    loss = _loss(design, y, weights, penalty, beta)
    for _ in range(_NEWTON_STEPS):
        p = _sigmoid(design @ beta)
        gradient = design.T @ (weights * (p - y)) + penalty * beta
        hessian = (design * (weights * p * (1.0 - p))[:, None]).T @ design + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        for _ in range(30):
            new_loss = _loss(design, y, weights, penalty, beta - step)
            if new_loss <= loss:
                break
            step = step / 2.0
        beta, loss = beta - step, new_loss
        if np.abs(step).max() < _NEWTON_TOLERANCE:
            break
    return beta


def _fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """`fit_logistic` with each label weighing half of the rows, whatever its count."""
    counts = np.array([np.sum(y == 0), np.sum(y == 1)], dtype=np.float64)
    return fit_logistic(x, y, len(y) / (2.0 * counts[y.astype(np.int64)]))


def _standardised(x: np.ndarray, train: np.ndarray) -> np.ndarray:
    """`x` centred and scaled by `train`'s mean and std (a constant column: scale 1)."""
    std = train.std(axis=0)
    return (x - train.mean(axis=0)) / np.where(std > 0, std, 1.0)


def _with_intercept(x: np.ndarray) -> np.ndarray:
    return np.hstack([np.ones((len(x), 1)), x])


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow for large |z|


def _loss(design: np.ndarray, y: np.ndarray, weights: np.ndarray, penalty: np.ndarray, beta: np.ndarray) -> float:
    z = design @ beta
    log_loss = np.logaddexp(0.0, z) - y * z  # -log p(y | z), stable
    return float(weights @ log_loss + 0.5 * penalty @ (beta * beta))


def describe_result(data: dict, name: str = "samples") -> str:
    """One line of a `TwoSampleResult.to_json()`: the figure, its interval and chance (or the note)."""
    if data["accuracy"] is None:
        return f"real vs generated: {data['note']}"
    low, high = data["interval"]
    return (f"real vs generated: a classifier tells the {name} from the reference {data['accuracy']:.1%} of the "
            f"time (± {data['stderr']:.1%}, 95% interval {low:.0%}-{high:.0%}; chance {data['chance']:.0%}), "
            f"{data['folds']}-fold cross-validated, {data['samples']} pieces in the {name} and {data['reference']} "
            "in the reference")


def describe_giveaway(giveaway: dict, name: str = "samples") -> str:
    """'bar_repeat_exact (share of bars repeating an earlier bar): lower in the samples, 0.000 vs
    0.489; alone 84%' for one giveaway of `to_json()`."""
    feature, ours, theirs = giveaway["feature"], giveaway["samples_mean"], giveaway["reference_mean"]
    direction = "higher" if ours > theirs else "lower" if ours < theirs else "the same on average"
    return (f"{feature} ({SCALAR_METRICS[feature]}): {direction} in the {name}, {ours:.3f} vs {theirs:.3f}; "
            f"alone {giveaway['accuracy']:.0%}")


def telling_giveaways(data: dict, limit: int = SHOWN_GIVEAWAYS) -> list[dict]:
    """The first `limit` giveaways of `to_json()` that alone tell the sets apart better than chance;
    none when all the features together do not (with 16 features, one often passes by luck)."""
    if not data["telling"]:
        return []
    return [g for g in data["giveaways"] if g["telling"]][:limit]


def describe_lines(data: dict, name: str = "samples", limit: int = SHOWN_GIVEAWAYS) -> list[str]:
    """A `to_json()` as text: `describe_result`'s line; then, with a figure, a heading and one
    `describe_giveaway` line per feature that alone gives the `name` away, or a line saying none does."""
    first = describe_result(data, name)
    if data["accuracy"] is None:
        return [first]
    giveaways = telling_giveaways(data, limit)
    if not giveaways:
        return [first, f"no feature alone tells the {name} from the reference better than chance"]
    return [first, f"what gives the {name} away (each feature alone, cross-validated):",
            *(describe_giveaway(g, name) for g in giveaways)]
