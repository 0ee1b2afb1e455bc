"""Stream versions: each encoding's `stream_version` changes whenever its encoder's ids change.

The guard: a few small real files (tests/conftest.py CORPORA) are encoded with each encoding's
default settings (multitrack also with every control), the ids hashed and compared with the hash
recorded here for the encoding's current stream version. An encoder change that alters its ids
fails here until its class's `stream_version` is bumped and the new hash recorded, so datasets
and checkpoints of the old stream are refused (tests/test_checkpoint.py, tests/test_prepare.py),
never read as ids that meant something else. The reader's notes have a hash of their own, kept
under the dataset format version: a reader change makes prepared datasets stale, not models.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import CORPORA
from melodygen.checkpoint import make_checkpoint, save
from melodygen.cli import main
from melodygen.config import save_config
from melodygen.dataset import manifest
from melodygen.encodings import ENCODINGS, MelodyEncoding, encoding_from_dict, get_encoding, stream_versions
from melodygen.encodings.controls import CONTROL_KINDS
from melodygen.errors import EncodingError, NoUsableMusicError
from melodygen.midi_io import read_score
from melodygen.models import build_model
from train_fixtures import make_dataset, tiny_config

# sha256 of what each encoder writes for FILES, by (encoding, stream_version). Keep the rows of
# earlier versions: a hash is the record of what that version's ids were.
RECORDED = {
    ("melody", 1): "3119e38c7360f226efafc864fbc9f2e35a5e5e28e71265a93dea7c4290e36e7f",
    ("multitrack", 1): "db94fed3e1b7f33cdc461a411996b424fcdf2ffd470d4a2729aed9c9f09d3f8c",
    ("performance", 1): "dc5a54e53b17760f5d9dc31bd8033514d0d8d1807e7c7f70c60382187add7140",
    ("voices", 1): "a16131398f67ca13d7a9ab9db15712d4d11a2587f6de5f6075682506af67c291",
}
# sha256 of the notes the reader makes of FILES, by dataset format version (dataset.manifest).
READER_RECORDED = {1: "f7b6eea30145f4086f96509b5cfbbe9c3e1c69e85f0dfffa5ba9ae72653feec6"}
# The settings each encoding is checked with: its defaults, and multitrack with its controls.
SETTINGS = {"melody": [{}], "performance": [{}], "multitrack": [{}, {"controls": list(CONTROL_KINDS)}],
            "voices": [{}]}
FILES = [path for folder in CORPORA.values() for path in sorted(folder.glob("*.mid"))[:3]]


@cache
def _score(path: Path, drums: bool):
    return read_score(path, include_drums=drums)


def encoder_digest(name: str) -> str:
    """sha256 over each setting's ids of each file in FILES (or that it holds no usable music)."""
    digest = hashlib.sha256()
    for settings in SETTINGS[name]:
        encoding = get_encoding(name, **settings)
        for path in FILES:
            digest.update(f"{json.dumps(settings, sort_keys=True)} {path.name}\n".encode())
            try:
                digest.update(np.asarray(encoding.encode(_score(path, encoding.reads_drums)), "<u2").tobytes())
            except NoUsableMusicError:
                digest.update(b"no usable music")
    return digest.hexdigest()


def reader_digest() -> str:
    """sha256 over the scores of FILES (drums included), times to the microsecond."""
    digest = hashlib.sha256()
    for path in FILES:
        score = _score(path, True)
        tracks = [[t.name, t.program, t.is_drum, [[n.pitch, n.velocity, round(n.start, 6), round(n.end, 6)]
                                                  for n in t.notes], [[round(a, 6), round(b, 6)] for a, b in t.pedals]]
                  for t in score.tracks]
        tempo = [[round(x, 6) for x in values] for values in (score.tempo_map.times, score.tempo_map.beats,
                                                              score.tempo_map.qpm)]
        meters = [[round(time, 6), n, d] for time, n, d in score.time_signatures]
        digest.update(json.dumps([path.name, tracks, tempo, meters, round(score.end_time, 6)]).encode())
    return digest.hexdigest()


def recorded_problem(name: str, version: int, digest: str) -> str | None:
    """Why `digest` of the `name` encoder at `version` disagrees with RECORDED; None if it agrees."""
    cls = ENCODINGS[name].__name__
    if (name, version) not in RECORDED:
        return (f"no hash recorded for the {name} encoder's stream version {version}: record "
                f"({name!r}, {version}): {digest!r} in RECORDED ({__file__})")
    if RECORDED[name, version] != digest:
        return (f"the {name} encoder's output changed: bump {cls}.stream_version and record the new hash "
                f"({name!r}, {version + 1}): {digest!r} in RECORDED ({__file__}). Only if the reader's test "
                "fails too and this encoder is unchanged (the same notes give the same ids), record it "
                f"under ({name!r}, {version}) instead")
    return None


