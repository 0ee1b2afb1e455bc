"""Atomic writes: the target appears complete or not at all, the old file survives a failure,
no temp file is left, and errors name the target, not the temp file; what a killed writer left
goes at the next write into its folder, and only that."""

import os
import subprocess
import sys
import tempfile

import pytest

from melodygen.atomic import atomic_write, remove_leftovers, scratch_folder
from melodygen.errors import OutputError


def dead_pid() -> int:
    """The pid of a process that has come and gone."""
    process = subprocess.Popen([sys.executable, "-c", ""])
    process.wait()
    return process.pid


def test_writes_and_replaces_with_the_usual_permissions(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_write(target, "w", encoding="utf-8") as file:
        file.write("new é")
    assert target.read_text(encoding="utf-8") == "new é" and os.listdir(tmp_path) == ["out.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


@pytest.mark.parametrize("error", [KeyboardInterrupt, ValueError])
def test_a_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path, error):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(error):
        with atomic_write(target) as file:
            file.write(b"half")
            raise error
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.bin"]


def test_os_errors_name_the_target(tmp_path):
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(OutputError, match=r"dir\.png: cannot write \(Is a directory\)$"):
        with atomic_write(tmp_path / "dir.png") as file:
            file.write(b"x")
    with pytest.raises(OutputError, match=r"nowhere/x\.mid: cannot write \(No such file or directory\)$"):
        with atomic_write(tmp_path / "nowhere" / "x.mid"):
            pass
    assert sorted(os.listdir(tmp_path)) == ["dir.png"]


def test_a_killed_writers_temp_file_goes_at_the_next_write_into_its_folder(tmp_path):
    writer = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom melodygen.atomic import atomic_write\n"
         "with atomic_write(sys.argv[1]) as file:\n"
         "    file.write(b'half'); file.flush(); print('writing', flush=True); time.sleep(60)",
         str(tmp_path / "last.pt")], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline() == "writing\n"
    writer.kill()  # SIGKILL: no finally runs
    writer.wait()
    [leftover] = os.listdir(tmp_path)
    assert leftover.startswith(".last.pt.tmp-")
    with atomic_write(tmp_path / "config.toml") as file:  # any target in that folder
        file.write(b"x")
    assert os.listdir(tmp_path) == ["config.toml"]


def test_only_temp_files_no_live_process_holds_are_removed(tmp_path):
    dead, alive, me = dead_pid(), os.getppid(), os.getpid()
    names = {f".a.mid.tmp-{dead}-0123abcd": False, f".a.mid.tmp-{alive}-0123abcd": True,
             f".a.mid.tmp-{me}-0123abcd": False,  # our pid, not written by us: an earlier run's
             f".ds.partial-{dead}-0123abcd": True,  # another kind: prepare's, not a write's
             f".a.mid.tmp-{dead}-temp": True, "a.mid.tmp": True}
    for name in names:
        (tmp_path / name).write_bytes(b"")
    with atomic_write(tmp_path / "b.mid") as file:
        remove_leftovers(tmp_path, ("tmp",))  # leaves this write's own temp file alone
        file.write(b"b")
    assert sorted(os.listdir(tmp_path)) == sorted(["b.mid", *(n for n, kept in names.items() if kept)])


def test_a_scratch_folder_goes_with_its_block_and_a_killed_ones_with_the_next(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the system's temp folder, for this test
    killed = tmp_path / f".melodygen.render-{dead_pid()}-0123abcd"
    killed.mkdir()
    (killed / "out.raw").write_bytes(b"\0" * 64)
    other = tmp_path / f".melodygen.studio-{dead_pid()}-0123abcd"  # another kind: the studio's own sweep
    other.mkdir()
    with scratch_folder("render") as folder:
        assert folder.is_dir() and folder.parent == tmp_path and not killed.exists()
        (folder / "out.raw").write_bytes(b"\0" * 64)
    assert not folder.exists() and other.exists()
