"""The training loop: run folder, metrics, resume == uninterrupted, Ctrl-C, early stopping,
gradient accumulation, the schedule, and bad input (one clear error, nothing overwritten)."""

import csv
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner

from melodygen import checkpoint
from melodygen.cli import main
from melodygen.config import TrainingConfig, save_config
from melodygen.dataset.windows import Batch
from melodygen.devices import resolve_device
from melodygen.encodings import PAD_ID
from melodygen.errors import CheckpointError, ConfigError, DatasetError, OutputError, RunFolderError
from melodygen.models import build_model
from melodygen.training import train
from melodygen.training.interrupt import StopFlag, catch_interrupts
from melodygen.training.optim import lr_at, make_optimizer
from melodygen.training.rundir import COLUMNS
from melodygen.training.steps import Stepper
from train_fixtures import make_dataset, tiny_config


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data") / "motifs")


class StopAtCall(StopFlag):
    """Ctrl-C pressed during step `n` (the loop reads `requested` once per step)."""

    def __init__(self, n: int):
        super().__init__()
        self.calls, self.n = 0, n

    @property
    def requested(self):
        self.calls += 1
        return self.calls >= self.n

    @requested.setter
    def requested(self, value):
        pass


def read_metrics(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_run_folder_metrics_and_checkpoints(dataset, tmp_path):
    result = train(tiny_config(dataset), tmp_path / "run", progress=False)
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} == {"config.toml", "metrics.csv", "best.pt", "last.pt"}
    rows = read_metrics(run)
    assert tuple(rows[0]) == COLUMNS
    assert [int(r["step"]) for r in rows] == [2, 4, 6, 8, 10, 12]
    val = [float(r["val_nll"]) for r in rows if r["val_nll"]]
    assert len(val) == 3 and result.best["nll"] == min(val)
    assert all(math.isclose(float(r["val_ppl"]), math.exp(float(r["val_nll"])), rel_tol=1e-4)
               for r in rows if r["val_nll"])
    best = torch.load(run / "best.pt", weights_only=True)
    last = torch.load(run / "last.pt", weights_only=True)
    assert last["step"] == 12 and best["step"] == result.best["step"]
    assert best["best_val_nll"] == pytest.approx(result.best["nll"])
    assert best["run_config"]["model"]["hidden_size"] == 24
    assert best["run_config"]["data"]["dataset"] == str(dataset.resolve())  # what evaluate reads
    assert result.stop_reason == "max_steps" and result.tokens == 12 * 4 * 16


def test_training_learns(dataset, tmp_path):
    config = tiny_config(dataset, max_steps=80, eval_every=80, log_every=10, lr=2e-2,
                         transpose_range=[0, 0])
    train(config, tmp_path / "run", progress=False)
    losses = [float(r["train_loss"]) for r in read_metrics(tmp_path / "run")]
    assert losses[-1] < losses[0] - 0.5


def test_resume_reaches_the_same_result_as_an_uninterrupted_run(dataset, tmp_path):
    config = tiny_config(dataset, max_steps=12, eval_every=4)
    train(config, tmp_path / "straight", progress=False)
    interrupted = train(config, tmp_path / "split", stop=StopAtCall(7), progress=False)
    assert interrupted.stop_reason == "interrupted" and interrupted.step == 7
    assert torch.load(tmp_path / "split" / "last.pt", weights_only=True)["step"] == 7
    resumed = train(config, tmp_path / "split", resume=True, progress=False)
    assert resumed.step == 12
    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "last.pt", weights_only=True)
    for name, tensor in a["model"]["state_dict"].items():
        assert torch.equal(tensor, b["model"]["state_dict"][name]), name
    assert a["best_val_nll"] == b["best_val_nll"]
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("tokens_per_s", "elapsed_s")} for r in rows]
    assert strip(read_metrics(tmp_path / "straight")) == strip(read_metrics(tmp_path / "split"))


