"""The training of a fit: the candidates' run configs, their trials, and the winner's run.

With a base and `start="auto"` there are two candidates, the base fine-tuned and a model from
scratch, and each is trained for a trial of `plan.trial_minutes` of the training time, then
scored on all the held-out pieces (best.pt, per event on the same dataset). The winner
continues (`--resume` of its run) to the end of its budget: its run's time budget was set from
the start to the training time less the loser's trial, so its learning-rate schedule runs as
one uninterrupted run's would. Every run validates on the held-out pieces and stops early when
they stop improving.
"""

from __future__ import annotations

import time

import numpy as np

from melodygen.errors import ConfigError
from melodygen.fitting.plan import (
    FINE_TUNE_LR,
    SCRATCH_LR,
    SMALL_FINE_TUNE,
    SMALL_FINE_TUNE_LR,
    Choice,
    scratch_model,
    trial_minutes,
    windows,
)

EVAL_EVERY, EVAL_BATCHES, PATIENCE = 25, 8, 6
MIN_TRAINING_MINUTES = 1.0


class Deadline:
    """The user's stop flag, also raised once `seconds` have passed: ends a trial the way Ctrl-C
    ends a run (last.pt written, resumable), without the user's Ctrl-C."""

    def __init__(self, user, seconds: float):
        self.user, self.until = user, time.perf_counter() + seconds

    @property
    def requested(self) -> bool:
        return self.user.requested or time.perf_counter() >= self.until

    @property
    def armed(self) -> bool:
        return self.user.armed

    @armed.setter
    def armed(self, value: bool) -> None:
        self.user.armed = value


def train_candidates(job) -> bool:
    """Run what is left of the fit's training; False when the user stopped it."""
    from melodygen.fitting.run import REPORT_RESERVE_MINUTES

    done = job.state.setdefault("training", {})
    if "configs" not in done:
        minutes = job.minutes_left() - REPORT_RESERVE_MINUTES
        if minutes < MIN_TRAINING_MINUTES:
            raise ConfigError(f"--minutes {job.plan.minutes:g} leaves {max(minutes, 0):.1f} minutes to train after "
                              "reading the folder and measuring the bundled models; give more (--minutes 12)")
        _plan_runs(job, done, minutes)
    names = done["names"]
    if len(names) == 2 and "winner" not in done:
        for name in names:
            if name not in done.setdefault("trials", {}) and not _trial(job, done, name):
                return False
        trials = done["trials"]
        done["winner"] = min(names, key=lambda n: trials[n]["nats_per_event"])
        loser = next(n for n in names if n != done["winner"])
        job.echo(f"trial: {_label(job, done['winner'])} {trials[done['winner']]['nats_per_event']:.3f} nats/event "
                 f"beats {_label(job, loser)} {trials[loser]['nats_per_event']:.3f} on your held-out pieces: "
                 f"it gets the rest of the time")
        job.save()
    winner = done.setdefault("winner", names[0])
    if not done.get("finished"):
        if done.get("trials", {}).get(winner, {}).get("stop_reason") == "early stopping":
            done["stop_reason"] = "early stopping"
        else:
            result = _run(job, done, winner, deadline=None)
            if result is None:
                return False
            done["stop_reason"] = result.stop_reason
        done["finished"] = True
        job.save()
    return True


def candidate_label(state: dict, name: str) -> str:
    """A candidate as people read it: "chorale fine-tuned" or "from scratch"."""
    return f"{state['base']} fine-tuned" if name == "finetune" else "from scratch"


def _label(job, name: str) -> str:
    return candidate_label(job.state, name)


