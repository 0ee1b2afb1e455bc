"""`train(config, out_dir)`: a whole training run, from the config to best.pt / last.pt.

Set-up (every check before anything is written), then the step loop: a step per iteration,
the loss read back every `log_every` steps, validation + checkpoints every `eval_every` steps
and at the end. It stops at `max_steps`, at the time budget, on early stopping, or when the
`StopFlag` is raised (Ctrl-C) -- then after finishing the current step and writing last.pt.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from melodygen import checkpoint
from melodygen.config import RunConfig, save_config
from melodygen.devices import resolve_device, set_threads
from melodygen.errors import ConfigError, TrainingDivergedError
from melodygen.training import data, distributed, optim, state
from melodygen.training.distributed import DistInfo
from melodygen.training.interrupt import StopFlag
from melodygen.training.progress import ProgressBar, describe_start, format_duration
from melodygen.training.rundir import MetricsLog, RunPaths, check_run_dir, clear_old_run
from melodygen.training.steps import Stepper, validate


@dataclass
class TrainResult:
    """How a run ended. `tokens_per_s` counts training ids over the time spent in training
    steps (validation passes excluded; batching, logging and checkpointing included), over all
    ranks, up to the last logged step (the last step unless interrupted): the last
    `tokens_per_s` of metrics.csv, the same figure."""

    step: int
    stop_reason: str  # "max_steps", "time budget", "early stopping" or "interrupted"
    best: dict | None  # {"nll", "perplexity", "accuracy", "step"} of the best validation
    paths: RunPaths
    elapsed_s: float
    train_s: float
    tokens: int
    params: int
    is_main: bool = True  # False on the other ranks of a distributed run

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.train_s if self.train_s > 0 else 0.0


@dataclass
class _Run:
    """Everything the step loop reads and updates."""

    config: RunConfig
    info: DistInfo
    device: torch.device
    paths: RunPaths
    encoding: object
    raw_model: torch.nn.Module  # unwrapped: what checkpoints and validation use
    optimizer: torch.optim.Optimizer
    sampler: object
    valid: data.ValidationWindows
    stepper: Stepper
    step: int = 0
    best: dict | None = None
    bad_evals: int = 0
    elapsed_before: float = 0.0
    running: tuple[torch.Tensor | float, int] = (0.0, 0)  # loss sum and steps since the last log
    metrics: MetricsLog | None = None
    bar: ProgressBar | None = None
    clock: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)  # the dataset's
    instruments: list[int] | None = None  # the train split's (`data.instruments_in`)
    data_profile: dict | None = None  # the train split's ids counted (`dataset.profile`)


def train(config: RunConfig, out_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
          stop: StopFlag | None = None, progress: bool = True) -> TrainResult:
    """Trains per `config` into the run folder `out_dir` (or continues it with `resume`, or
    replaces the run there with `overwrite`)."""
    set_threads(config.training.threads)
    device = resolve_device(config.training.device)
    info = distributed.setup(device)
    try:
        paths = check_run_dir(out_dir, resume, overwrite)
        run = _setup(config, paths, resume, info, distributed.local_device(device, info),
                     progress and info.is_main)
        if info.is_main:
            _open_outputs(run, resume, progress)
        try:
            stop = stop or StopFlag()
            stop.armed = True  # from here on, Ctrl-C finishes the step and writes last.pt
            reason = _loop(run, stop)
            _finish(run, reason)
        finally:
            if run.bar:
                run.bar.close()
            if run.metrics:
                run.metrics.close()
        result = _result(run, reason)
        del run  # the DDP wrapper must go before its process group (see distributed.teardown)
        return result
    finally:
        distributed.teardown(info)


def _setup(config: RunConfig, paths: RunPaths, resume: bool, info: DistInfo, device,
           progress: bool) -> _Run:
    """Builds the run, checking everything (config, data, checkpoint) before writing."""
    from melodygen.dataset.profile import dataset_profile
    from melodygen.encodings import PAD_ID, get_encoding

    ckpt = checkpoint.load(paths.last) if resume else None
    encoding = get_encoding(config.encoding.name, **config.encoding.settings)
    raw_model = _build_model(config, encoding)
    new_weights = frozenset()  # trained at the full rate beside a warm start's (`make_optimizer`)
    if ckpt is not None:
        state.check_same_run(ckpt, raw_model, encoding, paths.last)
        raw_model.load_state_dict(ckpt["model"]["state_dict"])
        new_weights = optim.new_weights(ckpt.get("optimizer") or {})
    elif config.training.init_from:
        from melodygen.training.init import load_initial_weights

        new_weights = load_initial_weights(raw_model, encoding, config.training.init_from).new
    directory, manifest = data.dataset_dir(config, encoding, info, progress)
    sampler = data.train_batches(directory, config, encoding, info, raw_model)
    raw_model.to(device)
    optimizer = optim.make_optimizer(raw_model, config.training, new_weights)
    model = torch.compile(raw_model) if config.training.compile else raw_model
    model = distributed.wrap(model, info, device)
    stepper = Stepper(model, optimizer, sampler, config.training, device, PAD_ID)
    config = _resolved(config, raw_model, encoding, directory)
    run = _Run(config, info, device, paths, encoding, raw_model, optimizer, sampler,
               data.ValidationWindows(directory, config, info, encoding, raw_model),
               stepper, manifest=manifest,
               instruments=data.instruments_in(directory, encoding),
               data_profile=dataset_profile(directory, encoding, config.training.transpose_range).to_dict())
    if ckpt is not None:
        resumed = state.restore(ckpt, optimizer, sampler, info, paths.last)
        run.step, run.best = ckpt["step"], resumed["best"]
        run.bad_evals, run.elapsed_before = resumed["bad_evals"], resumed["elapsed_s"]
        run.running = resumed["running_loss"]
    return run


def _build_model(config: RunConfig, encoding) -> torch.nn.Module:
    """The model, initialised from the seed (every rank alike; DDP also broadcasts rank 0's)."""
    from melodygen.models import MODELS, build_model

    torch.manual_seed(config.training.seed)
    settings = dict(config.model.settings)
    entry = MODELS.get(config.model.kind)
    if entry is not None and entry.model_type.reads_source:
        encoding.given_source(np.zeros(0, dtype=np.int64), 1)  # an encoding without tracks says so now
        settings["bar_id"] = settings.get("bar_id") or _bar_id(encoding)
    if entry is not None and entry.model_type.fills_blanks:
        encoding.blank_of([])  # as an encoding without blanks does, before any data is prepared
    model = build_model(config.model.kind, settings, encoding.vocab.size)
    if model.max_context is not None and config.training.seq_len > model.max_context:
        raise ConfigError(f"training.seq_len = {config.training.seq_len} is longer than the "
                          f"model's max_context = {model.max_context}")
    return model


def _bar_id(encoding) -> int:
    """The id that opens a bar (`Encoding.time_per_id` counts it as one), which an
    encoder-decoder numbers bars by; 0 (none) for an encoding without bars."""
    from melodygen.encodings.base import BARS

    per_id = encoding.time_per_id()
    opens = [] if per_id is None or per_id.unit != BARS else np.flatnonzero(per_id.amounts == 1)
    return int(opens[0]) if len(opens) == 1 else 0


def _resolved(config: RunConfig, model, encoding, directory: Path) -> RunConfig:
    """The config with every model and encoding setting spelled out (defaults included) and
    the dataset actually used (absolute), which `melodygen evaluate` and `--resume` read."""
    from melodygen.models import settings_to_dict

    return config.replace(model=settings_to_dict(model.settings),
                          encoding=encoding.to_dict()["settings"],
                          data={"dataset": str(directory.resolve())})


def _open_outputs(run: _Run, resume: bool, progress: bool) -> None:
    run.paths.root.mkdir(parents=True, exist_ok=True)
    if not resume:
        clear_old_run(run.paths)
    save_config(run.config, run.paths.config)
    run.metrics = MetricsLog(run.paths.metrics, run.step if resume else None)
    run.bar = ProgressBar(run.config.training.max_steps, run.step, progress,
                          header=describe_start(run.valid.dataset.directory, run.manifest, run.raw_model))
    if run.valid.empty:
        run.bar.write(f"note: {run.valid.dataset.directory} has no validation ids; "
                      "no validation, no best.pt, no early stopping")


def _loop(run: _Run, stop: StopFlag) -> str:
    cfg = run.config.training
    tokens_per_step = cfg.batch_size * cfg.seq_len * cfg.grad_accum * run.info.world_size
    now = time.perf_counter()
    run.clock = {"start": now, "val_s": 0.0, "tokens": 0, "log_time": 0.0, "log_tokens": 0}
    loss_sum, count = run.running
    run.running = (torch.tensor(loss_sum, device=run.device), count)
    if run.step == 0 and cfg.init_from:  # a fine-tune's starting point is a model: measured, best.pt if best
        _write_row(run, _evaluate(run)[1])
    while run.step < cfg.max_steps:
        loss = run.stepper(run.step, _time_used(run))
        run.running = (run.running[0] + loss, run.running[1] + 1)
        run.step += 1
        run.clock["tokens"] += tokens_per_step
        if run.bar:
            run.bar.advance()
        at_log = run.step % cfg.log_every == 0 or run.step == cfg.max_steps
        row = _train_figures(run) if at_log else {}
        early_stop = False
        if _validates_at(run):
            early_stop, val_row = _evaluate(run)
            row |= val_row
        reason = "early stopping" if early_stop else _stop_reason(run, stop, at_log)
        if reason and reason != "interrupted" and not at_log:
            # The run's figures end on its last step. (An interrupted run keeps its running
            # loss for the resumed one, which logs it as an uninterrupted run would have.)
            row |= _train_figures(run)
        if reason == "time budget" and not _validates_at(run):
            row |= _evaluate(run)[1]  # a last validation of what the budget bought
        _write_row(run, row)
        if reason:
            return reason
    return "max_steps"


def _stop_reason(run: _Run, stop: StopFlag, at_log: bool) -> str | None:
    """Ctrl-C or the time budget; under DDP decided together at log steps only (one sync)."""
    over = _time_used(run) >= 1.0
    if run.info.enabled:
        if not at_log:
            return None
        interrupted = distributed.any_rank(stop.requested, run.info, run.device)
        over = distributed.any_rank(over, run.info, run.device)
    else:
        interrupted = stop.requested
    return "interrupted" if interrupted else ("time budget" if over else None)


def _elapsed(run: _Run) -> float:
    return run.elapsed_before + time.perf_counter() - run.clock["start"]


def _time_used(run: _Run) -> float:
    """The share of the time budget spent (0 without a budget)."""
    budget = run.config.training.max_minutes * 60
    return _elapsed(run) / budget if budget > 0 else 0.0


def _train_seconds(run: _Run) -> float:
    return time.perf_counter() - run.clock["start"] - run.clock["val_s"]


def _train_figures(run: _Run) -> dict:
    """Train loss, lr and tokens/s (the run's: all its training ids over its training time so
    far, the figure `TrainResult` ends on); the one place the loss is read back."""
    loss_sum, count = run.running
    loss = distributed.mean(loss_sum / count, run.info).item()
    _check_finite(run, "training loss", loss)
    run.running = (torch.zeros((), device=run.device), 0)
    clock = run.clock
    clock["log_time"], clock["log_tokens"] = _train_seconds(run), clock["tokens"]
    tokens_per_s = clock["log_tokens"] / clock["log_time"] if clock["log_time"] > 0 else 0.0
    if run.bar:
        budget_s = run.config.training.max_minutes * 60
        left = {"budget_left": format_duration(budget_s - _elapsed(run))} if budget_s else {}
        run.bar.show(loss=f"{loss:.3f}", tok_s=f"{tokens_per_s:,.0f}", **left)
    return {"train_loss": loss, "lr": run.stepper.lr, "tokens_per_s": tokens_per_s}


def _check_finite(run: _Run, what: str, value: float) -> None:
    """Stops a diverged run with one line; the checkpoints on disk keep the last good state."""
    if not math.isfinite(value):
        raise TrainingDivergedError(
            f"training diverged: the {what} is {value} at step {run.step} (lr {run.stepper.lr:.3g}); "
            f"lower training.lr or set training.grad_clip, then start again or --resume from "
            f"{run.paths.last}")


def _write_row(run: _Run, row: dict) -> None:
    if row and run.metrics:
        run.metrics.write(step=run.step, elapsed_s=_elapsed(run), **row)


def _evaluate(run: _Run) -> tuple[bool, dict]:
    """Validation, best.pt / last.pt -> (early stopping is due, metrics fields)."""
    if run.valid.empty:
        _save(run, best=False)
        return False, {}
    started = time.perf_counter()
    val = validate(run.raw_model, run.valid, run.device, run.info)
    run.clock["val_s"] += time.perf_counter() - started  # checkpointing stays in train time
    _check_finite(run, "validation NLL", val["nll"])  # before a checkpoint could keep the weights
    improved = run.best is None or val["nll"] < run.best["nll"]
    if improved:
        run.best = {k: val[k] for k in ("nll", "perplexity", "accuracy")} | {"step": run.step}
    run.bad_evals = 0 if improved else run.bad_evals + 1
    _save(run, best=improved)
    if run.bar:
        run.bar.show(val_nll=f"{val['nll']:.3f}")
    patience = run.config.training.patience
    row = {"val_nll": val["nll"], "val_ppl": val["perplexity"], "val_acc": val["accuracy"]}
    return patience > 0 and run.bad_evals >= patience, row


def _save(run: _Run, best: bool) -> None:
    """last.pt (and best.pt) from rank 0; every rank takes part in gathering the RNG states."""
    from melodygen.models import settings_to_dict

    training_state = state.capture(run.optimizer, run.sampler, step=run.step, best=run.best,
                                   bad_evals=run.bad_evals, elapsed=_elapsed(run),
                                   running=(float(run.running[0]), run.running[1]), info=run.info)
    if not run.info.is_main:
        return
    ckpt = checkpoint.make_checkpoint(
        model_kind=run.raw_model.kind, model_settings=settings_to_dict(run.raw_model.settings),
        model=run.raw_model, encoding=run.encoding, run_config=run.config.to_dict(),
        step=run.step, best_val_nll=run.best["nll"] if run.best else None,
        training_state=training_state, instruments=run.instruments, data_profile=run.data_profile)
    checkpoint.save(ckpt, run.paths.last)
    if best:
        checkpoint.save(ckpt, run.paths.best)


def _finish(run: _Run, reason: str) -> None:
    """After Ctrl-C, last.pt (the other ends saved theirs at their last validation)."""
    if reason == "interrupted":
        _save(run, best=False)


def _validates_at(run: _Run) -> bool:
    """Whether the loop validates after the current step (the budget may run out on it)."""
    cfg = run.config.training
    return run.step % cfg.eval_every == 0 or run.step == cfg.max_steps


def _result(run: _Run, reason: str) -> TrainResult:
    from melodygen.models import count_parameters

    params = count_parameters(run.raw_model)
    return TrainResult(step=run.step, stop_reason=reason, best=run.best, paths=run.paths,
                       elapsed_s=_elapsed(run), train_s=run.clock["log_time"],
                       tokens=run.clock["log_tokens"], params=params, is_main=run.info.is_main)
