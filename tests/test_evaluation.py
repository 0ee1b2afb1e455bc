"""Tests of melodygen.evaluation: the validation figures and the n-gram baseline."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from melodygen import devices
from melodygen.checkpoint import load_for_inference, make_checkpoint, save
from melodygen.cli import main

from melodygen.dataset.shards import TokenDataset, write_split
from melodygen.encodings import get_encoding
from melodygen.encodings.vocab import BOS_ID, EOS_ID, PAD_ID
from melodygen.errors import ConfigError
from melodygen.baseline import NgramBaseline, evaluate_baseline
from melodygen.dataset.windows import Batch
from melodygen.evaluation import evaluate_checkpoint
from melodygen.metrics import evaluate_nll, score_ids
from melodygen.midi_io import read_score
from melodygen.models import build_model, settings_to_dict
from midi_factory import drums_only_file, text_file


class EmbeddingModel(torch.nn.Module):
    """ids (B, T) -> logits (B, T, V) through one random embedding."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.table = torch.nn.Embedding(vocab_size, vocab_size)

    def forward(self, ids):
        return self.table(ids)


def test_evaluate_nll_equals_direct_cross_entropy():
    torch.manual_seed(0)
    model = EmbeddingModel(12)
    xs = [torch.randint(0, 12, (3, 9)) for _ in range(3)]
    ys = [torch.randint(0, 12, (3, 9)) for _ in range(3)]
    ys[1][0, :4] = PAD_ID  # padded targets are not scored
    got = evaluate_nll(model, [Batch(x, y) for x, y in zip(xs, ys)])
    logits, targets = torch.cat([model(x) for x in xs]).detach(), torch.cat(ys)
    want = F.cross_entropy(logits.reshape(-1, 12), targets.reshape(-1), ignore_index=PAD_ID).item()
    keep = targets != PAD_ID
    assert got["events"] == int(keep.sum())
    assert got["nll"] == pytest.approx(want, rel=1e-6)
    assert got["perplexity"] == pytest.approx(math.exp(want), rel=1e-6)
    assert got["accuracy"] == pytest.approx((logits.argmax(-1) == targets)[keep].float().mean().item())


def test_evaluate_nll_sums_in_float32_where_the_device_has_no_float64(monkeypatch):
    monkeypatch.setattr(devices, "accumulator_dtype", lambda device: torch.float32)  # as on MPS
    test_evaluate_nll_equals_direct_cross_entropy()


def test_evaluate_nll_restores_training_mode_and_handles_no_windows():
    model = EmbeddingModel(5).train()
    assert math.isnan(evaluate_nll(model, [])["nll"])
    assert model.training


def test_evaluate_nll_restores_training_mode_when_scoring_fails():
    model = EmbeddingModel(5).train()
    with pytest.raises(IndexError):
        evaluate_nll(model, [Batch(torch.tensor([[1, 9]]), torch.tensor([[2, 3]]))])  # 9: not an id
    assert model.training


def test_baseline_on_midi_files_is_refused_before_any_work(tmp_path):
    # it was refused only after loading the checkpoint and scoring every MIDI file
    with pytest.raises(ConfigError, match="--baseline needs a prepared dataset"):
        evaluate_checkpoint(tmp_path / "not_loaded.pt", sources=[tmp_path], baseline_order=2)


def test_score_ids_covers_every_target_once_with_a_real_model():
    torch.manual_seed(1)
    model = build_model("lstm", {"embed_size": 8, "hidden_size": 16, "num_layers": 1}, 41)
    ids = np.random.default_rng(0).integers(3, 41, 103)
    got = score_ids(model, ids, seq_len=10, batch_size=4)
    model.eval()
    with torch.no_grad():
        total = sum(F.cross_entropy(model(x)[0], y[0], reduction="sum").item()
                    for x, y in ((torch.tensor(ids[i:i + 11][None, :-1]), torch.tensor(ids[i + 1:i + 11][None]))
                                 for i in range(0, 102, 10)))
    assert got["events"] == 102
    assert got["nll"] == pytest.approx(total / 102, rel=1e-5)


# Toy corpus over 6 ids: BOS 3 4 3 4 5 EOS. Targets 3 4 3 4 5 2 (N=6, 4 types).
TOY = np.array([BOS_ID, 3, 4, 3, 4, 5, EOS_ID])


def unigram(w: int) -> float:
    counts = {3: 2, 4: 2, 5: 1, 2: 1}
    return (counts.get(w, 0) + 4 / 6) / (6 + 4)


def test_unigram_is_witten_bell_over_uniform():
    p = NgramBaseline(1, 6).fit(TOY).probs(np.array([[3]]))[0, 0]
    assert np.allclose(p, [unigram(w) for w in range(6)])


