"""The choices `melodygen fit` makes from a folder's survey, each with its reason and the option
that overrides it: the encoding that keeps the music, the pieces held out, where training
starts (a bundled model or nothing), the model's size, the windows, transposition and the
time budget.

Rules of thumb, not tuning on one folder: several tracks, drums or chords keep every track
(`multitrack`); music played off the grid keeps its timing (`performance`); a single line is a
`melody`. A small folder gets every key by transposition, dropout and early stopping on its
held-out pieces; the model grows with the notes there are to learn from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from melodygen.errors import ConfigError
from melodygen.fitting.survey import ON_GRID, FolderSurvey

HELD_OUT_SHARE, MAX_HELD_OUT = 0.15, 100
MIN_LEARNED = 3  # pieces left to learn from when the user sets --held-out
SMALL_FOLDER = 500  # pieces: below, every key by transposition
SMALL_MODEL_NOTES = 60_000  # notes: below, the small model from scratch
TRIAL_SHARE = 0.2  # of the training time, per candidate, when a base and scratch are compared
MIN_TRIAL_MINUTES = 1.0
SCRATCH_LR, FINE_TUNE_LR = 1e-3, 3e-4
SMALL_FINE_TUNE, SMALL_FINE_TUNE_LR = 100, 3e-5  # pieces: below, a fine-tune's lower learning rate
SCRATCH_MODELS = {  # transformer settings by size; rotary positions as every bundled model
    "small": {"d_model": 128, "n_layers": 3, "n_heads": 4, "d_ff": 512, "dropout": 0.25, "max_context": 1024,
              "positions": "rope", "tie_weights": True},
    "medium": {"d_model": 256, "n_layers": 4, "n_heads": 4, "d_ff": 1024, "dropout": 0.1, "max_context": 1024,
               "positions": "rope", "tie_weights": True},
}
ENCODINGS = ("multitrack", "melody", "performance")


@dataclass(frozen=True)
class Choice:
    """One decision: what was chosen, why, and the option that overrides it."""

    what: str
    value: str
    reason: str
    option: str

    def line(self) -> str:
        return f"{self.what:<11} {self.value:<24} {self.reason}  [{self.option}]"


@dataclass
class FitPlan:
    """Everything the run needs, decided before it trains. `start` is "auto" (measure the best
    bundled model against scratch), "scratch", or a model to fine-tune."""

    encoding: str
    held_out: int
    start: str
    minutes: float
    transpose: tuple[int, int]
    choices: list[Choice] = field(default_factory=list)
    overrides: tuple[str, ...] = ()  # `section.key=value` on top of every candidate's run config

    def to_dict(self) -> dict:
        return asdict(self)


def make_plan(survey: FolderSurvey, *, encoding: str | None = None, start: str | None = None,
              minutes: float = 12.0, held_out: int | None = None, overrides: tuple[str, ...] = ()) -> FitPlan:
    """The plan for `survey`'s folder; the arguments are the user's overrides (None: choose).
    `overrides` (`section.key=value`, as `train --set`) are checked here, applied to each
    candidate's run config (`encoding.*` to the dataset's encoding too)."""
    if minutes <= 0:
        raise ConfigError(f"--minutes {minutes:g}: the time budget must be above 0")
    pieces = len(survey.pieces)
    if held_out is not None and not 1 <= held_out <= pieces - MIN_LEARNED:
        raise ConfigError(f"--held-out {held_out}: from 1 to {pieces - MIN_LEARNED} of these {pieces} pieces "
                          f"(at least {MIN_LEARNED} to learn from)")
    if encoding is not None and encoding not in ENCODINGS:
        raise ConfigError(f"--encoding {encoding}: choose one of {', '.join(ENCODINGS)}")
    chosen, why = (encoding, "as asked") if encoding else _encoding(survey)
    override_settings(chosen, overrides)  # a bad override fails here, before anything is written
    held_why = "as asked" if held_out else "15% of them"
    held_out = held_out or max(1, min(MAX_HELD_OUT, round(HELD_OUT_SHARE * pieces)))
    small = pieces < SMALL_FOLDER
    transpose = (-5, 6) if small else (-3, 3)
    choices = [
        Choice("encoding", chosen, why, "--encoding"),
        Choice("held out", f"{held_out} of {pieces} pieces",
               f"{held_why}, chosen by content hash: the same files whatever their names or order; early "
               "stopping and every figure are measured on them", "--held-out"),
        Choice("keys", f"transposed {transpose[0]:+d}..{transpose[1]:+d} from scratch",
               ("every key: a small folder needs the augmentation" if small else "nearby keys")
               + "; a fine-tune keeps its base's", "--set training.transpose_range=[lo,hi]"),
        Choice("budget", f"{minutes:g} minutes", "the default: 10-15 minutes on a 2-core laptop CPU"
               if minutes == 12.0 else "as asked", "--minutes"),
    ]
    if overrides:
        choices.append(Choice("overrides", " ".join(overrides), "as asked: on every run's config", "--set"))
    return FitPlan(chosen, held_out, start or "auto", minutes, transpose, choices, tuple(overrides))


def override_settings(encoding: str, overrides) -> dict:
    """The encoding settings `overrides` set (their `encoding.*`), every override checked against
    a run config of `encoding` by `config.with_overrides` (one `ConfigError`)."""
    from melodygen.config import with_overrides

    raw = with_overrides({"data": {"dataset": "."}, "encoding": {"name": encoding}, "model": {"kind": "transformer"}},
                         overrides)
    return {key: value for key, value in raw["encoding"].items() if key != "name"}


def _encoding(survey: FolderSurvey) -> tuple[str, str]:
    """Tracks kept apart come first (an arrangement merged into one stream loses who plays
    what); then timing: one played track (onsets off the grid) keeps its milliseconds."""
    played = survey.on_grid < ON_GRID
    grid = (f"; {1 - survey.on_grid:.0%} of onsets are off the 1/12-quarter grid and move to it"
            if played else "")
    if survey.median_tracks >= 2:
        return "multitrack", f"pieces have {survey.median_tracks:g} tracks (median): each keeps its own track{grid}"
    if survey.with_drums:
        return "multitrack", f"{survey.with_drums} piece(s) have drums: kept as their own track{grid}"
    if played:
        return "performance", (f"one track, only {survey.on_grid:.0%} of onsets on a 1/12-quarter grid: played "
                               "music, its timing kept in milliseconds")
    if survey.chordal >= 0.2:
        return "multitrack", f"{survey.chordal:.0%} of notes sound with another of their track: chords, kept"
    return "melody", "one line per piece, no chords: a melody"


def encoding_settings(plan: FitPlan, survey: FolderSurvey, base_settings: dict | None) -> tuple[dict, str]:
    """The encoding settings of the run and why: a base's own (so the fine-tune keeps its
    vocabulary) widened where the folder needs more, else the folder's own."""
    low = min(p.pitches[0] for p in survey.pieces)
    high = max(p.pitches[1] for p in survey.pieces)
    if base_settings is not None:
        settings = dict(base_settings)
        if plan.encoding == "melody" and (low < settings["min_pitch"] or high > settings["max_pitch"]):
            settings.update(min_pitch=min(low, settings["min_pitch"]),
                            max_pitch=max(high, settings["max_pitch"]))
            return settings, ("the base's, its pitch range widened to "
                              f"{settings['min_pitch']}..{settings['max_pitch']} for your notes "
                              "(new ids start as the mean of the base's)")
        return settings, "the base's, so that the fine-tune keeps its vocabulary"
    if plan.encoding == "multitrack":
        return {"repeats": 16}, "a repeated bar is one REPEAT id (the model copies bars instead of rewriting them)"
    if plan.encoding == "melody":
        return {"min_pitch": low, "max_pitch": high}, f"the pitch range of your notes, {low}..{high}"
    return {}, "the defaults"


