"""Checkpoints: the documented layout, weights_only loading, atomic saves, clear errors."""

import pytest
import torch

from melodygen import __version__, checkpoint, pretrained
from melodygen.encodings import MelodyEncoding, get_encoding
from melodygen.errors import CheckpointError
from melodygen.models import build_model


@pytest.fixture
def ckpt():
    encoding = get_encoding("melody")
    torch.manual_seed(0)
    model = build_model("lstm", {"embed_size": 8, "hidden_size": 8, "num_layers": 1}, encoding.vocab.size)
    return checkpoint.make_checkpoint(
        model_kind="lstm", model_settings={"embed_size": 8, "hidden_size": 8, "num_layers": 1},
        model=model, encoding=encoding, run_config={"training": {"seed": 0}}, step=5,
        best_val_nll=1.5)


def test_layout_and_weights_only_round_trip(ckpt, tmp_path):
    path = checkpoint.save(ckpt, tmp_path / "best.pt")
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "melodygen-checkpoint" and raw["format_version"] == 1
    assert raw["melodygen_version"] == __version__ and raw["step"] == 5 and raw["best_val_nll"] == 1.5
    assert set(raw["model"]) == {"kind", "settings", "vocab_size", "state_dict"}
    assert raw["encoding"]["tokens"] == get_encoding("melody").vocab.tokens
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]  # no temp file left


def test_load_for_inference_rebuilds_the_same_model(ckpt, tmp_path):
    checkpoint.save(ckpt, tmp_path / "a.pt")
    model, encoding, loaded = checkpoint.load_for_inference(tmp_path / "a.pt", "cpu")
    assert not model.training and encoding == get_encoding("melody") and loaded["step"] == 5
    for name, tensor in ckpt["model"]["state_dict"].items():
        assert torch.equal(model.state_dict()[name], tensor)


def test_a_failed_save_leaves_the_old_file_intact(ckpt, tmp_path, monkeypatch):
    path = checkpoint.save(ckpt, tmp_path / "last.pt")
    before = path.read_bytes()

    def crash(obj, f):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save({**ckpt, "step": 6}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


@pytest.mark.parametrize("content, reason", [
    (b"", r"empty file \(0 bytes\)"),
    (b"\x00garbage" * 50, "not a PyTorch checkpoint file"),
    (b"hello world\n", "not a PyTorch checkpoint file"),  # torch's unpickler raised KeyError here
    (b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0", "a MIDI file, not a checkpoint"),
])
def test_unreadable_files_name_the_file(tmp_path, content, reason):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=f"bad.pt: not a readable checkpoint \\({reason}\\)$") as info:
        checkpoint.load_for_inference(path)
    assert "weights_only" not in str(info.value)


def test_pickled_python_objects_are_refused_in_our_words(tmp_path):
    path = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(CheckpointError, match="module.pt: .*not saved by melodygen") as info:
        checkpoint.load(path)
    assert "weights_only" not in str(info.value) and "\n" not in str(info.value)


def test_truncated_checkpoint(ckpt, tmp_path):
    path = checkpoint.save(ckpt, tmp_path / "t.pt")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"t.pt: not a readable checkpoint \(truncated or damaged"):
        checkpoint.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        checkpoint.load(tmp_path / "none.pt")


@pytest.mark.parametrize("change, message", [
    ({"format": "something-else"}, "not a melodygen checkpoint"),
    ({"format_version": 99}, "format version 99"),
    ({"encoding": {"name": "nope"}}, "unknown encoding"),
])
def test_foreign_or_future_checkpoints_are_refused(ckpt, tmp_path, change, message):
    checkpoint.save({**ckpt, **change}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match=message):
        checkpoint.load_for_inference(tmp_path / "x.pt")


