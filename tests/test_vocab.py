"""Vocabulary tables, and what every registered encoding shares: sizes, JSON form, registry."""

import json

import numpy as np
import pytest

from melodygen.encodings import (BOS_ID, ENCODINGS, EOS_ID, PAD_ID, EventRange, Vocabulary,
                                 encoding_from_dict, get_encoding, load_encoding)
from melodygen.errors import ConfigError, EncodingError


@pytest.fixture
def vocab() -> Vocabulary:
    return Vocabulary([EventRange.flag("REST"), EventRange("NOTE_ON", 10, 12),
                       EventRange("TIME_SHIFT", 1, 4, unit="ms", scale=10)])


def test_specials_come_first_and_offsets_are_computed(vocab):
    assert (PAD_ID, BOS_ID, EOS_ID) == (0, 1, 2)
    assert vocab.tokens == ["PAD", "BOS", "EOS", "REST", "NOTE_ON(10)", "NOTE_ON(11)",
                            "NOTE_ON(12)", "TIME_SHIFT(10ms)", "TIME_SHIFT(20ms)",
                            "TIME_SHIFT(30ms)", "TIME_SHIFT(40ms)"]
    assert vocab.size == len(vocab) == 11
    assert vocab.offset("NOTE_ON") == 4 and vocab.offset("TIME_SHIFT") == 7


def test_id_of_and_event_of_are_inverse(vocab):
    for id_ in range(vocab.size):
        name, value = vocab.event_of(id_)
        assert vocab.id_of(name, value) == id_
    assert vocab.event_of(3) == ("REST", None)
    assert vocab.event_of(5) == ("NOTE_ON", 11)


def test_split_is_the_vectorised_event_of(vocab):
    kinds, values = vocab.split(np.arange(vocab.size))
    for id_, (k, v) in enumerate(zip(kinds, values)):
        name, value = vocab.event_of(id_)
        assert vocab.ranges[k].name == name
        assert value is None or value == v


def test_events_skip_specials(vocab):
    assert vocab.events([BOS_ID, 4, PAD_ID, 3, 10, EOS_ID]) == [
        ("NOTE_ON", 10), ("REST", None), ("TIME_SHIFT", 4)]


@pytest.mark.parametrize("bad", [-1, 11, 65535])
def test_out_of_vocabulary_ids_are_errors(vocab, bad):
    with pytest.raises(EncodingError, match=str(bad)):
        vocab.token(bad)
    with pytest.raises(EncodingError):
        vocab.split([3, bad])


def test_values_and_names_outside_the_table_are_errors(vocab):
    with pytest.raises(EncodingError, match="NOTE_ON value 13"):
        vocab.id_of("NOTE_ON", 13)
    with pytest.raises(EncodingError, match="unknown event 'VELOCITY'"):
        vocab.id_of("VELOCITY", 1)


def test_default_vocabulary_sizes():
    # Magenta: basic_rnn melody has 38 events, Performance RNN 388; plus PAD/BOS/EOS.
    assert get_encoding("melody").vocab.size == 38 + 3
    assert get_encoding("performance").vocab.size == 388 + 3


def test_tokens_are_unique_for_every_encoding():
    for name in ENCODINGS:
        tokens = get_encoding(name).vocab.tokens
        assert len(set(tokens)) == len(tokens)


@pytest.mark.parametrize("name", sorted(ENCODINGS))
def test_dict_round_trip(name):
    enc = get_encoding(name)
    d = json.loads(json.dumps(enc.to_dict()))
    assert set(d) == {"name", "settings", "tokens", "stream_version", "melodygen_version"}
    again = encoding_from_dict(d)
    assert again == enc and again.vocab.tokens == enc.vocab.tokens


@pytest.mark.parametrize("name", sorted(ENCODINGS))
def test_from_dict_refuses_a_different_token_list(name):
    d = get_encoding(name).to_dict()
    d["tokens"] = d["tokens"][:-1]
    with pytest.raises(EncodingError, match="token list does not match"):
        encoding_from_dict(d)


def test_from_dict_refuses_bad_settings_and_names():
    d = get_encoding("melody").to_dict()
    with pytest.raises(EncodingError, match="unknown encoding 'remi'"):
        encoding_from_dict({**d, "name": "remi"})
    with pytest.raises(EncodingError, match="bogus"):
        encoding_from_dict({**d, "settings": {"bogus": 1}})


def test_settings_change_the_vocabulary():
    enc = get_encoding("melody", min_pitch=60, max_pitch=71)
    assert enc.vocab.size == 3 + 2 + 12
    assert encoding_from_dict(enc.to_dict()) == enc
    assert get_encoding("performance", velocity_bins=8).vocab.size == 3 + 256 + 100 + 8


def test_save_and_load_json(tmp_path):
    enc = get_encoding("performance", sustain=False)
    path = enc.save_json(tmp_path / "encoding.json")
    assert load_encoding(path) == enc
    assert [p.name for p in tmp_path.iterdir()] == ["encoding.json"]  # no temp file left


def test_load_encoding_names_the_bad_file(tmp_path):
    path = tmp_path / "encoding.json"
    path.write_text("{not json")
    with pytest.raises(EncodingError, match="encoding.json"):
        load_encoding(path)


def test_get_encoding_lists_valid_choices():
    with pytest.raises(ConfigError, match="melody, performance"):
        get_encoding("remi")
    with pytest.raises(ConfigError, match=r"'min_pich' \(did you mean 'min_pitch'\?\)"):
        get_encoding("melody", min_pich=40)
    with pytest.raises(ConfigError, match="valid settings: .*min_pitch"):
        get_encoding("melody", colour=40)


@pytest.mark.parametrize("name, settings, message", [
    ("melody", {"min_pitch": "48"}, "min_pitch='48' must be int"),
    ("melody", {"steps_per_quarter": True}, "steps_per_quarter=True must be int"),
    ("melody", {"min_pitch": 70, "max_pitch": 60}, "min_pitch \\+ 11 <= max_pitch"),
    ("melody", {"max_steps": 0}, "max_steps"),
    ("performance", {"velocity_bins": 0}, "velocity_bins"),
    ("performance", {"sustain": 1}, "sustain=1 must be bool"),
])
def test_bad_setting_values_are_config_errors(name, settings, message):
    with pytest.raises(ConfigError, match=message):
        get_encoding(name, **settings)
