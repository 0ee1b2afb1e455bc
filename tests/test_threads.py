"""Threads that suit the job (`devices.pick_threads`): each command's default, `--threads N`
honoured everywhere, the busy-machine note, and the lines that say why a run fell short. Torch
is set to 3 threads before each command, so a command that leaves the count alone fails; no
test depends on the CPU or on a timing."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from click.testing import CliRunner

from conftest import REPO
from melodygen import devices
from melodygen.cli import main
from melodygen.commands.evaluate import versus_baseline
from melodygen.config import TrainingConfig
from melodygen.training.progress import shortfall, summary

FIGURES = {"nll": 0.9, "perplexity": 2.46, "accuracy": 0.7, "events": 10, "seq_len": 8,
           "source": "x", "skipped": []}


@pytest.fixture(autouse=True)
def three_threads():
    """Torch at 3 threads (neither a job's default nor what the tests ask for); back to the
    suite's one thread afterwards."""
    torch.set_num_threads(3)
    yield
    torch.set_num_threads(1)


@pytest.fixture
def cores(monkeypatch):
    """This machine has 5 usable physical cores, whatever it really has."""
    monkeypatch.setattr(devices, "physical_cores", lambda: 5)


@pytest.fixture
def busy(monkeypatch):
    """A 2-core machine with a load average of 6."""
    monkeypatch.setattr(devices.os, "getloadavg", lambda: (6.0, 5.0, 4.0))
    monkeypatch.setattr(devices.os, "cpu_count", lambda: 2)


def test_each_job_has_its_default_and_a_request_wins(cores):
    assert {job: devices.pick_threads(job) for job in devices.JOB_THREADS} == {
        "sample": 1, "studio": 1, "report": 1, "evaluate": 5, "train": 5, "fit": 5}
    assert devices.pick_threads("sample", 4) == 4 and devices.pick_threads("train", 2) == 2
    assert devices.pick_threads("sample", 0) == 0  # torch's default: set_threads leaves it
    assert devices.use_threads("sample", 0) == 3 and devices.use_threads("sample") == 1


def test_physical_cores_stay_within_the_cpus_this_process_may_use(monkeypatch, tmp_path):
    quota = tmp_path / "cpu.max"
    monkeypatch.setattr(devices, "CPU_QUOTA", quota)  # absent: no quota
    monkeypatch.setattr(devices.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7}, raising=False)
    assert devices.physical_cores() == 3  # torch's count, below the 8 CPUs
    monkeypatch.setattr(devices.os, "sched_getaffinity", lambda pid: {4}, raising=False)
    assert devices.physical_cores() == 1  # taskset -c 4
    monkeypatch.setattr(devices.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    quota.write_text("250000 100000\n")  # docker --cpus 2.5
    assert devices.physical_cores() == 2
    quota.write_text("max 100000\n")
    assert devices.physical_cores() == 3


def test_the_busy_note_says_what_to_do_only_when_it_applies(monkeypatch, busy):
    note = devices.busy_note(2)
    assert note.startswith("note: this machine is busier than its 2 cores (load average 6.0)")
    assert "--threads 1" in note and "\n" not in note
    assert devices.busy_note(1) is None  # one thread has no one to wait for
    monkeypatch.setattr(devices, "resolve_device", lambda name: torch.device("cuda"))
    assert devices.busy_note(2, "auto") is None  # the work is on a GPU
    monkeypatch.undo()
    monkeypatch.setattr(devices.os, "getloadavg", lambda: (1.9, 1.0, 1.0))
    monkeypatch.setattr(devices.os, "cpu_count", lambda: 2)
    assert devices.busy_note(2) is None

    def no_load():
        raise OSError("no load average")

    monkeypatch.setattr(devices.os, "getloadavg", no_load)
    assert devices.busy_note(2) is None


def _recorder(monkeypatch, module, name: str, returns=None, *, in_thread: bool = False) -> list:
    """Replaces `module.name` by a function that records torch's thread count when called (in a
    new thread, as the studio's jobs run, with `in_thread`) and returns `returns`."""
    seen = []

    def record(*args, **kwargs):
        if in_thread:
            worker = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
            worker.start()
            worker.join()
        else:
            seen.append(torch.get_num_threads())
        seen.append(kwargs)
        return returns

    monkeypatch.setattr(module, name, record)
    return seen


def _invoke(args: list[str]):
    """`melodygen ARGS` in this process, from torch at 3 threads (what an earlier command left
    would otherwise hide a command that keeps the count)."""
    torch.set_num_threads(3)
    return CliRunner().invoke(main, args)


def _run_sample(monkeypatch, tmp_path, *options) -> list:
    import melodygen.sampling.files as files

    seen = _recorder(monkeypatch, files, "sample_to_midi", [])
    result = _invoke(["sample", "model.pt", "--out", str(tmp_path), "--no-copy-check", *options])
    assert result.exit_code == 0, result.output
    return seen


def _run_evaluate(monkeypatch, *options) -> tuple[list, object]:
    import melodygen.evaluation as evaluation

    seen = _recorder(monkeypatch, evaluation, "evaluate_checkpoint", FIGURES)
    result = _invoke(["evaluate", "model.pt", "--json", *options])
    assert result.exit_code == 0, result.output
    return seen, result


def _run_report(monkeypatch, tmp_path, *options) -> list:
    import melodygen.report as report

    page = SimpleNamespace(skipped=[], assets=None, reference_mode=None, page=tmp_path / "report.html")
    seen = _recorder(monkeypatch, report, "build_report", page)
    result = _invoke(["report", str(tmp_path), *options])
    assert result.exit_code == 0, result.output
    return seen


def _run_studio(monkeypatch, *options) -> list:
    import melodygen.studio.serve as serve

    monkeypatch.setattr(serve, "studio_models", lambda given: ["folk-melody"])
    seen = _recorder(monkeypatch, serve, "serve", in_thread=True)
    result = _invoke(["studio", "--no-browser", *options])
    assert result.exit_code == 0, result.output
    return seen


def test_sample_draws_with_one_thread_unless_told(monkeypatch, tmp_path):
    assert _run_sample(monkeypatch, tmp_path)[0] == 1
    assert _run_sample(monkeypatch, tmp_path, "--threads", "2")[0] == 2
    assert _run_sample(monkeypatch, tmp_path, "--threads", "0")[0] == 3  # torch's, left alone


def test_the_studio_s_jobs_get_one_thread_in_their_own_thread(monkeypatch):
    assert _run_studio(monkeypatch)[0] == 1
    assert _run_studio(monkeypatch, "--threads", "2")[0] == 2


def test_report_uses_one_thread_unless_told(monkeypatch, tmp_path):
    assert _run_report(monkeypatch, tmp_path)[0] == 1
    assert _run_report(monkeypatch, tmp_path, "--threads", "4")[0] == 4


def test_evaluate_uses_the_physical_cores_unless_told(monkeypatch, cores):
    assert _run_evaluate(monkeypatch)[0][0] == 5
    assert _run_evaluate(monkeypatch, "--threads", "1")[0][0] == 1


def test_evaluate_on_a_busy_machine_says_so_on_stderr(monkeypatch, cores, busy):
    _, result = _run_evaluate(monkeypatch)
    assert "busier than its 2 cores" in result.stderr and "busier" not in result.stdout
    _, result = _run_evaluate(monkeypatch, "--threads", "1")
    assert "busier" not in result.output


def _run_train(monkeypatch, tmp_path, config: Path, *options):
    import melodygen.training as training
    from melodygen.training.loop import TrainResult
    from melodygen.training.rundir import RunPaths

    done = TrainResult(step=42, stop_reason="time budget", best=None, paths=RunPaths(tmp_path / "run"),
                       elapsed_s=270.0, train_s=270.0, tokens=0, params=1)
    seen = []

    def fake_train(config, out_dir, **kwargs):
        seen.append((torch.get_num_threads(), config.training.threads))
        return done

    monkeypatch.setattr(training, "train", fake_train)
    result = _invoke(["train", "--config", str(config), "--out", str(tmp_path / "run"),
                                       "--quiet", *options])
    assert result.exit_code == 0, result.output
    return seen[0], result


def test_train_uses_the_physical_cores_unless_the_config_or_the_option_says(monkeypatch, tmp_path, cores):
    preset, debug = REPO / "configs" / "melody_lstm.toml", REPO / "configs" / "debug.toml"  # threads 0, 1
    assert _run_train(monkeypatch, tmp_path, preset)[0] == (5, 0)
    assert _run_train(monkeypatch, tmp_path, debug)[0] == (1, 1)
    assert _run_train(monkeypatch, tmp_path, debug, "--threads", "2")[0] == (2, 2)
    assert _run_train(monkeypatch, tmp_path, preset, "--threads", "0")[0] == (3, 0)  # torch's


def test_train_on_a_busy_machine_says_so_and_why_it_fell_short(monkeypatch, tmp_path, cores, busy):
    _, result = _run_train(monkeypatch, tmp_path, REPO / "configs" / "melody_lstm.toml")
    assert "busier than its 2 cores" in result.stderr
    assert ("note: stopped at 42 of 2,000 steps: the 4.5-minute budget ran out on a machine busier "
            "than its cores") in result.stdout and "run again with --threads 1" in result.stdout
    _, result = _run_train(monkeypatch, tmp_path, REPO / "configs" / "melody_lstm.toml", "--threads", "1")
    assert "busier" not in result.output
    assert "ran out on a busy or slow machine; free the CPU" in result.stdout


def test_the_summary_says_when_the_budget_cut_a_run_short():
    training = TrainingConfig(max_steps=2000, max_minutes=4.5)
    line = shortfall(42, "time budget", training)
    assert line == ("note: stopped at 42 of 2,000 steps: the 4.5-minute budget ran out on a busy or "
                    "slow machine; free the CPU, or add --set training.max_minutes=0 to run all 2,000 steps")
    assert "run again with --threads 1" in shortfall(42, "time budget", training, crowded=True)
    assert shortfall(1000, "time budget", training) is None  # half its steps is not far short
    assert shortfall(42, "early stopping", training) is None
    assert shortfall(42, "interrupted", training) is None


def test_the_summary_carries_the_shortfall_line(tmp_path):
    from melodygen.training.loop import TrainResult
    from melodygen.training.rundir import RunPaths

    result = TrainResult(step=42, stop_reason="time budget", best=None, paths=RunPaths(tmp_path),
                         elapsed_s=270.0, train_s=270.0, tokens=0, params=1)
    lines = summary(result, TrainingConfig(max_minutes=4.5)).splitlines()
    assert lines[1].startswith("note: stopped at 42 of 2,000 steps")
    assert "note:" not in summary(result)  # without the config, as before


def test_evaluate_says_when_the_model_does_no_better_than_the_baseline(monkeypatch):
    assert versus_baseline(0.83, 1.10, 5) is None
    line = versus_baseline(1.11, 1.10, 5)
    assert line.startswith("note: the model does no better than a counted 5-gram on these events (+0.0100")
    assert "training.max_minutes=0" in line and "\n" not in line
    import melodygen.evaluation as evaluation

    base = {**FIGURES, "nll": 1.0, "order": 5}
    for nll, said in ((1.2, True), (0.8, False)):
        _recorder(monkeypatch, evaluation, "evaluate_checkpoint", {**FIGURES, "nll": nll, "baseline": base})
        result = _invoke(["evaluate", "model.pt", "--baseline", "5"])
        assert result.exit_code == 0, result.output
        assert ("no better than a counted 5-gram" in result.stdout) is said