def test_gradient_accumulation_matches_a_bigger_batch(dataset, tmp_path):
    common = dict(max_steps=3, eval_every=3, transpose_range=[0, 0], grad_clip=0.0)
    model_cfg = {"dropout": 0.0}
    big = tiny_config(dataset, batch_size=8, **common).replace(model=model_cfg)
    accum = tiny_config(dataset, batch_size=4, grad_accum=2, **common).replace(model=model_cfg)
    train(big, tmp_path / "big", progress=False)
    train(accum, tmp_path / "accum", progress=False)
    a = torch.load(tmp_path / "big" / "last.pt", weights_only=True)["model"]["state_dict"]
    b = torch.load(tmp_path / "accum" / "last.pt", weights_only=True)["model"]["state_dict"]
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5)


def test_early_stopping_on_patience(dataset, tmp_path):
    # lr so small that the weights cannot change in float32: validation never improves
    config = tiny_config(dataset, lr=1e-30, patience=2, max_steps=100, eval_every=4)
    result = train(config, tmp_path / "run", progress=False)
    assert result.stop_reason == "early stopping" and result.step == 12
    assert result.best["step"] == 4


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_step_loss_is_next_id_cross_entropy_without_pad(smoothing):
    torch.manual_seed(0)
    model = build_model("gru", {"embed_size": 8, "hidden_size": 8, "num_layers": 1, "dropout": 0.0}, 41)
    x = torch.randint(3, 41, (2, 6))
    y = torch.randint(3, 41, (2, 6))
    y[0, :2] = PAD_ID
    with torch.no_grad():
        logp = torch.log_softmax(model(x), -1)[y != PAD_ID]  # (events, V)
    target = y[y != PAD_ID]
    nll = -logp.gather(1, target[:, None]).mean()
    expected = (1 - smoothing) * nll + smoothing * (-logp.mean())
    cfg = TrainingConfig(label_smoothing=smoothing, grad_accum=1)
    optimizer = make_optimizer(model, cfg)
    stepper = Stepper(model, optimizer, iter([Batch(x, y)]), cfg, torch.device("cpu"), PAD_ID)
    before = [p.clone() for p in model.parameters()]
    assert stepper(0).item() == pytest.approx(expected.item(), rel=1e-5)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_schedule_warms_up_then_decays_to_the_floor():
    cfg = TrainingConfig(lr=1.0, warmup_steps=10, max_steps=110, min_lr_ratio=0.1)
    lrs = [lr_at(s, cfg) for s in range(110)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:10]))
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lr_at(110, cfg) == pytest.approx(0.1) and lr_at(500, cfg) == pytest.approx(0.1)


def test_no_weight_decay_on_biases_norms_and_embeddings():
    model = build_model("transformer", {"d_model": 16, "n_layers": 1, "n_heads": 2, "d_ff": 32,
                                        "max_context": 16}, 41)
    optimizer = make_optimizer(model, TrainingConfig(weight_decay=0.1))
    decay, keep = optimizer.param_groups
    assert decay["weight_decay"] == 0.1 and keep["weight_decay"] == 0.0
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    assert embeddings and not embeddings & {id(p) for p in decay["params"]}
    assert all(p.ndim >= 2 for p in decay["params"])
    assert len(decay["params"]) + len(keep["params"]) == len(list(model.parameters()))


def test_an_existing_run_is_never_overwritten(dataset, tmp_path):
    train(tiny_config(dataset, max_steps=2), tmp_path / "run", progress=False)
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    with pytest.raises(ConfigError, match="already holds a run"):
        train(tiny_config(dataset, max_steps=2), tmp_path / "run", progress=False)
    other_model = tiny_config(dataset, max_steps=4).replace(model={"hidden_size": 32})
    with pytest.raises(CheckpointError, match="cannot resume: model"):
        train(other_model, tmp_path / "run", resume=True, progress=False)
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()} == before
    replaced = train(tiny_config(dataset, max_steps=3), tmp_path / "run", overwrite=True, progress=False)
    assert replaced.step == 3 and [r["step"] for r in read_metrics(tmp_path / "run")] == ["2", "3"]
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["step"] == 3


def test_resume_keeps_a_damaged_metrics_file_and_says_so(dataset, tmp_path):
    train(tiny_config(dataset, max_steps=2), tmp_path / "run", progress=False)
    (tmp_path / "run" / "metrics.csv").write_bytes(b"\xe0\x80 not text")
    with pytest.raises(RunFolderError, match="metrics.csv: not a CSV text file .*; move it away to resume"):
        train(tiny_config(dataset, max_steps=4), tmp_path / "run", resume=True, progress=False)
    assert (tmp_path / "run" / "metrics.csv").read_bytes() == b"\xe0\x80 not text"


