"""`melodygen evaluate`: NLL, perplexity and accuracy of a checkpoint on held-out music."""

from __future__ import annotations

import click

from melodygen.commands.params import threads_option


@click.command("evaluate")
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=str))
@click.argument("sources", nargs=-1, type=click.Path(path_type=str))
@click.option("--data", "data_dir", default=None, type=click.Path(file_okay=False, path_type=str),
              help="A prepared dataset folder (from `melodygen prepare`).")
@click.option("--split", default="valid", show_default=True, type=click.Choice(["valid", "train"]),
              help="Which split of --data to score.")
@click.option("--seq-len", default=None, type=click.IntRange(1),
              help="Window length [default: the training one stored in the checkpoint].")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1))
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--baseline", "baseline_order", default=None, type=click.IntRange(1, 6),
              help="Also score an n-gram of this order (counted on the train split of the dataset).")
@click.option("--fit-velocities", is_flag=True,
              help="Map each velocity the model never saw in training to the nearest one it saw "
                   "before scoring (for music played with dynamics the model never heard).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
@threads_option("evaluate")
def command(checkpoint: str, sources: tuple[str, ...], data_dir: str | None, as_json: bool, threads: int | None,
            **options) -> None:
    """Score a CHECKPOINT on held-out music: the validation split of a prepared
    dataset (--data DIR; default: the one it was trained on) or MIDI files/folders
    (SOURCES, encoded with the checkpoint's encoding, each piece as BOS ids EOS).

    Prints the mean negative log-likelihood in nats per event (lower is better),
    the perplexity exp(NLL), and the accuracy (how often the likeliest next event
    is the right one): the same figures as training validation.

    A warning line says when 2% or more of the scored ids are ones the model never
    saw in training (velocities, meters, instruments...), with their share by kind:
    its figures on such music measure mostly that. --fit-velocities maps each
    velocity it never saw to the nearest it saw and says how many ids it changed.

    \b
    Examples:
      melodygen evaluate runs/melody_lstm/best.pt
      melodygen evaluate runs/melody_lstm/best.pt --data runs/data/nottingham-melody --baseline 5
      melodygen evaluate best.pt my_tunes/ other.mid
      melodygen evaluate best.pt --data runs/data/x --json
      melodygen evaluate chorale quartets/ --fit-velocities
    """
    import json

    from melodygen.devices import busy_note, use_threads
    from melodygen.evaluation import evaluate_checkpoint
    from melodygen.metrics import format_figures

    if data_dir is not None and sources:
        raise click.UsageError("give --data DIR or MIDI SOURCES, not both")
    crowded = busy_note(use_threads("evaluate", threads), options["device"])
    if crowded:
        click.echo(crowded, err=True)
    result = evaluate_checkpoint(checkpoint, data_dir=data_dir, sources=sources, **options)
    if as_json:
        click.echo(json.dumps({"checkpoint": checkpoint, **result}))
        return
    for line in result["skipped"]:
        click.echo(f"skipped {line}", err=True)
    if result.get("input_warning"):
        click.echo(result["input_warning"], err=True)
    click.echo(f"{checkpoint} on {result['source']}: {result['events']} events, windows of {result['seq_len']}")
    if options["fit_velocities"] and "fitted" in result:
        click.echo(f"  fitted {result['fitted']} velocity ids to the nearest the model saw in training")
    elif options["fit_velocities"]:
        from melodygen.dataset.profile import UNKNOWN_FIT

        click.echo(f"warning: {UNKNOWN_FIT}", err=True)
    click.echo(f"  model    {format_figures(result)}")
    if "baseline" in result:
        base = result["baseline"]
        click.echo(f"  {base['order']}-gram   {format_figures(base)}")
        click.echo(f"  model - {base['order']}-gram: {result['nll'] - base['nll']:+.4f} nats/event "
                   f"({result['nll'] / base['nll'] - 1:+.1%})")
        verdict = versus_baseline(result["nll"], base["nll"], base["order"])
        if verdict:
            click.echo(verdict)


def versus_baseline(nll: float, baseline_nll: float, order: int) -> str | None:
    """One line when the model predicts the events no better than the n-gram counted on its
    train split: why (too little training, most likely) and what to do; None otherwise."""
    if nll < baseline_nll:
        return None
    return (f"note: the model does no better than a counted {order}-gram on these events "
            f"({nll - baseline_nll:+.4f} nats/event): it has most likely not trained enough; train it "
            f"for longer (--set training.max_minutes=0 runs all its max_steps; --threads 1 on a busy machine)")
