"""`melodygen baseline`: a count-based n-gram baseline on a prepared dataset."""

from __future__ import annotations

import click


@click.command("baseline")
@click.argument("data_dir", type=click.Path(file_okay=False, path_type=str))
@click.option("--order", "orders", multiple=True, default=(3,), show_default=True, type=click.IntRange(1, 6),
              help="n of the n-gram (2 = bigram); repeat for a table.")
@click.option("--split", default="valid", show_default=True, type=click.Choice(["valid", "train"]),
              help="Which split to score (the n-gram is always counted on train).")
@click.option("--seq-len", default=256, show_default=True, type=click.IntRange(1),
              help="Window length; use the model's training one to compare like with like.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per order.")
def command(data_dir: str, orders: tuple[int, ...], split: str, seq_len: int, as_json: bool) -> None:
    """Fit an interpolated Witten-Bell n-gram on the train split of DATA_DIR and
    score it on the validation split: NLL (nats/event), perplexity, accuracy, over
    the same events as `melodygen evaluate --data DATA_DIR`. A model worth its
    training beats it clearly.

    \b
    Examples:
      melodygen baseline runs/data/nottingham-melody
      melodygen baseline runs/data/nottingham-melody --order 2 --order 3 --order 5
      melodygen baseline runs/data/bach-performance --json
    """
    import json

    from melodygen.baseline import evaluate_baseline
    from melodygen.metrics import format_figures

    for order in orders:
        result = evaluate_baseline(data_dir, order=order, split=split, seq_len=seq_len)
        if as_json:
            click.echo(json.dumps(result))
            continue
        click.echo(f"{order}-gram on {result['source']}: {result['events']} events   {format_figures(result)}")
