"""The command line's contract: usage errors exit 2 with click's message, `MelodygenError`s one
line and exit 1, Ctrl-C one line ("interrupted") and exit 130; never a traceback."""

import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from conftest import default_sigint
from melodygen import stats
from melodygen.cli import main
from melodygen.errors import MidiReadError


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_usage_errors_exit_2_with_usage():
    result = run("sample", "--temperature", "0", "x.pt", "--out", "o")
    assert result.exit_code == 2 and result.output.startswith("Usage: ")
    assert "Invalid value for '--temperature'" in result.output


def test_melodygen_errors_are_one_line_exit_1(tmp_path):
    (tmp_path / "x.pt").write_text("not a checkpoint")
    result = run("sample", tmp_path / "x.pt", "--out", tmp_path / "o")
    assert result.exit_code == 1 and result.exception is not None
    assert result.output.strip().splitlines() == [f"Error: {tmp_path / 'x.pt'}: not a readable checkpoint "
                                                  "(not a PyTorch checkpoint file)"]


@pytest.mark.parametrize("exception, code, message", [
    (KeyboardInterrupt, 130, "interrupted"),
    (MidiReadError("a.mid: truncated"), 1, "Error: a.mid: truncated"),
    (OSError(28, "No space left on device", "out/x.bin"), 1, "Error: out/x.bin: No space left on device"),
    (MemoryError("Unable to allocate 24.6 GiB for an array with shape (100000000, 33)"), 1,
     "Error: out of memory (tried to allocate 24.6 GiB); ask for less: a smaller batch, sequence length or "
     "model, or fewer outputs"),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                  "you tried to allocate 51200000000 bytes. Error code 12"), 1,
     "Error: out of memory (tried to allocate 51200000000 bytes); ask for less: a smaller batch, sequence "
     "length or model, or fewer outputs"),
])
def test_every_command_reports_in_one_line(tmp_path, monkeypatch, exception, code, message):
    def raises(*args, **kwargs):
        raise exception

    monkeypatch.setattr(stats, "describe_set", raises)
    (tmp_path / "a.mid").write_bytes(b"")
    result = run("stats", tmp_path / "a.mid")
    assert result.exit_code == code
    assert result.output.strip() == message and "Aborted" not in result.output


def test_other_runtime_errors_are_bugs_and_keep_their_traceback(tmp_path, monkeypatch):
    def raises(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(stats, "describe_set", raises)
    (tmp_path / "a.mid").write_bytes(b"")
    result = run("stats", tmp_path / "a.mid")
    assert isinstance(result.exception, RuntimeError) and str(result.exception) == "a bug"


@pytest.mark.parametrize("suite", ["plain", "started with SIGINT ignored"])
def test_a_real_sigint_exits_130_in_one_line(tmp_path, request, suite):
    if suite != "plain":
        request.getfixturevalue("sigint_ignored")
    (tmp_path / "a.mid").write_bytes(b"")
    script = textwrap.dedent("""
        import os, signal, sys, time
        from melodygen import stats
        from melodygen.cli import main

        def pressed_ctrl_c(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(10)

        stats.describe_set = pressed_ctrl_c
        main(["stats", sys.argv[1]], prog_name="melodygen")
    """)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "a.mid")], capture_output=True,
                          text=True, timeout=60, preexec_fn=default_sigint)
    assert done.returncode == 130 and done.stderr == "interrupted\n" and done.stdout == ""


def test_help_texts_print_no_escaped_percent_signs():
    from melodygen.cli import main as group

    for name, command in group.commands.items():
        help_text = CliRunner().invoke(main, [name, "--help"]).output
        assert "%%" not in help_text, name
