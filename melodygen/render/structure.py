"""Pictures of a piece's structure: the bar self-similarity matrix (`stats.structure`) as a PNG.

Bar i against bar j, 1 (dark) where their notes are the same: a piece that repeats shows
diagonal lines off the main diagonal (an AABB tune: a line 8 bars off it for each repeat),
one that wanders shows the main diagonal alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from melodygen.atomic import atomic_write


def draw_structure(score, png_path: Path, *, name: str) -> Path | None:
    """`png_path` with the bar self-similarity of `score` drawn, or None when it has no notes."""
    from melodygen.errors import NoUsableMusicError
    from melodygen.stats.metrics import bar_self_similarity

    try:
        return draw_self_similarity(bar_self_similarity(score), png_path, name=name)
    except NoUsableMusicError:
        return None


def draw_self_similarity(matrix: np.ndarray, png_path: Path, *, name: str) -> Path:
    """Write `matrix` (bars, bars) with values in [0, 1] to `png_path` (about 420 x 420 pixels)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.2, 4.2), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    bars = len(matrix)
    ax.imshow(matrix, cmap="Greys", vmin=0.0, vmax=1.0, origin="lower", interpolation="nearest",
              extent=(0.5, bars + 0.5, 0.5, bars + 0.5))
    ax.set_xlabel("bar")
    ax.set_ylabel("bar")
    ax.set_title(f"{name}: bar self-similarity", fontsize=9)
    with atomic_write(png_path) as file:
        figure.savefig(file, format="png")
    return png_path
