"""`prepare`: skipped files and their reasons, dedup, content-hash split, atomic replace, reuse."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from melodygen.dataset import prepare as prepare_module
from melodygen.dataset.manifest import (ENCODING, check_dataset, input_fingerprint, load_dataset_encoding,
                                       read_manifest, split_of)
from melodygen.dataset.prepare import prepare
from melodygen.dataset.shards import TokenDataset
from melodygen.dataset.sources import DEFAULT_CORPUS, bundled_corpora, content_hash, find_midi_files, resolve_source
from melodygen.encodings import MelodyEncoding, get_encoding
from melodygen.errors import ConfigError, DatasetError, OutputError
from melodygen.midi_io import read_score
import midi_factory as mf
from test_atomic import dead_pid


def _melody(path: Path, seed: int) -> Path:
    """A short one-track melody whose content differs for every seed."""
    pitches = np.random.default_rng(seed).integers(55, 80, size=12)
    return mf.midi_file(path, [mf.note_events((int(p), i * 240, (i + 1) * 240) for i, p in enumerate(pitches))])


@pytest.fixture
def messy_folder(tmp_path, nottingham_files) -> Path:
    """5 real tunes, one duplicate, two unreadable files, one without notes, one in a subfolder."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    for f in nottingham_files:
        shutil.copy(f, src / f.name)
    shutil.copy(nottingham_files[0], src / "zz_copy.mid")
    mf.random_bytes_file(src)
    mf.zero_byte_file(src)
    mf.empty_file(src)  # valid MIDI without notes
    _melody(src / "sub" / "tune.MIDI", seed=1)
    (src / "notes.txt").write_text("not MIDI, not looked at")
    return src


def _prepare(src, out, **kwargs):
    kwargs.setdefault("workers", 1)
    return prepare([src], get_encoding("melody"), out, progress=False, **kwargs)


def test_summary_counts_and_skip_reasons(messy_folder, tmp_path):
    summary = _prepare(messy_folder, tmp_path / "ds")
    assert summary.files_found == 10 and summary.files_used == 6 and not summary.reused
    assert summary.skipped_by_reason == {"duplicate": 1, "no usable music": 1, "unreadable": 2}
    skipped = {Path(path).name: (reason, detail) for path, reason, detail in summary.skipped}
    assert skipped["zz_copy.mid"] == ("duplicate", f"same content as {messy_folder.resolve() / 'ashover1.mid'}")
    assert {name for name, (reason, _) in skipped.items() if reason == "unreadable"} == {"random.mid", "zero.mid"}
    assert skipped["empty.mid"][0] == "no usable music" and skipped["empty.mid"][1]
    assert "empty.mid" not in skipped["empty.mid"][1], "the path is recorded beside the reason, not in it"
    manifest = read_manifest(tmp_path / "ds")
    assert sum(summary.pieces.values()) == 6 == len(manifest["pieces"])
    datasets = {split: TokenDataset(tmp_path / "ds", split) for split in ("train", "valid")}
    assert summary.tokens == sum(ds.num_tokens for ds in datasets.values())
    assert summary.notes == sum(p["notes"] for p in manifest["pieces"]) > 0
    assert summary.hours > 0 and f"dataset: {tmp_path / 'ds'}" in summary.format()
    assert summary.notes_per_second > 0 and "notes/s" in summary.format()


def test_stored_pieces_are_the_encoded_files(messy_folder, tmp_path):
    _prepare(messy_folder, tmp_path / "ds")
    encoding = load_dataset_encoding(tmp_path / "ds")
    for piece in read_manifest(tmp_path / "ds")["pieces"]:
        stored = TokenDataset(tmp_path / "ds", piece["split"]).piece(piece["index"])
        np.testing.assert_array_equal(stored[1:-1], encoding.encode(read_score(piece["path"])))
        assert piece["split"] == split_of(content_hash(Path(piece["path"])), 0.1)


