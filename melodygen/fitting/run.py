"""`fit`: a folder of MIDI in, a model of it out, in the steps below. Each step's result goes
into OUT/fit.json as it is done (written atomically), so a run stopped by Ctrl-C, a crash or
kill -9 is continued with `resume=True` from the step it was in: the training runs from their
last.pt, the steps done are not done again.

1. survey the folder (`fitting.survey`) and plan (`fitting.plan`); nothing is written before
   both pass;
2. hold out pieces by content hash and measure every bundled model that reads the folder's
   encoding on them (nats per note, `fitting.scoring`);
3. prepare the dataset (in the best base's encoding, widened where needed, or the folder's own);
4. train: with a base and `start="auto"`, fine-tune it and train from scratch for a trial each,
   compare them on the held-out pieces, and give the winner the rest of the time; otherwise
   train the one start the whole time;
5. the fitted model (OUT/model.pt), its samples, the copy audit, the report page and the card.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from melodygen.atomic import atomic_write
from melodygen.errors import ConfigError, OutputError
from melodygen.fitting.plan import FitPlan, make_plan
from melodygen.fitting.survey import FolderSurvey, survey_folder

STATE = "fit.json"
REPORT_RESERVE_MINUTES = 1.5  # kept for sampling, the copy audit and the report


@dataclass(frozen=True)
class FitResult:
    """Where everything went and the figures (`fit.json`'s content under `state`)."""

    out: Path
    model: Path
    report: Path
    card: Path
    state: dict


def fit(folder, out, *, minutes: float = 12.0, start: str | None = None, encoding: str | None = None,
        held_out: int | None = None, overrides: tuple[str, ...] = (), samples: int = 12, resume: bool = False,
        overwrite: bool = False, progress: bool = True, echo=print, stop=None) -> FitResult | None:
    """Fit a model to the MIDI files under `folder` into the folder `out` (see the module).
    `start`: a bundled model or checkpoint to fine-tune, "scratch", or None (measure both);
    `held_out`: how many pieces to hold out; `overrides`: `section.key=value` on every run's
    config. Returns None when `stop` (a `training.interrupt.StopFlag`) ended it early: resume."""
    from melodygen.training.interrupt import StopFlag

    began = time.perf_counter()
    out, stop = Path(out), stop or StopFlag()
    if out.resolve().is_relative_to(Path(folder).resolve()):
        raise OutputError(f"--out {out} is inside {folder}: its samples would be read as your music; "
                          "choose a folder outside it")
    state = _read_state(out) if resume else None
    if state is not None and state["folder"] != str(Path(folder).resolve()):
        raise OutputError(f"{out} is the fit of {state['folder']}, not of {folder}")
    survey = survey_folder(folder, progress=progress)
    for line in survey.describe():
        echo(line)
    if state is None:
        _check_out(out, overwrite)
        plan = make_plan(survey, encoding=encoding, start=start, minutes=minutes, held_out=held_out,
                         overrides=tuple(overrides))
        _check_start(plan)
        state = {"folder": str(Path(folder).resolve()), "plan": plan.to_dict(), "spent_s": 0.0}
    plan = FitPlan(**{**state["plan"], "choices": [], "overrides": tuple(state["plan"].get("overrides", ()))})
    for choice in state["plan"]["choices"]:
        echo("choice: " + _choice_line(choice))
    out.mkdir(parents=True, exist_ok=True)
    job = _Job(out, survey, plan, state, began, echo, progress, stop)
    return job.run(samples)


def _check_start(plan: FitPlan) -> None:
    """A model named with --from exists and reads the folder's encoding (before --out is made)."""
    if plan.start in ("auto", "scratch"):
        return
    from melodygen.checkpoint import load

    name = load(plan.start)["encoding"]["name"]
    if name != plan.encoding:
        raise ConfigError(f"--from {plan.start}: it reads the {name} encoding, your folder the "
                          f"{plan.encoding} one (or give --encoding {name})")


def _unseen_note(figures: dict) -> str:
    """What of the held-out music a base never saw in training (a fine-tune learns it)."""
    unseen = figures.get("unseen")
    if not unseen or not unseen["share"]:
        return ""
    kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(unseen["kinds"].items(), key=lambda kv: -kv[1]))
    share = f"{unseen['share']:.1%}" if unseen["share"] >= 0.001 else "under 0.1%"
    return f"; {share} of their ids it never saw in training ({kinds})"


def _choice_line(choice: dict) -> str:
    from melodygen.fitting.plan import Choice

    return Choice(**choice).line()