def test_bigram_known_counts_and_fallback():
    model = NgramBaseline(2, 6).fit(TOY)
    p = model.probs(np.array([[3, 4, 0]]))[0]
    # After 3: seen twice, always followed by 4 (T=1).
    assert p[0, 4] == pytest.approx((2 + unigram(4)) / 3)
    assert p[0, 5] == pytest.approx(unigram(5) / 3)
    # After 4: seen twice, followed by 3 and 5 (T=2).
    assert p[1, 3] == pytest.approx((1 + 2 * unigram(3)) / 4)
    # Id 0 never appears as a context: back to the unigram.
    assert np.allclose(p[2], [unigram(w) for w in range(6)])
    assert np.allclose(p.sum(-1), 1.0)


def test_trigram_uses_shorter_context_at_window_start():
    model = NgramBaseline(3, 6).fit(TOY)
    bigram = NgramBaseline(2, 6).fit(TOY)
    x = np.array([[3, 4, 3]])
    p = model.probs(x)[0]
    assert np.allclose(p[0], bigram.probs(x)[0, 0])  # one id of context only
    # (3, 4) seen once followed by 3, once by 5: T=2, c=2.
    assert p[1, 5] == pytest.approx((1 + 2 * bigram.probs(x)[0, 1, 5]) / 4)
    assert np.allclose(p.sum(-1), 1.0)


def test_baseline_scores_like_a_model():
    model = NgramBaseline(2, 6).fit(TOY)
    got = evaluate_nll(model, [Batch(torch.tensor([[3, 4]]), torch.tensor([[4, 5]]))])
    want = -(math.log((2 + unigram(4)) / 3) + math.log((1 + 2 * unigram(5)) / 4)) / 2
    assert got["nll"] == pytest.approx(want)
    assert got["accuracy"] == 0.5  # after 3 the argmax is 4; after 4 it is 3, not 5


@pytest.mark.parametrize("order", [0, 7])
def test_order_out_of_range(order):
    with pytest.raises(ConfigError, match="order"):
        NgramBaseline(order, 6)


def test_evaluate_baseline_on_a_dataset(tmp_path):
    encoding = get_encoding("melody")
    rng = np.random.default_rng(0)
    tune = rng.integers(3, 41, 30)
    write_split(tmp_path, "train", [tune] * 20, BOS_ID, EOS_ID)
    write_split(tmp_path, "valid", [tune, tune[::-1]], BOS_ID, EOS_ID)
    finish_dataset(tmp_path, encoding)
    low = evaluate_baseline(tmp_path, order=1, seq_len=16)
    high = evaluate_baseline(tmp_path, order=4, seq_len=16)
    assert low["events"] == high["events"] == TokenDataset(tmp_path, "valid").num_tokens - 1
    assert high["nll"] < low["nll"]
    assert high["accuracy"] > 0.5  # the first tune is memorised


def tiny_dataset(directory: Path, encoding) -> Path:
    """A prepared-dataset folder (shards, encoding.json, a minimal manifest) of random pieces."""
    directory.mkdir()
    rng = np.random.default_rng(3)
    low, size = EOS_ID + 1, encoding.vocab.size
    write_split(directory, "train", [rng.integers(low, size, 40) for _ in range(6)], BOS_ID, EOS_ID)
    write_split(directory, "valid", [rng.integers(low, size, n) for n in (25, 31)], BOS_ID, EOS_ID)
    return finish_dataset(directory, encoding)


def finish_dataset(directory: Path, encoding) -> Path:
    """Adds encoding.json and the manifest fields readers check beside written shards."""
    encoding.save_json(directory / "encoding.json")
    (directory / "manifest.json").write_text(json.dumps({"format": "melodygen-dataset"}))
    return directory


def tiny_checkpoint(path: Path, encoding, seq_len: int = 16) -> Path:
    torch.manual_seed(2)
    model = build_model("gru", {"embed_size": 8, "hidden_size": 16, "num_layers": 1}, encoding.vocab.size)
    return save(make_checkpoint(model_kind="gru", model_settings=settings_to_dict(model.settings), model=model,
                                encoding=encoding, run_config={"training": {"seq_len": seq_len}}, step=3,
                                best_val_nll=None), path)