def test_weights_that_do_not_fit_the_model(ckpt, tmp_path):
    ckpt["model"]["settings"] = {"embed_size": 8, "hidden_size": 16, "num_layers": 1}
    checkpoint.save(ckpt, tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match="w.pt: weights do not fit a 'lstm' model") as info:
        checkpoint.load_for_inference(tmp_path / "w.pt")
    assert "rnn.weight_hh_l0 (32, 8) != (64, 16)" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("field, value", [
    ("step", "abc"), ("run_config", 5), ("encoding", [1, 2]), ("model.kind", 5), ("model.settings", [1]),
    ("model.vocab_size", "big"), ("model.state_dict", [1]), ("best_val_nll", "low"),
])
def test_fields_of_the_wrong_type_are_a_damaged_checkpoint(ckpt, tmp_path, field, value):
    *parents, key = field.split(".")
    holder = ckpt
    for name in parents:
        holder = holder[name]
    holder[key] = value
    checkpoint.save(ckpt, tmp_path / "d.pt")
    with pytest.raises(CheckpointError, match=rf"d.pt: damaged checkpoint \({field} of the wrong type\)$"):
        checkpoint.load(tmp_path / "d.pt")


def test_incomplete_checkpoint(ckpt, tmp_path):
    del ckpt["model"]["state_dict"]
    checkpoint.save(ckpt, tmp_path / "i.pt")
    with pytest.raises(CheckpointError, match="missing model.state_dict"):
        checkpoint.load(tmp_path / "i.pt")


def test_a_checkpoint_records_its_encoding_stream_version(ckpt, tmp_path):
    raw = torch.load(checkpoint.save(ckpt, tmp_path / "v.pt"), weights_only=True)
    assert raw["encoding"]["stream_version"] == MelodyEncoding.stream_version == 1


def test_a_model_of_a_stream_this_melodygen_no_longer_writes_is_refused(ckpt, tmp_path, monkeypatch):
    checkpoint.save(ckpt, tmp_path / "old.pt")
    monkeypatch.setattr(MelodyEncoding, "stream_version", 2)  # the encoder changed since training
    for load in (checkpoint.load, checkpoint.load_for_inference):  # resuming and sampling alike
        with pytest.raises(CheckpointError, match=r"old.pt: the model was trained on the 'melody' encoding's "
                                                  r"stream version 1, a stream this melodygen no longer writes "
                                                  r"\(it writes version 2\); train it again$") as info:
            load(tmp_path / "old.pt")
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("stored, message", [
    (7, r"stream version 7, newer than this melodygen \S+ knows \(version 1\); upgrade melodygen"),
    (0, r"stream version 0, a stream this melodygen no longer writes \(it writes version 1\)"),
    ("1", "damaged stream version '1'"), (True, "damaged stream version True"),
])
def test_a_checkpoint_of_another_or_a_damaged_stream_version_is_refused(ckpt, tmp_path, stored, message):
    ckpt["encoding"]["stream_version"] = stored
    checkpoint.save(ckpt, tmp_path / "s.pt")
    with pytest.raises(CheckpointError, match=f"s.pt: .*{message}"):
        checkpoint.load(tmp_path / "s.pt")


def test_a_checkpoint_recording_no_stream_version_counts_as_version_1(ckpt, tmp_path, monkeypatch):
    del ckpt["encoding"]["stream_version"]  # as in every checkpoint made before versions existed
    checkpoint.save(ckpt, tmp_path / "v1.pt")
    _, encoding, _ = checkpoint.load_for_inference(tmp_path / "v1.pt")
    assert encoding == get_encoding("melody")
    monkeypatch.setattr(MelodyEncoding, "stream_version", 2)
    with pytest.raises(CheckpointError, match="stream version 1, a stream .* writes version 2"):
        checkpoint.load(tmp_path / "v1.pt")


@pytest.mark.skipif(not pretrained.bundled_models(), reason="no bundled models in this tree")
@pytest.mark.parametrize("name", [m.name for m in pretrained.bundled_models()])
def test_the_bundled_models_load_with_their_stream_version(name):
    """Models made before versions record none (read as 1); those made since record theirs."""
    stored = checkpoint.load_unchecked(name)["encoding"].get("stream_version", 1)
    model, encoding, _ = checkpoint.load_for_inference(name)
    assert model.vocab_size == encoding.vocab.size and encoding.stream_version == stored
