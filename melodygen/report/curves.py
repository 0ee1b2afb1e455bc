"""The training-curves picture of a run: loss and validation NLL over steps, and accuracy."""

from __future__ import annotations

import io

from melodygen.report.run import Metrics, series


def curves_png(metrics: Metrics) -> bytes | None:
    """PNG bytes of the curves (None when metrics.csv holds no loss or NLL values).

    Left: training loss and validation NLL (both nats/event) against the step; right, when the
    file has it: validation accuracy.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    losses = {label: series(metrics, key) for key, label in
              (("train_loss", "training loss"), ("val_nll", "validation NLL"))}
    accuracy = series(metrics, "val_acc")
    if not any(steps for steps, _ in losses.values()):
        return None
    figure = Figure(figsize=(12, 3.8), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    panels = figure.subplots(1, 2 if accuracy[0] else 1, squeeze=False)[0]
    for (label, (steps, values)), style in zip(losses.items(), ("-", "o-")):
        if steps:
            panels[0].plot(steps, values, style, label=label, markersize=3, linewidth=1.2)
    panels[0].set(xlabel="step", ylabel="nats / event", title="loss")
    panels[0].legend()
    if accuracy[0]:
        panels[1].plot(*accuracy, "o-", color="tab:green", markersize=3, linewidth=1.2)
        panels[1].set(xlabel="step", ylabel="accuracy", title="validation accuracy")
    for ax in panels:
        ax.grid(True, color="0.9")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
