"""Every shipped preset in configs/ loads, names existing data and builds its model."""

from pathlib import Path

import pytest
import torch

from melodygen.config import load_config
from melodygen.encodings import ENCODINGS, get_encoding
from melodygen.models import build_model
from melodygen.dataset.sources import resolve_source

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.toml"))
PRESETS = {"debug", "melody_rnn", "melody_lstm", "melody_transformer", "performance_lstm",
           "performance_transformer", "multitrack_nottingham", "multitrack_bach", "multitrack_pop909"}


def test_every_preset_is_shipped():
    assert PRESETS <= {p.stem for p in CONFIGS}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_preset_loads_and_builds(path):
    config = load_config(path)
    encoding = get_encoding(config.encoding.name, **config.encoding.settings)
    model = build_model(config.model.kind, config.model.settings, encoding.vocab.size)
    assert model.max_context is None or config.training.seq_len <= model.max_context
    for source in config.data.sources:
        assert resolve_source(source).exists()
    model.eval()
    with torch.no_grad():
        assert model(torch.ones(1, 8, dtype=torch.long)).shape == (1, 8, encoding.vocab.size)


# The bundled corpora each encoding's presets train on; a new encoding must say which it uses.
CORPORA_OF = {"melody": {"bundled:nottingham"}, "performance": {"bundled:bach-chorales"},
              "multitrack": {"bundled:nottingham", "bundled:bach-chorales", "bundled:pop909"},
              "voices": {"bundled:bach-chorales"}}


@pytest.mark.parametrize("encoding_name", sorted(ENCODINGS))
def test_every_encoding_has_presets_on_its_bundled_corpus(encoding_name):
    presets = [p for p in CONFIGS if load_config(p).encoding.name == encoding_name]
    assert presets, f"no preset in configs/ uses the {encoding_name} encoding"
    for path in presets:
        (source,) = load_config(path).data.sources
        assert source in CORPORA_OF[encoding_name], path.name


def test_quickstart_fits_in_five_minutes():
    config = load_config(next(p for p in CONFIGS if p.stem == "melody_lstm"))
    assert 0 < config.training.max_minutes <= 5
