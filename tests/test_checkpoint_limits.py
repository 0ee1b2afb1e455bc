"""A checkpoint's model settings are checked against its weights before the model is built: a
small file whose settings ask for a huge model is refused without allocating it."""

import pytest
import torch
from click.testing import CliRunner

from melodygen import checkpoint, models
from melodygen.cli import main
from melodygen.encodings import get_encoding
from melodygen.errors import CheckpointError
from melodygen.models import MODELS, build_model

SMALL = {"rnn": {"embed_size": 8, "hidden_size": 8, "num_layers": 2},
         "attention_lstm": {"embed_size": 8, "hidden_size": 8, "num_layers": 2, "attention_length": 4},
         "transformer": {"d_model": 8, "n_layers": 2, "n_heads": 2, "d_ff": 16, "max_context": 16,
                         "positions": "relative"},
         "cnn": {"embed_size": 8, "channels": 8, "num_layers": 3, "kernel_size": 3, "dilation_cycle": 2,
                 "skip": True},
         "seq2seq": {"d_model": 8, "encoder_layers": 1, "n_layers": 2, "n_heads": 2, "d_ff": 16, "max_context": 16,
                     "bar_id": 5, "max_bars": 8},
         "seq2seq_lstm": {"embed_size": 8, "hidden_size": 8, "n_layers": 2, "bar_id": 5, "max_bars": 8},
         "masked": {"d_model": 8, "n_layers": 2, "n_heads": 2, "d_ff": 16, "max_context": 16}}


def write(path, kind="lstm", settings=None, **changes):
    """A checkpoint of a small `kind` model; `changes` replace its stored model settings."""
    encoding = get_encoding("melody")
    settings = settings or SMALL.get(kind, SMALL["rnn"])
    model = build_model(kind, settings, encoding.vocab.size)
    ckpt = checkpoint.make_checkpoint(model_kind=kind, model_settings=settings, model=model,
                                      encoding=encoding, run_config={}, step=0, best_val_nll=None)
    ckpt["model"]["settings"] = {**settings, **changes}
    return checkpoint.save(ckpt, path)


@pytest.fixture
def builds(monkeypatch):
    """The default device of each `build_model` call while loading: "meta" builds allocate nothing."""
    devices = []

    def recording(*args, **kwargs):
        devices.append(torch.get_default_device().type)
        return build_model(*args, **kwargs)

    monkeypatch.setattr(models, "build_model", recording)
    return devices


@pytest.mark.parametrize("kind", list(MODELS))
def test_every_kind_loads_with_the_same_weights(tmp_path, kind):
    path = write(tmp_path / "m.pt", kind)
    model, _, ckpt = checkpoint.load_for_inference(path)
    for key, tensor in ckpt["model"]["state_dict"].items():
        assert torch.equal(model.state_dict()[key], tensor), key


def test_settings_larger_than_the_weights_are_refused_before_the_model_is_built(tmp_path, builds):
    # A 4 MB LSTM whose settings said hidden_size = 12000 was built first (7 GB, 20 s) and refused after.
    path = write(tmp_path / "big.pt", hidden_size=1200)  # the build is what the test watches, not its size
    with pytest.raises(CheckpointError) as info:
        checkpoint.load_for_inference(path)
    assert builds == ["meta"]
    assert str(info.value) == (f"{path}: weights do not fit a 'lstm' model with these settings (rnn.weight_ih_l0 "
                               "(32, 8) != (4800, 8); rnn.weight_hh_l0 (32, 8) != (4800, 1200); "
                               "rnn.bias_ih_l0 (32,) != (4800,); ...)")


def test_more_layers_than_tensors_is_refused_without_building_even_on_meta(tmp_path, builds):
    # building takes time per layer even on `meta` (an LSTM of 20,000 layers: 50 s)
    path = write(tmp_path / "deep.pt", num_layers=3000)
    with pytest.raises(CheckpointError) as info:
        checkpoint.load_for_inference(path)
    assert builds == []
    assert str(info.value).endswith("(3000 layers in 11 tensors)")


@pytest.mark.parametrize("edit, message", [
    (lambda weights: weights.pop("head.bias"), "missing head.bias"),
    (lambda weights: weights.update(extra=torch.zeros(2)), "unexpected extra"),
    (lambda weights: weights.update({"head.bias": [0.0] * 5}), r"head.bias list != \("),
])
def test_missing_unexpected_and_foreign_weights_are_named(tmp_path, builds, edit, message):
    path = write(tmp_path / "w.pt")
    ckpt = checkpoint.load(path)
    edit(ckpt["model"]["state_dict"])
    checkpoint.save(ckpt, path)
    with pytest.raises(CheckpointError, match=f"w.pt: weights do not fit .*{message}"):
        checkpoint.load_for_inference(path)
    assert builds == ["meta"]


def test_the_command_line_refuses_such_a_checkpoint_in_one_line(tmp_path):
    path = write(tmp_path / "big.pt", "transformer", d_model=64, d_ff=256)
    result = CliRunner().invoke(main, ["sample", str(path), "--out", str(tmp_path / "s"), "--device", "cpu"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith(f"Error: {path}: weights do not fit a 'transformer' model")
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "s").exists()


def test_a_rope_context_no_weight_can_check_is_refused_before_anything_is_built(tmp_path, builds):
    # rope has no position weights; max_context = 10**7 sized its KV cache and table (9 GB, 33 s)
    rope = {**SMALL["transformer"], "positions": "rope"}
    path = write(tmp_path / "rope.pt", "transformer", rope, max_context=10**7)
    with pytest.raises(CheckpointError, match=r"max_context must be in 2\.\.65,536"):
        checkpoint.load_for_inference(path)
    assert builds == []