def test_split_is_stable_when_files_are_added(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for seed in range(12):
        _melody(src / f"a{seed:02d}.mid", seed)

    def splits():
        _prepare(src, tmp_path / "ds", val_fraction=0.3)
        return {Path(p["path"]).name: p["split"] for p in read_manifest(tmp_path / "ds")["pieces"]}

    before = splits()
    assert set(before.values()) == {"train", "valid"}
    for seed in range(12, 20):
        _melody(src / f"b{seed:02d}.mid", seed)
    after = splits()
    assert len(after) == 20 and all(after[name] == split for name, split in before.items())


def test_split_fraction_follows_val_fraction():
    rng = np.random.default_rng(0)
    hashes = [rng.bytes(20).hex() for _ in range(4000)]
    for fraction in (0.0, 0.1, 0.5):
        share = np.mean([split_of(h, fraction) == "valid" for h in hashes])
        assert abs(share - fraction) < 0.03


def test_parallel_workers_write_the_same_dataset(messy_folder, tmp_path):
    _prepare(messy_folder, tmp_path / "one", workers=1)
    _prepare(messy_folder, tmp_path / "two", workers=2)
    for name in ("train.bin", "valid.bin", "train.idx.npy", "valid.idx.npy", "encoding.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_rerun_reuses_unchanged_inputs(messy_folder, tmp_path, monkeypatch):
    first = _prepare(messy_folder, tmp_path / "ds")

    def no_parsing(*args, **kwargs):
        raise AssertionError("inputs unchanged: nothing should be parsed")

    monkeypatch.setattr(prepare_module, "read_files", no_parsing)
    again = _prepare(messy_folder, tmp_path / "ds")
    assert again.reused and "reusing" in again.format()
    assert (again.pieces, again.tokens, again.skipped) == (first.pieces, first.tokens, first.skipped)
    with pytest.raises(AssertionError, match="nothing should be parsed"):
        _prepare(messy_folder, tmp_path / "ds", force=True)
    resplit = _prepare(messy_folder, tmp_path / "ds", val_fraction=0.5)  # rebuilt from the shards
    assert not resplit.reused and resplit.files_from_previous == 9
    _melody(messy_folder / "sub" / "tune.MIDI", seed=2)  # new content
    with pytest.raises(AssertionError, match="nothing should be parsed"):
        _prepare(messy_folder, tmp_path / "ds")


def test_rebuild_parses_only_new_content_and_equals_a_full_build(messy_folder, tmp_path, monkeypatch):
    _prepare(messy_folder, tmp_path / "ds")
    for seed in range(3):
        _melody(messy_folder / f"new{seed}.mid", seed + 10)
    (messy_folder / "ashover1.mid").rename(messy_folder / "renamed.mid")
    parsed = []
    real_read_files = prepare_module.read_files

    def recording(paths, *args, **kwargs):
        parsed.extend(Path(p).name for p in paths)
        return real_read_files(paths, *args, **kwargs)

    monkeypatch.setattr(prepare_module, "read_files", recording)
    summary = _prepare(messy_folder, tmp_path / "ds")
    assert sorted(parsed) == ["new0.mid", "new1.mid", "new2.mid"]
    assert summary.files_from_previous == 9 and "9 files taken from the previous build" in summary.format()
    assert summary.notes_per_second is None, "no parsing rate when most files were not parsed"
    _prepare(messy_folder, tmp_path / "full", force=True)
    unique_names = [p.name for p in find_midi_files([messy_folder]) if p.name != "zz_copy.mid"]
    assert sorted(parsed[3:]) == sorted(unique_names), "--force parses every file again"
    for name in ("train.bin", "valid.bin", "train.idx.npy", "valid.idx.npy"):
        assert (tmp_path / "ds" / name).read_bytes() == (tmp_path / "full" / name).read_bytes()


def test_other_encoding_settings_rebuild(messy_folder, tmp_path):
    _prepare(messy_folder, tmp_path / "ds")
    narrow = get_encoding("melody", min_pitch=60, max_pitch=71)
    summary = prepare([messy_folder], narrow, tmp_path / "ds", workers=1, progress=False)
    assert not summary.reused
    check_dataset(tmp_path / "ds", narrow.to_dict())
    with pytest.raises(DatasetError, match="min_pitch=60"):
        check_dataset(tmp_path / "ds", get_encoding("melody").to_dict())


def test_crash_midway_leaves_previous_dataset_intact(messy_folder, tmp_path, monkeypatch):
    _prepare(messy_folder, tmp_path / "ds")
    before = {f.name: f.read_bytes() for f in (tmp_path / "ds").iterdir()}

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # e.g. Ctrl-C while the manifest is being written

    monkeypatch.setattr(prepare_module, "write_json", crash)
    with pytest.raises(KeyboardInterrupt):
        _prepare(messy_folder, tmp_path / "ds", force=True)
    assert {f.name: f.read_bytes() for f in (tmp_path / "ds").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "src"], "no staging folder left behind"


def test_killed_run_leftovers_are_never_trusted(messy_folder, tmp_path, monkeypatch):
    staged = []
    real_write_split = prepare_module.write_split

    def write_then_die(directory, *args):
        real_write_split(directory, *args)
        staged.append(Path(directory))
        shutil.copytree(directory, tmp_path / "leftover")  # what a SIGKILL right now would leave
        raise SystemExit(9)

    monkeypatch.setattr(prepare_module, "write_split", write_then_die)
    with pytest.raises(SystemExit):
        _prepare(messy_folder, tmp_path / "ds")
    assert staged and staged[0].parent == tmp_path and not (tmp_path / "ds").exists()
    with pytest.raises(DatasetError, match="manifest"):
        check_dataset(tmp_path / "leftover", get_encoding("melody").to_dict())


def test_next_run_removes_its_own_leftovers_of_killed_runs_only(messy_folder, tmp_path):
    _prepare(messy_folder, tmp_path / "ds")
    dead, alive = dead_pid(), os.getppid()
    leftovers = {f".ds.partial-{dead}-0123abcd": False, f".ds.old-{dead}-0123abcd": False,
                 f".ds.partial-{alive}-0123abcd": True,  # a prepare running now
                 f".other.partial-{dead}-0123abcd": True}  # another output's
    for name in leftovers:
        (tmp_path / name).mkdir()
        (tmp_path / name / "train.bin").write_bytes(b"ids")
    assert _prepare(messy_folder, tmp_path / "ds").reused  # even a run with nothing to build
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["ds", "src", *(name for name, kept in leftovers.items() if kept)])


def test_a_killed_copy_index_write_does_not_block_a_rebuild(messy_folder, tmp_path):
    _prepare(messy_folder, tmp_path / "ds")
    leftover = tmp_path / "ds" / f".copy_index.npz.tmp-{dead_pid()}-0123abcd"
    leftover.write_bytes(b"half an index")  # e.g. `train` killed while building it for an old dataset
    _prepare(messy_folder, tmp_path / "ds", force=True)
    assert not leftover.exists()


def test_refuses_to_replace_a_folder_that_is_not_a_dataset(messy_folder, tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(OutputError, match="not a melodygen dataset"):
        _prepare(messy_folder, precious)
    assert (precious / "thesis.tex").read_text() == "years of work"
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        _prepare(messy_folder, tmp_path / "afile")
    with pytest.raises(OutputError, match="cannot write"):
        _prepare(messy_folder, tmp_path / "afile" / "ds")


def test_refuses_to_replace_a_dataset_that_holds_other_files(messy_folder, tmp_path):
    _prepare(messy_folder, tmp_path / "ds")
    (tmp_path / "ds" / "best.pt").write_bytes(b"a run trained into the dataset folder")
    with pytest.raises(OutputError, match=r"ds: holds files that are not part of a dataset \(best.pt\)"):
        _prepare(messy_folder, tmp_path / "ds", force=True)
    assert (tmp_path / "ds" / "best.pt").read_bytes() == b"a run trained into the dataset folder"


def test_bad_sources_are_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    junk = tmp_path / "junk"
    junk.mkdir()
    mf.text_file(junk)
    mf.empty_file(junk)
    with pytest.raises(DatasetError, match="nowhere: no such file"):
        _prepare(tmp_path / "nowhere", tmp_path / "ds")
    with pytest.raises(DatasetError, match="empty: no .mid or .midi files"):
        _prepare(tmp_path / "empty", tmp_path / "ds")
    with pytest.raises(DatasetError, match=r"no usable MIDI: all 2 files .*no usable music: 1, unreadable: 1"):
        _prepare(junk, tmp_path / "ds")
    with pytest.raises(ConfigError, match="val_fraction"):
        _prepare(junk, tmp_path / "ds", val_fraction=1.0)
    assert not (tmp_path / "ds").exists()


def test_file_discovery_is_recursive_sorted_and_unique(messy_folder):
    files = find_midi_files([messy_folder, messy_folder / "ashover1.mid"])
    assert files == sorted(files) and len(files) == len(set(files)) == 10
    assert messy_folder.resolve() / "sub" / "tune.MIDI" in files


def test_default_corpus_is_the_bundled_nottingham_folder():
    corpus = resolve_source(DEFAULT_CORPUS)
    assert corpus.name == "nottingham" and len(list(corpus.glob("*.mid"))) > 1000
    assert (corpus / "LICENSE.md").is_file()  # the license travels with the files


def test_bundled_sources_name_the_shipped_corpora():
    assert set(bundled_corpora()) == {"nottingham", "bach-chorales", "pop909"}
    assert find_midi_files(["bundled:bach-chorales"]) == find_midi_files([bundled_corpora()["bach-chorales"]])
    with pytest.raises(DatasetError, match="bundled:pop: no such bundled corpus .*bundled:bach-chorales, "
                                           "bundled:nottingham"):
        find_midi_files(["bundled:pop"])


def test_check_dataset_refuses_another_token_list(messy_folder, tmp_path):
    _prepare(messy_folder, tmp_path / "ds")
    expected = get_encoding("melody").to_dict()
    assert check_dataset(tmp_path / "ds", expected)["files"]["used"] == 6
    with pytest.raises(DatasetError, match="token list differs"):
        check_dataset(tmp_path / "ds", {**expected, "tokens": expected["tokens"][::-1]})
    with pytest.raises(DatasetError, match="no such dataset folder"):
        check_dataset(tmp_path / "nothing", expected)


def test_a_dataset_of_another_stream_version_is_rebuilt_not_reused(messy_folder, tmp_path, monkeypatch):
    _prepare(messy_folder, tmp_path / "ds")
    assert json.loads((tmp_path / "ds" / ENCODING).read_text())["stream_version"] == 1
    parsed = []
    real_read_files = prepare_module.read_files

    def recording(paths, *args, **kwargs):
        parsed.extend(paths)
        return real_read_files(paths, *args, **kwargs)

    monkeypatch.setattr(prepare_module, "read_files", recording)
    monkeypatch.setattr(MelodyEncoding, "stream_version", 2)  # the encoder's ids changed
    summary = _prepare(messy_folder, tmp_path / "ds")
    assert not summary.reused and summary.files_from_previous == 0 and len(parsed) == 9, "no ids of the old stream"
    assert json.loads((tmp_path / "ds" / ENCODING).read_text())["stream_version"] == 2
    check_dataset(tmp_path / "ds", get_encoding("melody").to_dict())


def test_the_fingerprint_covers_the_stream_version(messy_folder):
    files, encoding = find_midi_files([messy_folder]), get_encoding("melody").to_dict()
    assert input_fingerprint(files, encoding, 0.1) != input_fingerprint(files, {**encoding, "stream_version": 2}, 0.1)


def test_readers_refuse_a_dataset_of_another_stream_version_in_one_line(messy_folder, tmp_path, monkeypatch):
    _prepare(messy_folder, tmp_path / "ds")
    monkeypatch.setattr(MelodyEncoding, "stream_version", 2)
    stale = (f"{tmp_path / 'ds'}: prepared with the 'melody' encoding's stream version 1, but this melodygen's "
             "encoder writes version 2; run `melodygen prepare` again to rebuild it")
    with pytest.raises(DatasetError) as checked:
        check_dataset(tmp_path / "ds", get_encoding("melody").to_dict())
    with pytest.raises(DatasetError) as loaded:
        load_dataset_encoding(tmp_path / "ds")
    assert str(checked.value) == str(loaded.value) == stale


def test_a_dataset_recording_no_stream_version_counts_as_version_1(messy_folder, tmp_path, monkeypatch):
    _prepare(messy_folder, tmp_path / "ds")
    stored = json.loads((tmp_path / "ds" / ENCODING).read_text())
    del stored["stream_version"]  # prepared before versions existed
    (tmp_path / "ds" / ENCODING).write_text(json.dumps(stored))
    check_dataset(tmp_path / "ds", get_encoding("melody").to_dict())
    assert load_dataset_encoding(tmp_path / "ds") == get_encoding("melody")
    monkeypatch.setattr(MelodyEncoding, "stream_version", 2)
    with pytest.raises(DatasetError, match="stream version 1, but .* writes version 2"):
        check_dataset(tmp_path / "ds", get_encoding("melody").to_dict())
    stored["stream_version"] = "two"
    (tmp_path / "ds" / ENCODING).write_text(json.dumps(stored))
    with pytest.raises(DatasetError, match=r"encoding.json: damaged stream version 'two'"):
        check_dataset(tmp_path / "ds", get_encoding("melody").to_dict())


def test_a_dataset_of_another_reader_format_takes_no_ids_from_it(messy_folder, tmp_path, monkeypatch):
    from melodygen.dataset import incremental, manifest

    _prepare(messy_folder, tmp_path / "ds")
    parsed = []
    real_read_files = prepare_module.read_files
    monkeypatch.setattr(prepare_module, "read_files", lambda paths, *a, **k: parsed.extend(paths) or real_read_files(paths, *a, **k))
    for module in (manifest, incremental):  # what the reader gives changed: FORMAT_VERSION bumped
        monkeypatch.setattr(module, "FORMAT_VERSION", manifest.FORMAT_VERSION + 1)
    summary = _prepare(messy_folder, tmp_path / "ds")
    assert not summary.reused and summary.files_from_previous == 0 and len(parsed) == 9