def _check_out(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    if (out / STATE).is_file():
        if not overwrite:
            raise OutputError(f"{out} holds a fit already: --resume to continue it, --overwrite to start again")
        shutil.rmtree(out)
    elif any(out.iterdir()):
        raise OutputError(f"{out}: not empty and not a fit folder; choose another --out")


def _read_state(out: Path) -> dict:
    path = out / STATE
    if not path.is_file():
        raise OutputError(f"{out}: no fit to resume ({STATE} not found); run without --resume")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise OutputError(f"{path}: damaged ({exc}); start again with --overwrite") from None


class _Job:
    """One fit's steps over its state dict (saved after each)."""

    def __init__(self, out: Path, survey: FolderSurvey, plan: FitPlan, state: dict, began: float, echo,
                 progress: bool, stop):
        self.out, self.survey, self.plan, self.state = out, survey, plan, state
        self.began, self.spent_before = began, state.get("spent_s", 0.0)
        self.echo, self.progress, self.stop = echo, progress, stop

    # -- bookkeeping

    def save(self) -> None:
        self.state["spent_s"] = self.spent_before + time.perf_counter() - self.began
        with atomic_write(self.out / STATE, "w", encoding="utf-8") as file:
            json.dump(self.state, file, indent=1)

    def choose(self, choice) -> None:
        """A choice made during the run (a `plan.Choice`): kept with the plan's, and said."""
        self.state["plan"]["choices"].append(choice.__dict__)
        self.echo("choice: " + choice.line())

    def minutes_left(self) -> float:
        return self.plan.minutes - (self.spent_before + time.perf_counter() - self.began) / 60

    @property
    def dataset(self) -> Path:
        return self.out / "data"

    def run_dir(self, name: str) -> Path:
        return self.out / "runs" / name

    # -- the steps

    def run(self, samples: int) -> FitResult | None:
        from melodygen.fitting.finish import finish

        self.hold_out()
        self.measure_bases()
        self.prepare()
        if not self.train():
            self.save()
            return None
        return finish(self, samples)

    def hold_out(self) -> None:
        from melodygen.fitting.scoring import held_out_fraction, is_held_out

        if "held_out" in self.state:
            return
        fraction = held_out_fraction([p.sha1 for p in self.survey.pieces], self.plan.held_out)
        files = [p.path for p in self.survey.pieces if is_held_out(p.sha1, fraction)]
        self.state["held_out"] = {"fraction": fraction, "files": files}
        self.save()

    def measure_bases(self) -> None:
        """Every candidate base on the held-out pieces: the best is the one fine-tuned."""
        from melodygen.fitting.scoring import score_files
        from melodygen.models import MODELS
        from melodygen.pretrained import bundled_models

        if "bases" in self.state:
            return
        start = self.plan.start
        usable = [m.name for m in bundled_models()  # an encoder-decoder accompanies: not a base to fine-tune
                  if m.encoding == self.plan.encoding and not MODELS[m.kind].model_type.reads_source]
        names = [] if start == "scratch" else usable if start == "auto" else [start]
        bases = {}
        for name in names:
            bases[name] = score_files(name, self.state["held_out"]["files"])
            self.echo(f"base {name}: {bases[name]['nats_per_note']:.3f} nats/note on your held-out pieces"
                      + _unseen_note(bases[name]))
        self.state["bases"] = bases
        self.state["base"] = min(bases, key=lambda n: bases[n]["nats_per_note"]) if bases else None
        self.save()

    def prepare(self) -> None:
        from melodygen.dataset.prepare import prepare
        from melodygen.encodings import get_encoding
        from melodygen.fitting.plan import Choice, encoding_settings, override_settings
        from melodygen.fitting.scoring import valid_notes

        base = self.state["base"]
        if "encoding_settings" not in self.state:
            base_settings = None
            if base is not None:
                from melodygen.checkpoint import load

                base_settings = load(base)["encoding"]["settings"]
            settings, why = encoding_settings(self.plan, self.survey, base_settings)
            settings.update(override_settings(self.plan.encoding, self.plan.overrides))
            self.state["encoding_settings"] = settings
            defaults = get_encoding(self.plan.encoding).to_dict()["settings"]
            changed = ", ".join(f"{k}={v}" for k, v in settings.items() if defaults.get(k) != v) or "its defaults"
            self.choose(Choice("settings", changed, why, "--encoding"))
        encoding = get_encoding(self.plan.encoding, **self.state["encoding_settings"])
        summary = prepare([self.state["folder"]], encoding, self.dataset,
                          val_fraction=self.state["held_out"]["fraction"], progress=self.progress)
        self.state["dataset"] = {"train_pieces": summary.pieces.get("train", 0),
                                 "held_out_pieces": summary.pieces.get("valid", 0), "ids": summary.tokens,
                                 "held_out_notes": valid_notes(self.dataset)}
        self.echo(f"dataset: {summary.pieces.get('train', 0)} pieces to learn from, {summary.pieces.get('valid', 0)} "
                  f"held out, {summary.tokens:,} ids ({self.dataset})")
        self.save()

    def train(self) -> bool:
        """The trials and the winner's run; False when stopped by the user."""
        from melodygen.fitting.training import train_candidates

        return train_candidates(self)