def test_an_unwritable_dataset_cache_is_named(nottingham_files, tmp_path):
    (tmp_path / "afile").write_text("x")
    config = tiny_config(tmp_path).replace(data={"dataset": "", "sources": [str(nottingham_files[0])],
                                                 "cache_dir": str(tmp_path / "afile" / "cache")})
    with pytest.raises(OutputError, match=f"{tmp_path / 'afile' / 'cache'}/.*: cannot write there"):
        train(config, tmp_path / "run", progress=False)


def test_a_dataset_folder_is_not_a_run_folder(dataset):
    before = sorted(p.name for p in dataset.iterdir())
    with pytest.raises(ConfigError, match="is a prepared dataset; choose another --out"):
        train(tiny_config(dataset, max_steps=2), dataset, progress=False)
    assert sorted(p.name for p in dataset.iterdir()) == before


def test_resume_refuses_another_version(dataset, tmp_path):
    train(tiny_config(dataset, max_steps=2), tmp_path / "run", progress=False)
    last = tmp_path / "run" / "last.pt"
    ckpt = torch.load(last, weights_only=True)
    checkpoint.save({**ckpt, "melodygen_version": "0.0.1"}, last)
    with pytest.raises(CheckpointError, match="written by melodygen 0.0.1"):
        train(tiny_config(dataset, max_steps=4), tmp_path / "run", resume=True, progress=False)
    with pytest.raises(CheckpointError, match="no checkpoint to resume from"):
        train(tiny_config(dataset), tmp_path / "fresh", resume=True, progress=False)


def test_bad_data_and_model(dataset, tmp_path):
    with pytest.raises(DatasetError, match="prepared with encoding 'melody'"):
        train(tiny_config(dataset).replace(encoding={"max_pitch": 90}), tmp_path / "a")
    with pytest.raises(DatasetError, match="no such dataset folder"):
        train(tiny_config(tmp_path / "missing"), tmp_path / "b")
    with pytest.raises(ConfigError, match="unknown model kind 'lstn'"):
        train(tiny_config(dataset).replace(model={"kind": "lstn"}), tmp_path / "c")
    with pytest.raises(ConfigError, match="max_context"):
        train(tiny_config(dataset, seq_len=64).replace(
            model={"kind": "transformer", "max_context": 32}), tmp_path / "d")
    assert not any((tmp_path / d).exists() for d in "abcd")


def test_cli_trains_and_reports(dataset, tmp_path):
    config = tmp_path / "tiny.toml"
    save_config(tiny_config(dataset, max_steps=4), config)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", "--config", str(config), "--out", str(out),
                                       "--threads", "1", "--seed", "3", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "best val NLL" in result.output and f"melodygen sample {out}/best.pt" in result.output
    assert (out / "best.pt").is_file()
    assert "seed = 3" in (out / "config.toml").read_text()
    again = CliRunner().invoke(main, ["train", "--config", str(config), "--out", str(out)])
    assert again.exit_code == 1 and "already holds a run" in again.output
    assert "Traceback" not in again.output
    resumed = CliRunner().invoke(main, ["train", "--out", str(out), "--resume", "--quiet",
                                        "--set", "training.max_steps=6"])
    assert resumed.exit_code == 0, resumed.output
    assert "Stopped at step 6" in resumed.output


def test_cli_bad_override_is_one_line(dataset, tmp_path):
    config = tmp_path / "tiny.toml"
    save_config(tiny_config(dataset), config)
    result = CliRunner().invoke(main, ["train", "--config", str(config), "--out", str(tmp_path / "r"),
                                       "--set", "training.lr=fast", "--set", "model.hidden=3",
                                       "--set", "training.max_minutes=inf"])
    assert result.exit_code == 1
    assert "training.lr='fast' must be float" in result.output
    assert "training.max_minutes=inf must be float (a finite number)" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "r").exists()


def test_time_budget_stops_with_a_final_validation(dataset, tmp_path):
    result = train(tiny_config(dataset, max_minutes=1e-9, max_steps=100), tmp_path / "run",
                   progress=False)
    assert result.stop_reason == "time budget" and result.step == 1
    rows = read_metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == ["1"] and rows[-1]["val_nll"]
    assert torch.load(tmp_path / "run" / "best.pt", weights_only=True)["step"] == 1