def test_files_cover_each_corpus():
    assert len(FILES) == 3 * len(CORPORA)


def test_every_encoding_declares_its_own_stream_version():
    for name, cls in ENCODINGS.items():
        assert isinstance(cls.__dict__.get("stream_version"), int) and cls.stream_version >= 1, name
        assert get_encoding(name).to_dict()["stream_version"] == cls.stream_version


@pytest.mark.parametrize("name", sorted(ENCODINGS))
def test_a_stored_encoding_of_another_stream_is_refused_and_none_recorded_is_version_1(name):
    stored = get_encoding(name).to_dict()
    with pytest.raises(EncodingError, match=f"stored with the {name} encoding's stream version 2, but this "
                                            "melodygen writes version 1: its ids meant something else$"):
        encoding_from_dict({**stored, "stream_version": 2})
    del stored["stream_version"]
    assert encoding_from_dict(stored) == get_encoding(name) and stream_versions(stored) == (1, 1)


@pytest.mark.parametrize("name", sorted(ENCODINGS))
def test_the_stream_version_changes_whenever_the_encoder_output_does(name):
    problem = recorded_problem(name, ENCODINGS[name].stream_version, encoder_digest(name))
    assert problem is None, problem


def test_the_reader_makes_the_notes_recorded_for_this_dataset_format():
    digest, version = reader_digest(), manifest.FORMAT_VERSION
    assert READER_RECORDED.get(version) == digest, (
        f"the MIDI reader's notes changed: bump melodygen.dataset.manifest.FORMAT_VERSION, so that datasets "
        f"prepared from the old notes are rebuilt, and record {version + 1}: {digest!r} in READER_RECORDED "
        f"({__file__})")


def test_the_guard_catches_a_changed_encoder_and_a_bump_without_a_hash(monkeypatch):
    encode = MelodyEncoding.encode
    monkeypatch.setattr(MelodyEncoding, "encode", lambda self, score: encode(self, score)[1:])
    changed = recorded_problem("melody", 1, encoder_digest("melody"))
    assert changed.startswith("the melody encoder's output changed: bump MelodyEncoding.stream_version "
                              "and record the new hash ('melody', 2): ")
    assert recorded_problem("melody", 2, "0" * 64).startswith("no hash recorded for the melody encoder's "
                                                              "stream version 2")


# ------------------------------------------------------------------ refused in one line, end to end

def _tiny_checkpoint(path: Path, encoding) -> Path:
    settings = {"embed_size": 8, "hidden_size": 8, "num_layers": 1}
    model = build_model("lstm", settings, encoding.vocab.size)
    return save(make_checkpoint(model_kind="lstm", model_settings=settings, model=model, encoding=encoding,
                                run_config={"training": {"seq_len": 16}}, step=1, best_val_nll=None), path)


def _one_line_error(args: list[str]) -> str:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    return result.output


def test_train_and_evaluate_refuse_a_dataset_of_an_older_stream(tmp_path, monkeypatch):
    data = make_dataset(tmp_path / "data")  # written by stream version 1
    monkeypatch.setattr(MelodyEncoding, "stream_version", 2)
    ckpt = _tiny_checkpoint(tmp_path / "new.pt", get_encoding("melody"))  # a model of version 2
    stale = (f"{data}: prepared with the 'melody' encoding's stream version 1, but this melodygen's encoder "
             "writes version 2; run `melodygen prepare` again to rebuild it")
    assert stale in _one_line_error(["evaluate", str(ckpt), "--data", str(data)])
    config = tmp_path / "run.toml"
    save_config(tiny_config(data, max_steps=2), config)
    assert stale in _one_line_error(["train", "--config", str(config), "--out", str(tmp_path / "run"), "--quiet"])
    assert not (tmp_path / "run" / "best.pt").exists()


def test_sample_refuses_a_model_of_an_older_stream(tmp_path, monkeypatch):
    ckpt = _tiny_checkpoint(tmp_path / "old.pt", get_encoding("melody"))
    monkeypatch.setattr(MelodyEncoding, "stream_version", 2)
    out = _one_line_error(["sample", str(ckpt), "--out", str(tmp_path / "s"), "--bars", "1"])
    assert ("old.pt: the model was trained on the 'melody' encoding's stream version 1, a stream this "
            "melodygen no longer writes (it writes version 2); train it again") in out
