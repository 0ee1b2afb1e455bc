"""Shared test set-up: one torch thread (see docs/ARCHITECTURE.md) and paths to real data."""

from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"


@pytest.fixture
def nottingham_files() -> list[Path]:
    """A few small real folk tunes from the bundled corpus."""
    return sorted((DATA / "nottingham").glob("*.mid"))[:5]


@pytest.fixture
def chorale_files() -> list[Path]:
    """A few real Bach chorales (ticks_per_beat 10080, one track per voice)."""
    return sorted((DATA / "bach-chorales").glob("*.mid"))[:3]
