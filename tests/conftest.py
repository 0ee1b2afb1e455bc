"""Shared test set-up: one torch thread (see docs/ARCHITECTURE.md) and paths to real data."""

import atexit
import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)
# torch.compile's kernel cache (default /tmp/torchinductor_<user>) outlives the session; a
# kernel compiled on another CPU (AVX-512) and reused on this one can crash the process. Each
# test session compiles afresh in its own folder, so no test depends on which CPU ran before.
os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="melodygen-inductor-")
atexit.register(shutil.rmtree, os.environ["TORCHINDUCTOR_CACHE_DIR"], ignore_errors=True)
# Datasets that `train` prepares from sources are cached in the user's cache folder by default:
# the tests' go to a folder of their own.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="melodygen-cache-")
atexit.register(shutil.rmtree, os.environ["XDG_CACHE_HOME"], ignore_errors=True)

REPO = Path(__file__).resolve().parent.parent


def default_sigint() -> None:
    """`preexec_fn` of a child process that a test interrupts with SIGINT. A suite started
    with SIGINT ignored (under `&`, nohup or some CI wrappers) passes that on to its children,
    and Python installs its KeyboardInterrupt handler only where SIGINT is not ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def sigint_ignored():
    """This test runs as if the suite had been started with SIGINT ignored."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    yield
    signal.signal(signal.SIGINT, previous)
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