def _plan_runs(job, done: dict, minutes: float) -> None:
    import torch

    from melodygen.dataset.shards import TokenDataset

    base, start = job.state["base"], job.plan.start
    names = ["finetune", "scratch"] if base and start == "auto" else ["finetune"] if base else ["scratch"]
    trial = trial_minutes(minutes) if len(names) == 2 else None
    budget = minutes - trial if trial else minutes
    offsets = TokenDataset(job.dataset, "train").offsets
    lengths = np.diff(offsets).tolist()
    models, keys = {}, {"scratch": list(job.plan.transpose)}
    if "finetune" in names:
        from melodygen.checkpoint import load

        ckpt = load(base)
        models["finetune"] = {"kind": ckpt["model"]["kind"], **ckpt["model"]["settings"]}
        keys["finetune"] = list(ckpt["run_config"].get("training", {}).get("transpose_range", job.plan.transpose))
    if "scratch" in names:
        models["scratch"], why = scratch_model(job.survey, torch.cuda.is_available())
        job.choose(Choice("model", f"{models['scratch']['d_model']}x{models['scratch']['n_layers']} from scratch",
                          why, "--set model.d_model=N ..."))
    context = min(m.get("max_context") or 1024 for m in models.values())
    seq_len, starts, why = windows(lengths, context)
    if start != "auto":
        start_why = "as asked"
    elif trial is not None:
        start_why = (f"{base} (best of the bundled models on your pieces) fine-tuned, and a model from scratch: "
                     f"{trial:.1f} minutes each, the better one gets the rest")
    else:
        start_why = "no bundled model reads this encoding: from scratch"
    job.choose(Choice("start", " or ".join(_label(job, n) for n in names), start_why, "--from"))
    where = "a piece's start" if starts == "pieces" else "anywhere"
    job.choose(Choice("windows", f"{seq_len} ids from {where}", why, "--set training.seq_len=N"))
    done.update(names=names, trial_minutes=trial, budget_minutes=budget,
                configs={name: _config(job, name, models[name], keys[name], (seq_len, starts), budget)
                         for name in names})
    job.save()


def _config(job, name: str, model: dict, keys: list[int], window: tuple[int, str], minutes: float) -> dict:
    """A candidate's run config, the user's `--set`s applied last. A fine-tune keeps the base's
    model settings, its dropout included, and its transpositions (what the model was trained
    under: raising a base's dropout from 0.1 to 0.2 made every held-out figure worse from the
    first steps), and learns more slowly the fewer pieces there are (scripts/fit_table.py;
    docs/benchmarks.md)."""
    from melodygen.config import with_overrides

    fine_tune = name == "finetune"
    small = len(job.survey.pieces) < SMALL_FINE_TUNE
    seq_len, starts = window
    return with_overrides({
        "data": {"dataset": str(job.dataset.resolve())},
        "encoding": {"name": job.plan.encoding, **job.state["encoding_settings"]},
        "model": model,
        "training": {
            "batch_size": 4 if seq_len > 512 else 8, "seq_len": seq_len, "max_steps": 1_000_000,
            "max_minutes": round(minutes, 3),
            "lr": (SMALL_FINE_TUNE_LR if small else FINE_TUNE_LR) if fine_tune else SCRATCH_LR,
            "weight_decay": 0.1, "betas": [0.9, 0.95], "warmup_steps": 20 if fine_tune else 50,
            "min_lr_ratio": 0.1, "grad_clip": 1.0, "eval_every": EVAL_EVERY, "eval_max_batches": EVAL_BATCHES,
            "log_every": 5, "patience": PATIENCE, "transpose_range": keys,
            "window_starts": starts, "seed": 1234, "init_from": job.state["base"] if fine_tune else "",
        },
    }, job.plan.overrides, f"fit {name}")


def _trial(job, done: dict, name: str) -> bool:
    """One candidate for its trial time, then scored; False when the user stopped it."""
    from melodygen.fitting.scoring import score_run

    result = _run(job, done, name, deadline=done["trial_minutes"] * 60)
    if result is None:
        return False
    notes = job.state["dataset"]["held_out_notes"]
    done["trials"][name] = {**score_run(job.run_dir(name), job.dataset, notes), "stop_reason": result.stop_reason,
                            "steps": result.step, "minutes": round(result.elapsed_s / 60, 2)}
    job.echo(f"trial: {_label(job, name)}: {done['trials'][name]['nats_per_event']:.3f} nats/event after "
             f"{result.step} steps")
    job.save()
    return True


def _run(job, done: dict, name: str, deadline: float | None):
    """Train candidate `name` (resuming its run when it has one) until its budget, early
    stopping or, given, `deadline` seconds of its own training time; None when the user
    stopped it."""
    from melodygen.config import config_from_dict
    from melodygen.training import train
    from melodygen.training.rundir import RunPaths

    run_dir = job.run_dir(name)
    resume = RunPaths(run_dir).last.is_file()
    stop = job.stop
    if deadline is not None:
        stop = Deadline(job.stop, deadline - (_elapsed(RunPaths(run_dir).last) if resume else 0.0))
    job.echo(f"training {_label(job, name)} into {run_dir}" + (" (resumed)" if resume else ""))
    result = train(config_from_dict(done["configs"][name], f"fit {name}"), run_dir, resume=resume,
                   overwrite=not resume, stop=stop, progress=job.progress)
    return None if job.stop.requested else result


def _elapsed(last) -> float:
    from melodygen.checkpoint import load

    return float(load(last)["scheduler"]["elapsed_s"])