def scratch_model(survey: FolderSurvey, gpu: bool) -> tuple[dict, str]:
    """The Transformer to train from nothing, sized to the notes there are (and the machine)."""
    notes = sum(p.notes for p in survey.pieces)
    size = "medium" if gpu or notes >= SMALL_MODEL_NOTES else "small"
    model = {"kind": "transformer", **SCRATCH_MODELS[size]}
    name = f"Transformer d{model['d_model']}x{model['n_layers']} with dropout {model['dropout']:g}"
    if size == "medium":
        return model, f"{name} for {'a GPU' if gpu else f'{notes:,} notes'}"
    return model, f"{name}: {notes:,} notes are few to learn from"


def windows(lengths: list[int], max_context: int) -> tuple[int, str, str]:
    """(ids per training window, where windows start, why): windows that hold most pieces whole
    (the 90th percentile piece, in steps of 128) start at a piece's beginning, so form, repeats
    and endings are learned; where the model's context cannot hold them, windows of its context
    start anywhere: from a piece's start only, a model would learn nothing but the openings of
    long pieces (pop songs of ~8,000 ids)."""
    import numpy as np

    p90 = int(np.percentile(lengths, 90)) if lengths else 512
    whole = -(-p90 // 128) * 128
    if whole <= max_context:
        return max(128, whole), "pieces", "90% of your pieces fit whole from their start (form, repeats, endings)"
    return max_context, "anywhere", (f"your pieces are long (90% up to {p90:,} ids): windows of the model's "
                                     f"context from anywhere in them")


def trial_minutes(training_minutes: float) -> float:
    """Each candidate's trial, out of the training time when two are compared."""
    return max(MIN_TRIAL_MINUTES, TRIAL_SHARE * training_minutes)
