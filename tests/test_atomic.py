"""Atomic writes: the target appears complete or not at all, the old file survives a failure,
no temp file is left, and errors name the target, not the temp file."""

import os

import pytest

from melodygen.atomic import atomic_write
from melodygen.errors import OutputError


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
