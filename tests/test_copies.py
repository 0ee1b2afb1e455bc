"""The copy check (`dataset.copies`, `stats.copies`): training pieces found whole with their
source, transposed copies found as transposed, unrelated music copying little, no match from a
hash collision, bars per time unit, the `sample` warning (on the music the model wrote, never a
primer the user gave) and `stats --train`, old datasets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import midi_factory as mf
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from train_fixtures import make_dataset

from melodygen.checkpoint import make_checkpoint, save
from melodygen.cli import main
from melodygen.config import config_from_dict
from melodygen.dataset import copies
from melodygen.dataset.copies import COPY_INDEX, SEED_EVENTS, CopyIndex, bar_amounts
from melodygen.dataset.manifest import load_dataset_encoding, read_manifest
from melodygen.dataset.prepare import prepare
from melodygen.dataset.shards import TokenDataset, write_split
from melodygen.encodings import BOS_ID, EOS_ID, get_encoding
from melodygen.errors import DatasetError
from melodygen.models import build_model, settings_to_dict


@pytest.fixture
def folk_dataset(nottingham_files, tmp_path) -> Path:
    """Five real folk tunes, all in the train split, prepared as melody."""
    return _prepare(nottingham_files, "melody", tmp_path / "folk")


def _prepare(files, encoding_name: str, out: Path) -> Path:
    prepare(files, get_encoding(encoding_name), out, val_fraction=0.0, workers=1, progress=False)
    return out


def _train_pieces(directory: Path) -> list[np.ndarray]:
    train = TokenDataset(directory, "train")
    return [np.array(train.piece(i)[1:-1]) for i in range(train.num_pieces)]


def test_prepare_writes_the_index_and_every_training_piece_is_found_whole(folk_dataset):
    assert (folk_dataset / COPY_INDEX).is_file()
    manifest = read_manifest(folk_dataset)
    assert manifest["copy_index"]["windows"] > 0 and manifest["copy_index"]["seconds"] >= 0
    index = CopyIndex.open(folk_dataset)
    assert not index.built
    sources = {p["index"]: p["path"] for p in manifest["pieces"] if p["split"] == "train"}
    for i, ids in enumerate(_train_pieces(folk_dataset)):
        found = index.check(ids).exact
        assert (found.events, found.start, found.piece, found.piece_offset) == (len(ids), 0, i, 0)
        assert found.source == sources[i]
        assert found.bars == pytest.approx(len(ids) / 16)  # 16 steps of melody per 4/4 bar


def test_a_stretch_inside_a_longer_piece_is_found_at_its_place(folk_dataset):
    index = CopyIndex.open(folk_dataset)
    ids = _train_pieces(folk_dataset)[1]
    rng = np.random.default_rng(0)
    noise = lambda n: rng.integers(3, index.encoding.vocab.size, n)  # noqa: E731
    query = np.concatenate([noise(40), ids[30:130], noise(40)])
    found = index.check(query).exact
    assert (found.start, found.piece, found.piece_offset) == (40, 1, 30)
    assert 100 <= found.events < 110  # a noise id may happen to continue it


def test_a_transposed_copy_is_found_as_transposed(chorale_files, tmp_path):
    directory = _prepare(chorale_files, "performance", tmp_path / "bach")
    index = CopyIndex.open(directory)
    ids = _train_pieces(directory)[0]
    moved = index.encoding.pitch_shift_table(3)[ids]
    assert (moved >= 0).all()
    check = index.check(moved)
    assert check.transposed.transposition == 3 and check.transposed.events == len(ids)
    assert check.longest == check.transposed
    assert check.exact is None or check.exact.events < len(ids) // 4


def test_music_unrelated_to_the_training_set_copies_little(folk_dataset, tmp_path):
    rng = np.random.default_rng(5)
    pitches = rng.integers(55, 80, 64)
    notes = [(int(p), i * 240, i * 240 + int(rng.integers(1, 3)) * 120) for i, p in enumerate(pitches)]
    path = mf.midi_file(tmp_path / "random.mid", [mf.note_events(notes)])
    rows = copies_rows([path], CopyIndex.open(folk_dataset))
    assert rows[0]["check"].longest is None or rows[0]["check"].longest.bars < 1.5


def copies_rows(paths, index):
    from melodygen.stats.copies import check_files

    return check_files(paths, index)


def _longest_common(query: np.ndarray, pieces: list[np.ndarray]) -> int:
    """Brute force: the longest stretch of `query` found in any piece."""
    best = 0
    for piece in pieces:
        run = np.zeros(len(piece) + 1, dtype=int)
        for q in query:
            run[1:] = np.where(piece == q, run[:-1] + 1, 0)
            best = max(best, int(run.max()))
    return best


def test_hash_collisions_never_make_a_match(tmp_path, monkeypatch):
    # A hash where every window with the same id sum collides: only the id check tells apart.
    def weak_hashes(ids, k=SEED_EVENTS):
        sums = np.concatenate([[0], np.cumsum(np.asarray(ids, dtype=np.int64))])
        return ((sums[k:] - sums[:-k]) % 5).astype(np.uint64) if len(ids) >= k else np.zeros(0, np.uint64)

    monkeypatch.setattr(copies, "window_hashes", weak_hashes)
    monkeypatch.setattr(copies, "MAX_SEED_HITS", 10**9)
    directory = make_dataset(tmp_path / "motifs", train=12, valid=2)
    copies.build_index(directory, load_dataset_encoding(directory))
    index = CopyIndex.open(directory)
    pieces = _train_pieces(directory)
    rng = np.random.default_rng(3)
    for trial in range(6):
        query = rng.integers(3, index.encoding.vocab.size, 80)
        if trial % 2:  # plant a real stretch too
            query[20:20 + 30] = pieces[trial][:30]
        found = index.check(query).exact
        expected = _longest_common(query, pieces)
        if expected < SEED_EVENTS:
            assert found is None
        else:
            assert found.events == expected
            stretch = pieces[found.piece][found.piece_offset:found.piece_offset + found.events]
            assert (query[found.start:found.start + found.events] == stretch).all()


def test_bars_follow_each_encodings_time_unit():
    melody = get_encoding("melody", steps_per_quarter=4)
    assert bar_amounts(melody)[10] == pytest.approx(1 / 16)
    performance = get_encoding("performance")
    shift = performance.vocab.offset("TIME_SHIFT") + performance.vocab.range("TIME_SHIFT").size - 1
    seconds = performance.time_per_id().amounts[shift]
    assert bar_amounts(performance)[shift] == pytest.approx(seconds / 2)  # a 4/4 bar at 120 qpm: 2 s
    multitrack = get_encoding("multitrack")
    amounts = bar_amounts(multitrack)
    assert amounts[multitrack.vocab.id_of("BAR")] == 1 and amounts.sum() == 1


def test_bars_of_a_multitrack_copy_count_its_bar_lines(nottingham_files, tmp_path):
    directory = _prepare(nottingham_files[:2], "multitrack", tmp_path / "band")
    index = CopyIndex.open(directory)
    ids = _train_pieces(directory)[0]
    bar = index.encoding.vocab.id_of("BAR")
    assert index.check(ids).exact.bars == int((ids == bar).sum())


def test_an_old_dataset_gets_its_index_on_first_use(tmp_path):
    directory = make_dataset(tmp_path / "old")
    with pytest.raises(DatasetError, match="no copy index"):
        CopyIndex.open(directory, build=False)
    first = CopyIndex.open(directory)
    assert first.built and (directory / COPY_INDEX).is_file()
    assert not CopyIndex.open(directory).built
    pieces = _train_pieces(directory)
    write_split(directory, "train", [pieces[1], pieces[0], *pieces[2:]], BOS_ID, EOS_ID)
    assert CopyIndex.open(directory).built  # a shard that changed: the index is stale
    (directory / COPY_INDEX).write_bytes(b"not an index")
    again = CopyIndex.open(directory)
    assert again.built and again.check(_train_pieces(directory)[0]).exact is not None


def test_a_dataset_with_an_index_can_be_prepared_again(nottingham_files, tmp_path):
    out = _prepare(nottingham_files[:2], "melody", tmp_path / "folk")
    prepare(nottingham_files[:3], get_encoding("melody"), out, val_fraction=0.0, workers=1, progress=False)
    assert len(CopyIndex.open(out).sources) == 3


def _checkpoint(dataset: Path, path: Path) -> Path:
    torch.manual_seed(0)
    encoding = get_encoding("melody")
    model = build_model("lstm", {"embed_size": 8, "hidden_size": 16, "num_layers": 1}, encoding.vocab.size)
    config = config_from_dict({"data": {"dataset": str(dataset)}})
    return save(make_checkpoint(model_kind="lstm", model_settings=settings_to_dict(model.settings), model=model,
                                encoding=encoding, run_config=config.to_dict(), step=0, best_val_nll=None), path)


def _model_writes(monkeypatch, path: Path) -> list[int]:
    """Every piece the model draws is the melody of `path`, whole (a model that copies)."""
    from melodygen.dataset.files import read_file
    from melodygen.sampling import files

    ids = [int(i) for i in read_file(path, get_encoding("melody")).ids]
    monkeypatch.setattr(files, "_generate", lambda model, encoding, request, plan, device: (
        [list(ids) for _ in range(request.n)], [None] * request.n))
    return ids


def test_sample_warns_about_a_copied_training_piece(folk_dataset, nottingham_files, tmp_path, monkeypatch):
    ckpt = _checkpoint(folk_dataset, tmp_path / "m.pt")
    copied = nottingham_files[0]
    _model_writes(monkeypatch, copied)
    args = ["sample", str(ckpt), "--seed", "1", "-n", "2"]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2 and all(str(copied) in line and "bars" in line for line in warnings)
    quiet = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "b"), "--no-copy-check"])
    assert quiet.exit_code == 0 and "warning" not in quiet.output
    lenient = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "c"), "--max-copy-bars", "1000"])
    assert lenient.exit_code == 0 and "warning" not in lenient.output


def test_a_primer_the_user_gave_is_not_a_copy_but_what_follows_it_may_be(folk_dataset, nottingham_files,
                                                                          tmp_path, monkeypatch):
    from melodygen.dataset.files import read_file
    from melodygen.sampling import files
    from melodygen.sampling.request import GenerationRequest
    from melodygen.stats.copies import check_files, piece_warnings, warning_lines

    ckpt = _checkpoint(folk_dataset, tmp_path / "m.pt")
    primer = nottingham_files[0]  # a training piece
    monkeypatch.setattr(files, "_generate", lambda *args: ([[]], [None]))  # the model ends at once
    (piece,) = files.sample_to_midi(ckpt, tmp_path / "a", GenerationRequest(primer=primer), copy_check=True)
    # judged whole, the file is that training piece; judged as `sample` does, nothing is copied
    assert warning_lines(check_files([piece.path], CopyIndex.open(folk_dataset)), 4.0)
    assert piece_warnings([piece], 4.0) == [] and piece.copy_check["check"].longest is None
    written = _model_writes(monkeypatch, nottingham_files[1])  # now another training piece follows it
    (piece,) = files.sample_to_midi(ckpt, tmp_path / "b", GenerationRequest(primer=primer))
    (row,) = check_files([piece.path], CopyIndex.open(folk_dataset), [piece.given])
    found = row["check"].exact
    assert found.source == str(nottingham_files[1])
    assert (found.start, found.events) == (len(read_file(primer, get_encoding("melody")).ids), len(written))


def test_sample_does_not_warn_about_the_primer_it_was_given(folk_dataset, nottingham_files, tmp_path):
    ckpt = _checkpoint(folk_dataset, tmp_path / "m.pt")
    args = ["--primer", str(nottingham_files[0]), "--length", "8", "--seed", "1", "-n", "2"]  # a training piece
    result = CliRunner().invoke(main, ["sample", str(ckpt), *args, "--out", str(tmp_path / "a")])
    assert result.exit_code == 0 and "warning" not in result.output, result.output


def test_sample_with_its_training_data_gone_says_so_in_one_line(folk_dataset, tmp_path):
    ckpt = _checkpoint(folk_dataset, tmp_path / "m.pt")
    shutil.rmtree(folk_dataset)
    result = CliRunner().invoke(main, ["sample", str(ckpt), "--out", str(tmp_path / "o"), "--length", "8"])
    assert result.exit_code == 0, result.output
    notes = [line for line in result.output.splitlines() if "copy check skipped" in line]
    assert len(notes) == 1 and str(folk_dataset) in notes[0] and "Traceback" not in result.output


def test_stats_train_shows_per_file_copies_and_a_summary(folk_dataset, nottingham_files, tmp_path):
    outside = mf.midi_file(tmp_path / "scale.mid", [mf.note_events(mf.melody_notes(24))])
    paths = [str(nottingham_files[0]), str(outside)]
    result = CliRunner().invoke(main, ["stats", *paths, "--train", str(folk_dataset), "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output[result.output.index("{"):])["copies"]
    by_path = {Path(f["path"]).name: f for f in figures["files"]}
    assert by_path["scale.mid"]["exact"] is None
    first = by_path[nottingham_files[0].name]["exact"]
    assert first["source"] == str(nottingham_files[0]) and first["start"] == 0
    assert figures["summary"]["files"] == 2 and figures["summary"]["copying"] == 1
    table = CliRunner().invoke(main, ["stats", *paths, "--train", str(folk_dataset)])
    assert "copies of training pieces" in table.output and "1 copy more than 4 bars" in table.output


def test_stats_train_that_is_not_a_dataset_is_one_error_line(tmp_path, nottingham_files):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(main, ["stats", str(nottingham_files[0]), "--train", str(tmp_path / "empty")])
    assert result.exit_code == 1 and "not a prepared dataset" in result.output
    assert "Traceback" not in result.output


def test_a_copy_is_extended_across_windows_too_common_to_seed(tmp_path, monkeypatch):
    monkeypatch.setattr(copies, "MAX_SEED_HITS", 2)
    directory = make_dataset(tmp_path / "common", train=4, valid=1)
    rng = np.random.default_rng(9)
    ids = lambda n: rng.integers(3, 40, n).astype(np.uint16)  # noqa: E731
    common = ids(30)  # in all four pieces: its windows never seed a match
    pieces = [np.concatenate([ids(20), common, ids(20)]) for _ in range(4)]
    write_split(directory, "train", pieces, BOS_ID, EOS_ID)
    found = CopyIndex.open(directory).check(pieces[2]).exact
    assert (found.events, found.start, found.piece, found.piece_offset) == (70, 0, 2, 0)


def test_report_shows_each_samples_copies_when_the_training_data_is_there(folk_dataset, nottingham_files, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    _checkpoint(folk_dataset, run / "best.pt")
    samples = tmp_path / "samples"
    samples.mkdir()
    shutil.copy(nottingham_files[0], samples / "copied.mid")
    result = CliRunner().invoke(main, ["report", str(run), "--samples", str(samples), "--no-audio"])
    assert result.exit_code == 0, result.output
    page = (run / "report.html").read_text()
    assert "Longest copy of a training piece: exact:" in page and nottingham_files[0].name in page
    assert "1 of 1 sample(s) copy more than 4 bars" in page
    shutil.rmtree(folk_dataset)
    result = CliRunner().invoke(main, ["report", str(run), "--samples", str(samples), "--no-audio"])
    assert result.exit_code == 0, result.output
    assert "copy check skipped" in (run / "report.html").read_text()


def test_stats_train_names_a_missing_checkpoint_in_one_line(tmp_path, nottingham_files):
    result = CliRunner().invoke(main, ["stats", str(nottingham_files[0]), "--train", str(tmp_path / "nothing.pt")])
    assert result.exit_code == 1 and "nothing.pt" in result.output and "Traceback" not in result.output


def test_a_run_on_bundled_corpora_gets_its_training_set_prepared_on_first_use():
    """A bundled model's run config names only bundled corpora and no dataset folder: the check
    prepares the corpus into the user's cache (what the model trained on) instead of skipping."""
    from melodygen.stats.copies import run_training_set

    config = {"data": {"sources": ["bundled:bach-chorales"], "dataset": "", "cache_dir": ""},
              "encoding": {"name": "melody"}}
    found = run_training_set(config, get_encoding("melody"), "a bundled model")
    assert found.index is not None and found.note is None
    elsewhere = {"data": {"sources": ["/nowhere/at/all"], "dataset": "", "cache_dir": ""}, "encoding": {"name": "melody"}}
    assert run_training_set(elsewhere, get_encoding("melody"), "x").note.startswith("copy check skipped")


