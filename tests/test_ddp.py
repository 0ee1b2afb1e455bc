"""Distributed data parallel: `torchrun --nproc_per_node 2 -m melodygen train` on the CPU (Gloo)."""

import csv
import os
import subprocess
import sys

import pytest
import torch

from melodygen.config import save_config
from train_fixtures import make_dataset, tiny_config


def torchrun(*args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "melodygen", "train", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=240)


@pytest.mark.slow
def test_two_cpu_processes_train_resume_and_only_rank0_writes(tmp_path):
    dataset = make_dataset(tmp_path / "data")
    config = tmp_path / "tiny.toml"
    save_config(tiny_config(dataset, max_steps=6, eval_every=3, log_every=3), config)
    run = tmp_path / "run"
    first = torchrun("--config", str(config), "--out", str(run), "--quiet", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.count("Stopped at step 6") == 1  # one summary, from rank 0
    with open(run / "metrics.csv", newline="") as f:
        steps = [row["step"] for row in csv.DictReader(f)]
    assert steps == ["3", "6"]  # one writer: no duplicated rows
    ckpt = torch.load(run / "last.pt", weights_only=True)
    rng = ckpt["rng"]
    assert rng["world_size"] == 2
    assert rng["ranks"][0]["sampler"] != rng["ranks"][1]["sampler"]  # each rank its own windows
    assert ckpt["model"]["kind"] == "lstm" and sorted(p.name for p in run.iterdir()) == [
        "best.pt", "config.toml", "last.pt", "metrics.csv"]
    resumed = torchrun("--out", str(run), "--resume", "--quiet", "--set", "training.max_steps=9",
                       cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 9
