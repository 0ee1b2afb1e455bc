"""Bundled trained models: small checkpoints shipped inside the package, so a newcomer can
sample before training anything.

Each model is `NAME.pt` (a melodygen checkpoint, weights stored in float16, loaded as float32)
with its model card `NAME.md` (data, license, size, measured figures, recipe), listed in
`index.json`. `scripts/make_pretrained.py` makes all three files from the bundled corpora with a
fixed seed: the recipe is the documentation. A name works wherever a checkpoint path does
(`melodygen sample folk-melody ...`, `melodygen.load("folk-melody")`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

PRETRAINED_DIR = Path(__file__).resolve().parent
INDEX = PRETRAINED_DIR / "index.json"


@dataclass(frozen=True)
class BundledModel:
    """One entry of `index.json`: what `melodygen models` shows."""

    name: str
    summary: str
    encoding: str
    kind: str
    parameters: int
    license: str
    val_nll: float
    baseline_nll: float | None  # None: a masked model, scored on erased cells (no n-gram predicts those)

    @property
    def checkpoint(self) -> Path:
        return PRETRAINED_DIR / f"{self.name}.pt"

    @property
    def card(self) -> Path:
        return PRETRAINED_DIR / f"{self.name}.md"


def bundled_models() -> list[BundledModel]:
    """The bundled models whose checkpoint is present, in index order ([] without an index)."""
    if not INDEX.is_file():
        return []
    entries = json.loads(INDEX.read_text(encoding="utf-8"))["models"]
    fields = BundledModel.__dataclass_fields__
    models = [BundledModel(**{k: v for k, v in entry.items() if k in fields}) for entry in entries]
    return [m for m in models if m.checkpoint.is_file()]


def bundled_checkpoint(name: str) -> Path | None:
    """The checkpoint file of the bundled model `name`, or None."""
    return next((m.checkpoint for m in bundled_models() if m.name == name), None)
