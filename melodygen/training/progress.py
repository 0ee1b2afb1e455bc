"""What the user sees: a tqdm bar while training and a one-screen summary at the end.
Only rank 0 shows anything."""

from __future__ import annotations

import shlex
import sys

from tqdm import tqdm


class ProgressBar:
    """Step counter with loss, val NLL and tokens/s; ETA from tqdm (refreshes at most ~10x/s,
    so a per-step `advance()` costs next to nothing)."""

    def __init__(self, total: int, initial: int, enabled: bool, header: str = ""):
        if enabled and header:
            print(header, file=sys.stderr)
        self._bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True,
                         disable=not enabled, file=sys.stderr, mininterval=0.5)
        self._fields: dict[str, str] = {}

    def advance(self) -> None:
        self._bar.update(1)

    def show(self, **fields: str) -> None:
        self._fields.update(fields)
        self._bar.set_postfix(self._fields, refresh=False)

    def write(self, line: str) -> None:
        if not self._bar.disable:
            self._bar.write(line, file=sys.stderr)

    def close(self) -> None:
        self._bar.close()


def describe_start(directory, manifest: dict, model) -> str:
    """One line on what is about to train on what."""
    from melodygen.models import count_parameters

    splits = ", ".join(f"{name} {split['pieces']} pieces / {split['tokens']:,} ids"
                       for name, split in manifest.get("splits", {}).items())
    return f"data: {directory} ({splits}); model: {model.kind}, {count_parameters(model):,} parameters"


def format_duration(seconds: float) -> str:
    """'4m05s', or '1h02m03s' from an hour."""
    minutes, secs = divmod(max(0, int(round(seconds))), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def summary(result, training=None, *, crowded: bool = False) -> str:
    """The end-of-run screen for a `TrainResult`; given the run's `TrainingConfig`, it also
    says when the time budget cut the run short (`shortfall`)."""
    paths = result.paths
    lines = [f"Stopped at step {result.step} ({result.stop_reason}) after "
             f"{format_duration(result.elapsed_s)}; {result.params:,} parameters, "
             f"{result.tokens_per_s:,.0f} training tokens/s."]
    short = training and shortfall(result.step, result.stop_reason, training, crowded=crowded)
    if short:
        lines.append(short)
    best = result.best
    if best:
        lines.append(f"  best val NLL  {best['nll']:.4f} nats/event at step {best['step']}: "
                     f"perplexity {best['perplexity']:.3f}, accuracy {100 * best['accuracy']:.1f}%")
    else:
        lines.append("  no validation figures (empty valid split, or stopped before the first)")
    sample_from = paths.best if best and paths.best.is_file() else paths.last
    lines += [f"  checkpoints   {paths.best if paths.best.is_file() else '(no best.pt)'}  {paths.last}",
              f"  metrics       {paths.metrics}",
              f"  config        {paths.config}"]
    if result.stop_reason == "interrupted":
        lines += ["Resume with:", f"  melodygen train --out {shlex.quote(str(paths.root))} --resume"]
    lines += ["Try next:", f"  melodygen sample {shlex.quote(str(sample_from))} --out "
              f"{shlex.quote(str(paths.root / 'samples'))} --temperature 0.9"]
    return "\n".join(lines)


def shortfall(step: int, stop_reason: str, training, *, crowded: bool = False) -> str | None:
    """One line when the time budget ended a run before half its `max_steps`: why and what to
    do; `crowded`: it ran several threads on a machine busier than its cores
    (`devices.busy_note`). None otherwise."""
    if stop_reason != "time budget" or step >= training.max_steps / 2:
        return None
    why = ("on a machine busier than its cores, where torch's threads wait for each other; run "
           "again with --threads 1" if crowded else "on a busy or slow machine; free the CPU")
    return (f"note: stopped at {step:,} of {training.max_steps:,} steps: the "
            f"{training.max_minutes:g}-minute budget ran out {why}, or add --set "
            f"training.max_minutes=0 to run all {training.max_steps:,} steps")