def test_a_source_tree_without_the_installed_corpora_skips_the_check_in_one_line(monkeypatch):
    # Run from a clone that is not installed, `bundled:` names a package that does not exist.
    import importlib.resources

    from melodygen.stats.copies import run_training_set

    def not_installed(package):
        raise ModuleNotFoundError(f"No module named {package!r}")

    monkeypatch.setattr(importlib.resources, "files", not_installed)
    config = {"data": {"sources": ["bundled:nottingham"], "dataset": "", "cache_dir": ""}, "encoding": {"name": "melody"}}
    found = run_training_set(config, get_encoding("melody"), "folk-melody")
    assert found.index is None and "the bundled corpora are not installed with this melodygen" in found.note


def test_samples_copy_check_loads_the_checkpoint_once_and_reads_no_file_back(folk_dataset, tmp_path, monkeypatch):
    import melodygen.midi_io
    from melodygen import checkpoint

    ckpt = _checkpoint(folk_dataset, tmp_path / "m.pt")
    loads, reads, load, read_score = [], [], checkpoint.load, melodygen.midi_io.read_score
    monkeypatch.setattr(checkpoint, "load", lambda *a, **k: loads.append(a[0]) or load(*a, **k))
    monkeypatch.setattr(melodygen.midi_io, "read_score", lambda *a, **k: reads.append(a[0]) or read_score(*a, **k))
    result = CliRunner().invoke(main, ["sample", str(ckpt), "--out", str(tmp_path / "o"), "--length", "32",
                                       "-n", "2", "--seed", "1", "--max-copy-bars", "0"])
    assert result.exit_code == 0, result.output
    assert len(loads) == 1 and reads == [] and "copy check skipped" not in result.output