@pytest.mark.parametrize("stop", ["max_steps", "time budget", "interrupted"])
def test_the_run_summary_and_metrics_csv_end_on_one_tokens_per_second(dataset, tmp_path, stop):
    # The report's tokens/s card is metrics.csv's last figure; the summary line is TrainResult's.
    config = tiny_config(dataset, max_steps=5, log_every=2, max_minutes=1e-9 if stop == "time budget" else 0)
    result = train(config, tmp_path / "run", progress=False,
                   **({"stop": StopAtCall(3)} if stop == "interrupted" else {}))
    assert result.stop_reason == stop and result.step in (1, 3, 5)  # none of them a logging step
    last = [row for row in read_metrics(tmp_path / "run") if row["tokens_per_s"]][-1]
    assert float(last["tokens_per_s"]) == pytest.approx(result.tokens_per_s, rel=1e-5)
    # An interrupted run's figures are those of its last logged step (resume logs the rest).
    logged = 2 if stop == "interrupted" else result.step
    assert last["step"] == str(logged) and last["train_loss"] and result.tokens == logged * 4 * 16


def test_a_run_the_budget_cut_far_short_says_so_in_its_summary(dataset, tmp_path):
    config = tmp_path / "tiny.toml"
    save_config(tiny_config(dataset, max_minutes=1e-9, max_steps=100), config)
    result = CliRunner().invoke(main, ["train", "--config", str(config), "--out", str(tmp_path / "run"),
                                       "--threads", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "note: stopped at 1 of 100 steps: the 1e-09-minute budget ran out" in result.stdout
    assert "--set training.max_minutes=0 to run all 100 steps" in result.stdout


def test_time_budget_running_out_at_the_last_step_validates_once(dataset, tmp_path):
    # max_steps already validated step 1; the time budget must not validate it again (a second
    # metrics row for step 1, and a 'bad' evaluation counted towards early stopping).
    result = train(tiny_config(dataset, max_minutes=1e-9, max_steps=1, eval_every=4), tmp_path / "run",
                   progress=False)
    assert result.step == 1
    rows = read_metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == ["1"] and rows[0]["val_nll"]
    scheduler = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["scheduler"]
    assert scheduler["bad_evals"] == 0


def test_time_budget_advances_the_decay():
    cfg = TrainingConfig(lr=1.0, warmup_steps=10, max_steps=110, min_lr_ratio=0.1, max_minutes=1.0)
    assert lr_at(20, cfg, time_used=0.0) == lr_at(20, cfg)
    assert lr_at(20, cfg, time_used=1.0) == pytest.approx(0.1)
    assert lr_at(20, cfg, time_used=0.5) == pytest.approx(0.55)
    assert lr_at(100, cfg, time_used=0.5) == lr_at(100, cfg)  # steps ahead of the clock
    assert lr_at(5, cfg, time_used=0.9) == lr_at(5, cfg)  # warm-up counts steps only


def test_ctrl_c_before_the_loop_stops_at_once_and_during_it_after_the_step(dataset, tmp_path):
    with catch_interrupts() as flag:  # preparing data, building the model: nothing to save
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        flag.armed = True
        os.kill(os.getpid(), signal.SIGINT)
        assert flag.requested  # no exception: the loop stops after its step
        with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C does not wait
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
    stop = StopAtCall(2)
    assert train(tiny_config(dataset), tmp_path / "run", stop=stop, progress=False).step == 2
    assert stop.armed


@pytest.mark.slow
def test_ctrl_c_writes_last_pt_and_exits_130(dataset, tmp_path):
    config = tmp_path / "long.toml"
    save_config(tiny_config(dataset, max_steps=10**6, eval_every=10**6, log_every=5), config)
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "melodygen", "train", "--config", str(config),
                             "--out", str(out), "--quiet"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (out / "metrics.csv").is_file() or len(read_metrics(out)) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stdout and f"melodygen train --out {out} --resume" in stdout
    assert "Traceback" not in stderr
    step = torch.load(out / "last.pt", weights_only=True)["step"]
    assert step >= 10 and int(read_metrics(out)[-1]["step"]) <= step


def test_midi_sources_are_prepared_once_into_the_cache(nottingham_files, tmp_path):
    config = tiny_config(tmp_path).replace(
        data={"dataset": "", "sources": [str(f) for f in nottingham_files], "val_fraction": 0.4,
              "cache_dir": str(tmp_path / "cache")},
        training={"transpose_range": [0, 0]})
    train(config, tmp_path / "run", progress=False)
    (cached,) = (tmp_path / "cache").iterdir()
    assert cached.name.startswith(f"{nottingham_files[0].stem}-melody-")
    manifest = (cached / "manifest.json").stat().st_mtime_ns
    train(config, tmp_path / "run", overwrite=True, progress=False)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [cached.name]
    assert (cached / "manifest.json").stat().st_mtime_ns == manifest  # reused, not rebuilt
    saved = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["run_config"]["data"]
    assert saved["dataset"] == str(cached.resolve())


def test_device_resolution():
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match="expected auto, cpu"):
        resolve_device("tpu")


def test_a_diverging_run_stops_with_one_line_and_keeps_no_nan_checkpoint(dataset, tmp_path):
    config = tmp_path / "tiny.toml"
    save_config(tiny_config(dataset, lr=1e30, warmup_steps=0, grad_clip=0.0), config)
    run = tmp_path / "r"
    result = CliRunner().invoke(main, ["train", "--config", str(config), "--out", str(run), "--quiet"])
    assert result.exit_code == 1, result.output
    assert "training diverged" in result.output and "lower training.lr" in result.output
    for name in ("best.pt", "last.pt"):
        if (run / name).exists():
            weights = checkpoint.load(run / name)["model"]["state_dict"]
            assert all(torch.isfinite(t).all() for t in weights.values())


@pytest.mark.slow
def test_compiled_training_writes_plain_checkpoints_that_sample(dataset, tmp_path):
    from melodygen.config import config_from_dict
    from melodygen.sampling.files import sample_to_midi
    from melodygen.sampling.request import GenerationRequest

    raw = tiny_config(dataset, max_steps=4, eval_every=4, compile=True).to_dict()
    raw["model"] = {"kind": "transformer", "d_model": 16, "n_layers": 1, "n_heads": 2, "d_ff": 32,
                    "max_context": 32}
    result = train(config_from_dict(raw, "<test>"), tmp_path / "run", progress=False)
    assert result.step == 4
    keys = checkpoint.load(tmp_path / "run" / "best.pt")["model"]["state_dict"]
    assert keys and not any(k.startswith("_orig_mod") for k in keys)  # no torch.compile prefix
    written = sample_to_midi(tmp_path / "run" / "best.pt", tmp_path / "s", GenerationRequest(events=8))
    assert written[0].path.exists()


def test_a_cnn_trains_evaluates_and_samples(dataset, tmp_path):
    """The convolutional kind end to end: training (its loss falls), `evaluate` on its dataset,
    sampling and beam search from its checkpoint."""
    from melodygen.config import config_from_dict
    from melodygen.evaluation import evaluate_checkpoint
    from melodygen.sampling.files import sample_to_midi
    from melodygen.sampling.request import GenerationRequest

    raw = tiny_config(dataset, max_steps=12).to_dict()
    raw["model"] = {"kind": "cnn", "embed_size": 16, "channels": 16, "num_layers": 3, "kernel_size": 2,
                    "dilation_cycle": 3, "tie_weights": True}
    train(config_from_dict(raw, "<test>"), tmp_path / "run", progress=False)
    rows = read_metrics(tmp_path / "run")
    losses = [float(r["train_loss"]) for r in rows if r["train_loss"]]
    assert losses[-1] < losses[0]
    figures = evaluate_checkpoint(tmp_path / "run" / "best.pt", device="cpu")
    assert math.isfinite(figures["nll"]) and figures["events"] > 0
    for request in (GenerationRequest(events=16, n=2, seed=1), GenerationRequest(events=16, beam=2, seed=1)):
        written = sample_to_midi(tmp_path / "run" / "best.pt", tmp_path / f"s{request.beam}", request, device="cpu")
        assert all(piece.path.exists() for piece in written)
