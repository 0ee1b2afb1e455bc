"""Nothing left behind by a kill -9: worker processes end with their parent, and the next run
removes what a killed one left (run folder temp files, `prepare`'s staging folder), with the
run's history intact. `test_atomic` and `test_prepare` cover the rules of what is removed."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from melodygen import atomic
from melodygen.dataset.manifest import check_dataset
from melodygen.dataset.prepare import prepare
from melodygen.encodings import get_encoding
from melodygen.training import rundir, train
from melodygen.training.rundir import MetricsLog
from test_atomic import dead_pid
from train_fixtures import make_dataset, tiny_config

BUSY_POOL = r"""
import os, sys, time
from melodygen.dataset import files
if sys.argv[1] == "watcher":
    files._set_parent_death_signal = lambda: False  # as on a system without prctl
else:
    files._exit_when_orphaned = lambda parent: None  # prctl alone must do it
def busy(path):
    os.write(1, b"%d\n" % os.getpid())  # one write: the two workers' lines never interleave
    time.sleep(60)
files.map_files(busy, ["a.mid", "b.mid"], workers=2, progress=False)
"""

SLOW_PREPARE = r"""
import os, sys, time
from melodygen.dataset import files
real = files.read_file
def slow(path, *args, **kwargs):  # found by name in the forked workers
    os.write(1, b"%d\n" % os.getpid())
    time.sleep(0.3)
    return real(path, *args, **kwargs)
files.read_file = slow
from melodygen.dataset.prepare import prepare
from melodygen.encodings import get_encoding
prepare([sys.argv[1]], get_encoding("melody"), sys.argv[2], workers=2, progress=False)
"""


def _gone(pid: int) -> bool:
    """Whether process `pid` has exited (a zombie nobody reaped yet counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _kill_and_watch_workers(args: list[str]) -> list[int]:
    """Start `python -c ...args`, read two worker pids from it, kill -9 it; the workers that
    are still there 5 s later (killed then, so the test leaves nothing behind either)."""
    parent = subprocess.Popen([sys.executable, "-c", *args], stdout=subprocess.PIPE, text=True)
    workers = set()
    try:
        while len(workers) < 2:
            workers.add(int(parent.stdout.readline()))
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not all(_gone(pid) for pid in workers):
        time.sleep(0.05)
    survivors = [pid for pid in workers if not _gone(pid)]
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    return survivors


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl and /proc are Linux's")
@pytest.mark.parametrize("how", ["prctl", "watcher"])
def test_pool_workers_end_with_their_killed_parent(how):
    assert _kill_and_watch_workers([BUSY_POOL, how]) == []


def test_resume_keeps_the_metrics_history_when_killed_while_rewriting_it(tmp_path, monkeypatch):
    path = tmp_path / "metrics.csv"
    log = MetricsLog(path, None)
    log.write(step=2, train_loss=2.5)
    log.write(step=4, train_loss=2.0, val_nll=2.1)
    log.close()
    before = path.read_text()

    class KilledWriter:  # the process dies while the kept rows are written back
        def __init__(self, file):
            pass

        def writerow(self, row):
            raise SystemExit(9)

        writerows = writerow

    monkeypatch.setattr(rundir.csv, "writer", KilledWriter)
    with pytest.raises(SystemExit):
        MetricsLog(path, resume_step=4)
    assert path.read_text() == before


def test_a_resumed_run_removes_the_temp_files_of_a_killed_checkpoint_save(tmp_path, monkeypatch):
    config = tiny_config(make_dataset(tmp_path / "motifs"), max_steps=4)
    train(config, tmp_path / "run", progress=False)
    leftovers = [tmp_path / "run" / f".{name}.tmp-{dead_pid()}-0123abcd" for name in ("last.pt", "best.pt")]
    for leftover in leftovers:
        leftover.write_bytes(b"half a checkpoint")
    monkeypatch.setattr(atomic, "_swept", set())  # the resumed run is a new process
    train(config, tmp_path / "run", resume=True, progress=False)  # nothing left to train
    assert not any(leftover.exists() for leftover in leftovers)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl and /proc are Linux's")
def test_killed_prepare_leaves_no_workers_and_the_next_run_no_staging_folder(nottingham_files, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for path in nottingham_files:
        shutil.copy(path, src / path.name)
    out = tmp_path / "ds"
    assert _kill_and_watch_workers([SLOW_PREPARE, str(src), str(out)]) == []
    assert [p.name.startswith(".ds.partial-") for p in tmp_path.iterdir() if p.name != "src"] == [True]
    prepare([src], get_encoding("melody"), out, workers=1, progress=False)
    check_dataset(out, get_encoding("melody").to_dict())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "src"]
