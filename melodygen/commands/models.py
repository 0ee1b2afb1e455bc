"""`melodygen models`: the trained models that ship with melodygen, and their model cards."""

from __future__ import annotations

import click


@click.command("models")
@click.argument("name", required=False)
def command(name: str | None) -> None:
    """List the bundled models, or print NAME's model card (data, license, size, measured
    figures, recipe). A bundled name works wherever a checkpoint path does.

    \b
    Examples:
      melodygen models
      melodygen models folk-band
      melodygen sample folk-melody --out samples/ -n 4 --bars 16
      melodygen evaluate chorale --data runs/data/bach-chorales-multitrack
    """
    from melodygen.errors import CheckpointError
    from melodygen.pretrained import bundled_models

    models = bundled_models()
    if name is not None:
        chosen = next((m for m in models if m.name == name), None)
        if chosen is None:
            known = ", ".join(m.name for m in models) or "none are installed"
            raise CheckpointError(f"no bundled model named {name!r} (bundled: {known})")
        click.echo(chosen.card.read_text(encoding="utf-8").rstrip())
        return
    if not models:
        click.echo("no bundled models are installed (scripts/make_pretrained.py makes them)")
        return
    rows = [("name", "encoding", "model", "params", "MB", "val NLL", "5-gram", "license", "what")]
    for m in models:
        rows.append((m.name, m.encoding, m.kind, f"{m.parameters / 1e6:.1f} M",
                     f"{m.checkpoint.stat().st_size / 1e6:.1f}", f"{m.val_nll:.3f}",
                     "-" if m.baseline_nll is None else f"{m.baseline_nll:.3f}",
                     m.license.split(" (")[0], m.summary))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
    click.echo("NLL in nats/event on each model's validation split (a masked model's: per erased cell, no "
               "n-gram beside it); `melodygen models NAME` shows its card")