def test_evaluate_command_equals_direct_cross_entropy(tmp_path):
    encoding = get_encoding("melody")
    data = tiny_dataset(tmp_path / "data", encoding)
    ckpt = tiny_checkpoint(tmp_path / "m.pt", encoding, seq_len=16)
    result = CliRunner().invoke(main, ["evaluate", str(ckpt), "--data", str(data), "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)
    model, _, _ = load_for_inference(ckpt)
    ids = torch.from_numpy(TokenDataset(data, "valid").ids.astype(np.int64))
    chunks = [ids[i:i + 17] for i in range(0, len(ids) - 1, 16)]  # windows of 16 targets
    with torch.no_grad():
        losses = [F.cross_entropy(model(c[None, :-1])[0], c[1:], reduction="sum") for c in chunks]
    assert got["events"] == len(ids) - 1 and got["seq_len"] == 16
    assert got["nll"] == pytest.approx(sum(losses).item() / (len(ids) - 1), rel=1e-5)
    text = CliRunner().invoke(main, ["evaluate", str(ckpt), "--data", str(data)]).output
    assert f"NLL {got['nll']:.4f} nats/event" in text


def test_evaluate_on_midi_files_skips_unusable_ones(tmp_path, nottingham_files):
    encoding = get_encoding("melody")
    ckpt = tiny_checkpoint(tmp_path / "m.pt", encoding)
    result = evaluate_checkpoint(ckpt, sources=[*map(str, nottingham_files[:2]), str(text_file(tmp_path))])
    pieces = [encoding.encode(read_score(f)) for f in nottingham_files[:2]]
    assert result["events"] == sum(len(p) + 2 for p in pieces) - 1
    assert len(result["skipped"]) == 1 and result["skipped"][0].count("readme.mid") == 1


def test_evaluate_on_midi_files_names_a_file_without_music_once(tmp_path, nottingham_files):
    ckpt = tiny_checkpoint(tmp_path / "m.pt", get_encoding("melody"))
    drums = drums_only_file(tmp_path)
    result = evaluate_checkpoint(ckpt, sources=[str(nottingham_files[0]), str(drums)])
    assert len(result["skipped"]) == 1
    assert result["skipped"][0].startswith(f"{drums}: ") and result["skipped"][0].count("drums_only.mid") == 1


def test_evaluate_errors_are_one_line(tmp_path):
    encoding = get_encoding("performance")
    data = tiny_dataset(tmp_path / "data", encoding)
    ckpt = tiny_checkpoint(tmp_path / "m.pt", get_encoding("melody"))
    for args in (["--data", str(data)], ["--data", str(tmp_path / "nowhere")]):
        result = CliRunner().invoke(main, ["evaluate", str(ckpt), *args])
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1
    assert "prepared with encoding 'performance'" in CliRunner().invoke(
        main, ["evaluate", str(ckpt), "--data", str(data)]).output
    result = CliRunner().invoke(main, ["evaluate", str(ckpt)])
    assert result.exit_code == 1 and "records no dataset" in result.output
    result = CliRunner().invoke(main, ["evaluate", str(ckpt), "--data", str(data), "x.mid"])
    assert result.exit_code == 2 and "not both" in result.output


def test_evaluate_defaults_to_the_training_dataset_and_compares_a_baseline(tmp_path):
    encoding = get_encoding("melody")
    data = tiny_dataset(tmp_path / "data", encoding)
    ckpt = tiny_checkpoint(tmp_path / "m.pt", encoding, seq_len=16)
    stored = torch.load(ckpt, weights_only=True)
    stored["run_config"]["data"] = {"dataset": str(data)}
    save(stored, ckpt)
    result = evaluate_checkpoint(ckpt, baseline_order=2)
    assert result == evaluate_checkpoint(ckpt, data_dir=data, baseline_order=2)
    assert result["baseline"] == evaluate_baseline(data, order=2, seq_len=16)
    assert result["baseline"]["events"] == result["events"]
    text = CliRunner().invoke(main, ["evaluate", str(ckpt), "--baseline", "2"]).output
    assert "2-gram" in text and "model - 2-gram" in text
    data.rename(tmp_path / "moved")
    result = CliRunner().invoke(main, ["evaluate", str(ckpt)])
    assert result.exit_code == 1
    assert result.output == (f"Error: {data}: the dataset {ckpt} was trained on is gone; "
                             "give --data DIR or MIDI files to score\n")


def test_baseline_command_orders(tmp_path):
    data = tiny_dataset(tmp_path / "data", get_encoding("melody"))
    result = CliRunner().invoke(main, ["baseline", str(data), "--order", "1", "--order", "2", "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["order"] for r in rows] == [1, 2]
    assert rows[0]["events"] == TokenDataset(data, "valid").num_tokens - 1
    assert rows[0] == evaluate_baseline(data, order=1)
    result = CliRunner().invoke(main, ["baseline", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and "nowhere: no such dataset folder" in result.output


@pytest.mark.parametrize("name, text, message", [
    ("manifest.json", "[]", "manifest.json: unreadable manifest (not a JSON object)"),
    ("encoding.json", "[1]", "encoding.json: unreadable encoding file (not a JSON object)"),
    ("encoding.json", '{"name": 5, "settings": 3}', ": prepared with encoding 5 (settings 3), but 'melody'"),
])
def test_damaged_dataset_json_is_one_line(tmp_path, name, text, message):
    encoding = get_encoding("melody")
    data = tiny_dataset(tmp_path / "data", encoding)
    (data / name).write_text(text)
    result = CliRunner().invoke(main, ["evaluate", str(tiny_checkpoint(tmp_path / "m.pt", encoding)),
                                       "--data", str(data)])
    assert result.exit_code == 1 and len(result.output.splitlines()) == 1
    assert result.output.startswith(f"Error: {data}") and message in result.output


def test_an_empty_split_is_an_error_not_nan(tmp_path):
    encoding = get_encoding("melody")
    data = tiny_dataset(tmp_path / "data", encoding)
    write_split(data, "valid", [], BOS_ID, EOS_ID)
    ckpt = tiny_checkpoint(tmp_path / "m.pt", encoding)
    for args in (["baseline", data], ["evaluate", ckpt, "--data", data]):
        result = CliRunner().invoke(main, [str(a) for a in args])
        assert result.exit_code == 1, result.output
        assert result.output == f"Error: {data}: the valid split is empty, nothing to score (prepare more " \
                                "files or a larger --val-fraction, or score --split train)\n"
    assert CliRunner().invoke(main, ["baseline", str(data), "--split", "train"]).exit_code == 0


def damaged_checkpoint(path: Path, encoding, value: float) -> Path:
    """`tiny_checkpoint` with its output layer's weights filled with `value`."""
    stored = torch.load(tiny_checkpoint(path, encoding), weights_only=True)
    stored["model"]["state_dict"]["head.weight"].fill_(value)
    return save(stored, path)


def test_evaluate_refuses_nan_weights_as_sample_does(tmp_path):
    # It printed "NLL nan" and exited 0, while sample refused the same file.
    encoding = get_encoding("melody")
    data = tiny_dataset(tmp_path / "data", encoding)
    ckpt = damaged_checkpoint(tmp_path / "nan.pt", encoding, math.nan)
    line = f"Error: {ckpt}: damaged weights: NaN or infinite values in head.weight\n"
    evaluated = CliRunner().invoke(main, ["evaluate", str(ckpt), "--data", str(data)])
    assert (evaluated.exit_code, evaluated.output) == (1, line)
    sampled = CliRunner().invoke(main, ["sample", str(ckpt), "--out", str(tmp_path / "s"), "--device", "cpu"])
    assert (sampled.exit_code, sampled.output) == (1, line)


def test_evaluate_refuses_finite_weights_whose_logits_overflow(tmp_path):
    encoding = get_encoding("melody")
    data = tiny_dataset(tmp_path / "data", encoding)
    ckpt = damaged_checkpoint(tmp_path / "huge.pt", encoding, 3e38)  # finite, but their products are not
    result = CliRunner().invoke(main, ["evaluate", str(ckpt), "--data", str(data)])
    assert result.exit_code == 1
    assert result.output == f"Error: {ckpt}: the model gives NaN or infinite logits: its weights are damaged " \
                            "or its training diverged\n"


def test_folders_that_are_not_datasets_are_named(tmp_path, nottingham_files):
    midi_folder = tmp_path / "midi"
    midi_folder.mkdir()
    (midi_folder / "a.mid").write_bytes(nottingham_files[0].read_bytes())
    result = CliRunner().invoke(main, ["baseline", str(midi_folder)])
    assert result.exit_code == 1
    assert f"{midi_folder}: not a prepared dataset (no manifest.json)" in result.output
    data = tiny_dataset(tmp_path / "data", get_encoding("melody"))
    (data / "train.idx.npy").write_text("hi\n")
    result = CliRunner().invoke(main, ["baseline", str(data)])
    assert result.exit_code == 1 and len(result.output.splitlines()) == 1
    assert "train.idx.npy: unreadable offsets index (damaged or not a .npy file)" in result.output
    assert "pickle" not in result.output


@pytest.mark.slow
def test_evaluate_reproduces_the_trainers_validation_nll(tmp_path):
    """train (full validation) -> evaluate on the same dataset: the same figure, to float precision."""
    from train_fixtures import make_dataset, tiny_config

    from melodygen.config import save_config

    data = make_dataset(tmp_path / "data")
    save_config(tiny_config(data, eval_max_batches=0), tmp_path / "tiny.toml")
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", "--config", str(tmp_path / "tiny.toml"), "--out", str(run),
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    best = torch.load(run / "best.pt", weights_only=True)["best_val_nll"]
    result = CliRunner().invoke(main, ["evaluate", str(run / "best.pt"), "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["nll"] == pytest.approx(best, rel=1e-6)
