"""Shared test set-up: one torch thread (see docs/ARCHITECTURE.md) and paths to real data."""

from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"
# Real corpora in the repo (tests never read data outside it): the bundled ones, and a few
# POP909 files kept only for tests (tests/data/pop909/SOURCE.md).
CORPORA = {"nottingham": DATA / "nottingham", "bach-chorales": DATA / "bach-chorales",
           "pop909": REPO / "tests" / "data" / "pop909"}


@pytest.fixture
def nottingham_files() -> list[Path]:
    """A few small real folk tunes from the bundled corpus."""
    return sorted((DATA / "nottingham").glob("*.mid"))[:5]


@pytest.fixture
def chorale_files() -> list[Path]:
    """A few real Bach chorales (ticks_per_beat 10080, one track per voice)."""
    return sorted((DATA / "bach-chorales").glob("*.mid"))[:3]
