"""The run config: TOML sections -> frozen dataclasses, typed overrides, all errors at once."""

import dataclasses
import os
import tomllib
from pathlib import Path

import pytest

from melodygen.config import (
    RunConfig, config_from_dict, dumps_toml, load_config, parse_value, save_config)
from melodygen.errors import ConfigError

BASE = """
[data]
sources = ["data/nottingham"]
[encoding]
name = "melody"
min_pitch = 48
[model]
kind = "lstm"
hidden_size = 64
[training]
batch_size = 8
betas = [0.9, 0.95]
"""


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(BASE)
    return path


def test_sections_map_onto_frozen_dataclasses(config_file):
    config = load_config(config_file)
    assert config.data.sources == (str(config_file.parent / "data/nottingham"),)
    assert config.encoding.name == "melody" and config.encoding.settings == {"min_pitch": 48}
    assert config.model.kind == "lstm" and config.model.settings == {"hidden_size": 64}
    assert config.training.batch_size == 8 and config.training.betas == (0.9, 0.95)
    assert config.training.lr == RunConfig().training.lr  # unspecified -> default
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.training.lr = 1.0


def test_data_paths_resolve_against_the_config_folder_never_the_current_one(tmp_path, monkeypatch):
    folder = tmp_path / "presets"
    folder.mkdir()
    (folder / "run.toml").write_text('[data]\nsources = ["../tunes", "bundled:nottingham", "/abs/x.mid"]\n'
                                     'dataset = "prepared"\ncache_dir = "~/cache"\n')
    monkeypatch.chdir(tmp_path / "presets")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for cwd in (folder, elsewhere):
        os.chdir(cwd)
        data = load_config(folder / "run.toml").data
        assert data.sources == (str(folder / "../tunes"), "bundled:nottingham", "/abs/x.mid")
        assert data.dataset == str(folder / "prepared")
        assert data.cache_dir == str(Path("~/cache").expanduser())
    overridden = load_config(folder / "run.toml", ["data.dataset=ds", "data.sources=['bundled:x']"]).data
    assert overridden.dataset == str(elsewhere / "ds") and overridden.sources == ("bundled:x",)


def test_a_saved_config_means_the_same_from_its_new_folder(config_file, tmp_path):
    config = load_config(config_file)
    (tmp_path / "run").mkdir()
    save_config(config, tmp_path / "run" / "config.toml")
    assert load_config(tmp_path / "run" / "config.toml") == config


def test_overrides_are_parsed_with_the_fields_type(config_file):
    config = load_config(config_file, [
        "training.lr=3e-4", "training.max_steps=10", "training.compile=true",
        "training.device=cpu", "training.transpose_range=[-3, 3]", "data.sources=['a', 'b']",
        "model.hidden_size=512", "encoding.max_pitch=90", "training.max_minutes=2"])
    t = config.training
    assert (t.lr, t.max_steps, t.compile, t.device) == (3e-4, 10, True, "cpu")
    assert t.transpose_range == (-3, 3) and t.max_minutes == 2.0
    assert isinstance(t.max_minutes, float)
    assert config.data.sources == (str(Path.cwd() / "a"), str(Path.cwd() / "b"))
    assert config.model.settings["hidden_size"] == 512
    assert config.encoding.settings == {"min_pitch": 48, "max_pitch": 90}


def test_every_problem_is_reported_in_one_error(config_file):
    config_file.write_text(BASE + "bogus = 1\n[extra]\nx = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(config_file, ["training.lr=fast", "training.max_steps=1.5", "nosection.a=1",
                                  "training.compile=1", "no_equals_sign", "training.betas=[0.9]",
                                  "training.batch_size=0", "model.kind=lstn", "encoding.foo=1"])
    message = str(info.value)
    assert "\n" not in message and str(config_file) in message
    for part in ("training.bogus", "[extra]", "training.lr='fast' must be float",
                 "training.max_steps=1.5", "[nosection]", "training.compile=1", "no_equals_sign",
                 "training.betas", "training.batch_size=0 must be > 0", "unknown model kind 'lstn'",
                 "melody encoding: unknown setting 'foo'"):
        assert part in message, part


@pytest.mark.parametrize("override", ["training.seed=true", "training.seq_len=\"64\"",
                                      "data.sources=\"data\"", "training.transpose_range=[1, 2]",
                                      "training.device=tpu", "data.val_fraction=1.0",
                                      "training.seed=-1", "training.seed=9223372036854775808",
                                      "training.window_starts=bars"])
def test_wrong_types_and_values_are_rejected(config_file, override):
    with pytest.raises(ConfigError, match=override.split("=")[0].replace(".", r"\.")):
        load_config(config_file, [override])


def test_missing_or_broken_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[training\nlr = ")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        load_config(bad)


def test_toml_round_trip_and_atomic_save(config_file, tmp_path):
    config = load_config(config_file, ["training.lr=1e-05", "training.grad_clip=0"])
    assert config_from_dict(tomllib.loads(dumps_toml(config))) == config
    save_config(config, tmp_path / "out.toml")
    assert load_config(tmp_path / "out.toml") == config
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.toml", "run.toml"]


def test_replace_is_checked_too():
    config = RunConfig().replace(training={"seed": 3}, model={"hidden_size": 32})
    assert config.training.seed == 3 and config.model.settings == {"hidden_size": 32}
    with pytest.raises(ConfigError, match="training.seed"):
        RunConfig().replace(training={"seed": "three"})


def test_parse_value_falls_back_to_a_bare_string():
    assert parse_value("3") == 3 and parse_value("[1, 2]") == [1, 2]
    assert parse_value("runs/data/x") == "runs/data/x" and parse_value('"7"') == "7"


def test_model_settings_are_checked_by_the_registry(config_file):
    with pytest.raises(ConfigError, match="hidden_sise"):
        load_config(config_file, ["model.hidden_sise=3"])
    with pytest.raises(ConfigError, match="unknown encoding 'midi'"):
        load_config(config_file, ["encoding.name=midi"])
